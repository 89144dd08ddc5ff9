import FlowForestCore
@testable import FlowForestServer
import FlowForestTestSupport
import Foundation
import Testing

/// `POST /api/traffic` bodies mutated at random, seeded: the decoder returns
/// records that hold every documented bound, or one error line naming the
/// record and field. Never a trap.
@Suite("Ingest decoder (seeded fuzz)")
struct IngestFuzzTests {
    static let records = [
        #"{"src_ip": "198.18.0.1", "dst_ip": "198.18.0.2", "src_port": 40000, "dst_port": 443, "protocol": "tcp", "length": 60, "timestamp": 1764064800.25, "tcp_flags": ["SYN"]}"#,
        #"{"src_ip": "2001:2::1", "dst_ip": "2001:2::2", "src_port": null, "dst_port": 53, "protocol": 17, "length": 100, "timestamp": "2026-11-25T10:00:00.5+01:00"}"#,
        #"{"src_ip": "198.18.0.9", "dst_ip": "198.18.0.2", "protocol": "ICMP", "length": 84, "timestamp": "2026-11-25 09:00:00Z", "tcp_flags": null}"#,
    ]

    /// Token-level mutations (numbers, strings, brackets) keep the body close
    /// to JSON, so the decoder's field checks are reached, not just the parser.
    static func mutate(_ text: String, _ g: inout SplitMix64) -> String {
        let tokens = ["0", "-1", "65536", "1e308", "2e10", "1.8446744073709552e10", "NaN", "\"\"", "\"\\u0000\"", "null", "true",
                      "[]", "{}", "\"198.18.0.1\\u0000x\"", "\"::ffff:1.2.3.4\"", "\"2600-01-01T00:00:00Z\"", "\"2026-02-29T00:00:00Z\"",
                      "99999999999999999999", "\"tcpx\"", "256", "65575", "65576", "19", "[\"XYZ\"]", ",", "]", "\""]
        var bytes = Array(text.utf8)
        for _ in 0..<Int.random(in: 1...3, using: &g) where !bytes.isEmpty {
            let at = Int.random(in: 0..<bytes.count, using: &g)
            switch Int.random(in: 0..<4, using: &g) {
            case 0:
                // Replace the value after the `at`-th colon-ish position.
                let end = bytes[at...].firstIndex { $0 == UInt8(ascii: ",") || $0 == UInt8(ascii: "}") } ?? bytes.count
                bytes.replaceSubrange(at..<end, with: Array(tokens.randomElement(using: &g)!.utf8))
            case 1: bytes[at] = UInt8.random(in: 0x20...0x7E, using: &g)
            case 2: bytes.remove(at: at)
            default: bytes.insert(contentsOf: Array(tokens.randomElement(using: &g)!.utf8), at: at)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    @Test("mutated bodies: accepted records hold every bound; refusals are one line")
    func mutatedBodies() throws {
        let seed = FuzzSeed.current()
        var g = SplitMix64(seed: seed.value ^ 0x1A6E57)
        let window: Range<UInt64> = 1_700_000_000_000_000_000..<1_800_000_000_000_000_000
        var accepted = 0, refused = 0
        for i in 0..<FuzzSeed.iterations(5000) {
            let body = "[" + (0..<Int.random(in: 1...3, using: &g)).map { _ in Self.records.randomElement(using: &g)! }.joined(separator: ",") + "]"
            let text = Self.mutate(body, &g)
            do {
                let packets = try IngestRecord.decodeAll(Data(text.utf8), maxRecords: 4, window: window)
                accepted += 1
                for p in packets {
                    guard window.contains(p.timestampNs), (20...65575).contains(p.ipLength), p.source.isIPv4 == p.destination.isIPv4 else {
                        Issue.record("body \(i), \(seed): \(text.debugDescription) accepted as \(p)")
                        return
                    }
                }
            } catch {
                refused += 1
                let message = error.description
                guard !message.isEmpty, !message.contains("\n"), message.utf8.count < 600 else {
                    Issue.record("body \(i), \(seed): \(text.debugDescription) refused with \(message.debugDescription)")
                    return
                }
            }
        }
        #expect(accepted > 40 && refused > 1000, "\(seed): \(accepted) accepted, \(refused) refused")
    }
}
