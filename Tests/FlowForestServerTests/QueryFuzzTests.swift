import FlowForestCore
@testable import FlowForestServer
import FlowForestTestSupport
import Foundation
import Testing

/// The seed of this run (`FLOWFOREST_FUZZ_SEED` replays or explores).
let queryFuzzSeed = FuzzSeed.current().value

@Suite("Hostile query parameters (seeded fuzz)")
struct QueryFuzzTests {
    /// Mutates a real value with the characters that broke or slipped through
    /// the old parsers: signs, exponents, spaces, NUL, huge digit runs.
    static func mutate(_ base: String, _ g: inout SplitMix64) -> String {
        let alphabet = Array("0123456789+-.eExZT: ".utf8) + [0, 0x7F]
        var bytes = Array(base.utf8)
        for _ in 0..<Int.random(in: 0...3, using: &g) {
            switch Int.random(in: 0..<5, using: &g) {
            case 0 where !bytes.isEmpty: bytes[Int.random(in: 0..<bytes.count, using: &g)] = alphabet.randomElement(using: &g)!
            case 1: bytes.insert(alphabet.randomElement(using: &g)!, at: Int.random(in: 0...bytes.count, using: &g))
            case 2 where !bytes.isEmpty: bytes.remove(at: Int.random(in: 0..<bytes.count, using: &g))
            case 3: bytes += Array(String(repeating: "9", count: Int.random(in: 1...30, using: &g)).utf8)
            default: bytes = Array(bytes.prefix(Int.random(in: 0...bytes.count, using: &g)))
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    @Test("since/until: no trap; accepted times are within the documented range")
    func times() {
        var g = SplitMix64(seed: queryFuzzSeed)
        let bases = ["2026-11-25T10:00:00Z", "2554-07-21T23:34:33.709551615Z", "2499-12-31T23:59:59.999+01:00",
                     "1764063455", "1764063455.5", "18446744073.709551615", "32503680000", "1970-01-01T00:00:00-00:01"]
        var accepted = 0
        for _ in 0..<FuzzSeed.iterations(4000) {
            let text = Self.mutate(bases.randomElement(using: &g)!, &g)
            do {
                let ms = try API.parseTime(text, parameter: "since")
                accepted += 1
                guard ms >= 0, ms < Int64(Timestamp.endNs / 1_000_000) else {
                    Issue.record("seed \(queryFuzzSeed) (FLOWFOREST_FUZZ_SEED): since=\(text.debugDescription) accepted as \(ms) ms")
                    return
                }
                // Formatting and parsing again gives the same millisecond.
                let again = try? API.parseTime(Timestamp.rfc3339(milliseconds: ms), parameter: "since")
                guard again == ms else {
                    Issue.record("seed \(queryFuzzSeed) (FLOWFOREST_FUZZ_SEED): since=\(text.debugDescription) gave \(ms) ms, round trip \(String(describing: again))")
                    return
                }
            } catch let error as APIError {
                guard error.status == .badRequest, error.message.hasPrefix("since:") else {
                    Issue.record("seed \(queryFuzzSeed) (FLOWFOREST_FUZZ_SEED): since=\(text.debugDescription): \(error.status) \(error.message)")
                    return
                }
            } catch {
                Issue.record("seed \(queryFuzzSeed) (FLOWFOREST_FUZZ_SEED): since=\(text.debugDescription): \(error)")
                return
            }
        }
        #expect(accepted > 200, "seed \(queryFuzzSeed): only \(accepted) accepted")
    }

    @Test("limit: no trap; accepted exactly when it is 1-4 digits worth 1...1000")
    func limits() {
        var g = SplitMix64(seed: queryFuzzSeed ^ 0x11_417)
        for _ in 0..<FuzzSeed.iterations(4000) {
            let text = Self.mutate(String(Int.random(in: 0...1200, using: &g)), &g)
            let digitsOnly = !text.isEmpty && text.utf8.count <= 4 && text.utf8.allSatisfy { $0 >= 48 && $0 <= 57 }
            let expected = digitsOnly ? Int(text).flatMap { (1...1000).contains($0) ? $0 : nil } : nil
            let got = try? API.parseLimit(text, default: 100)
            guard got == expected else {
                Issue.record("seed \(queryFuzzSeed) (FLOWFOREST_FUZZ_SEED): limit=\(text.debugDescription) gave \(String(describing: got)), expected \(String(describing: expected))")
                return
            }
        }
    }
}

/// The `Time` patterns of openapi.yaml (each with its `maxLength`), read
/// from the source tree.
enum SpecTimePatterns {
    static func load() throws -> [(regex: NSRegularExpression, maxLength: Int)] {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../Sources/FlowForestServer/Resources/openapi.yaml").standardized
        let text = try String(contentsOf: url, encoding: .utf8)
        let lines = text.split(separator: "\n").map(String.init)
        guard let start = lines.firstIndex(of: "    Time:") else { throw CocoaError(.fileReadCorruptFile) }
        return try lines[start...].prefix(12).compactMap { line -> (NSRegularExpression, Int)? in
            guard let open = line.range(of: "pattern: '"), let close = line.range(of: "' }", options: .backwards),
                  let length = line.range(of: "maxLength: "),
                  let maxLength = Int(line[length.upperBound...].prefix { $0.isNumber }) else { return nil }
            let pattern = String(line[open.upperBound..<close.lowerBound]).replacingOccurrences(of: "''", with: "'")
            return (try NSRegularExpression(pattern: pattern), maxLength)
        }
    }
}

@Suite("The spec's time format is the server's (seeded fuzz)")
struct SpecTimeFormatTests {
    @Test("a since value matches openapi.yaml's Time patterns exactly when the server accepts it")
    func patternsAgreeWithParser() throws {
        let patterns = try SpecTimePatterns.load()
        #expect(patterns.count == 2)
        var g = SplitMix64(seed: queryFuzzSeed ^ 0x5EC)
        let bases = ["2026-11-25T10:00:00Z", "2024-02-29T23:59:60.123456789+05:30", "2100-02-28t00:00:00z", "2000-02-29t12:00:00-00:30",
                     "1970-01-01T00:00:00Z", "2499-12-31T23:59:59.999Z", "1764063455", "0001764063455.5", "16725225599", "2026-04-30T10:00:00Z",
                     "1970-01-01T00:10:30+15:22", "2499-12-31T23:30:00-00:45"]
        var agreed = 0
        for i in 0..<FuzzSeed.iterations(4000) {
            let text = i < bases.count ? bases[i] : QueryFuzzTests.mutate(bases.randomElement(using: &g)!, &g)
            let range = NSRange(text.startIndex..., in: text)
            let inSpec = patterns.contains { text.count <= $0.maxLength && $0.regex.firstMatch(in: text, range: range) != nil }
            let accepted = (try? API.parseTime(text, parameter: "since")) != nil
            // The server also takes a space for the `T` (RFC 3339 allows
            // it), which the spec leaves out: form encoders send it as `+`,
            // an offset sign. Everything else the spec allows is accepted,
            // including edge times an offset moves out of the range (clamped).
            guard inSpec == accepted || (!inSpec && accepted && text.contains(" ")) else {
                Issue.record("seed \(queryFuzzSeed) (FLOWFOREST_FUZZ_SEED): \(text.debugDescription) matches the spec: \(inSpec), server accepts: \(accepted)")
                return
            }
            if accepted { agreed += 1 }
        }
        #expect(agreed > 100, "seed \(queryFuzzSeed): only \(agreed) accepted")
    }
}
