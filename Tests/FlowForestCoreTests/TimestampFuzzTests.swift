import FlowForestCore
import FlowForestTestSupport
import Foundation
import Testing

/// The seed of this run (`FLOWFOREST_FUZZ_SEED` replays or explores).
let fuzzSeed = FuzzSeed.current().value

/// Text that is mostly a timestamp: real fields pushed past their limits, then
/// sometimes mutated byte by byte.
func hostileTimestamp(_ g: inout SplitMix64) -> (text: String, fields: (y: Int, mo: Int, d: Int, h: Int, mi: Int, s: Int, offset: Int?, fraction: String)?) {
    func pad(_ v: Int, _ w: Int) -> String { String(repeating: "0", count: max(0, w - String(v).count)) + String(v) }
    let y = Int.random(in: 1960...2999, using: &g)
    let mo = Int.random(in: 0...13, using: &g), d = Int.random(in: 0...32, using: &g)
    let h = Int.random(in: 0...25, using: &g), mi = Int.random(in: 0...61, using: &g), s = Int.random(in: 0...62, using: &g)
    let fraction = Bool.random(using: &g) ? "" : String((0..<Int.random(in: 1...12, using: &g)).map { _ in "0123456789".randomElement(using: &g)! })
    var offset: Int?
    var zone = "Z"
    if Bool.random(using: &g) {
        let oh = Int.random(in: 0...99, using: &g), om = Int.random(in: 0...99, using: &g)
        let sign = Bool.random(using: &g) ? 1 : -1
        zone = (sign > 0 ? "+" : "-") + pad(oh, 2) + ":" + pad(om, 2)
        offset = oh < 24 && om < 60 ? sign * (oh * 3600 + om * 60) : nil
        if offset == nil { offset = Int.min }  // marks an impossible offset
    }
    var text = "\(pad(y, 4))-\(pad(mo, 2))-\(pad(d, 2))T\(pad(h, 2)):\(pad(mi, 2)):\(pad(s, 2))" + (fraction.isEmpty ? "" : "." + fraction) + zone
    guard Int.random(in: 0..<3, using: &g) == 0 else { return (text, (y, mo, d, h, mi, s, offset ?? 0, fraction)) }
    var bytes = Array(text.utf8)
    let alphabet = Array("0123456789-:+.TZtz ".utf8) + [0, 0x7F, 0xC3, 0xA9, 0xFF]
    for _ in 0..<Int.random(in: 1...4, using: &g) {
        switch Int.random(in: 0..<4, using: &g) {
        case 0 where !bytes.isEmpty: bytes[Int.random(in: 0..<bytes.count, using: &g)] = alphabet.randomElement(using: &g)!
        case 1: bytes.insert(alphabet.randomElement(using: &g)!, at: Int.random(in: 0...bytes.count, using: &g))
        case 2 where !bytes.isEmpty: bytes.remove(at: Int.random(in: 0..<bytes.count, using: &g))
        default: bytes = Array(bytes.prefix(Int.random(in: 0...bytes.count, using: &g)))
        }
    }
    text = String(decoding: bytes, as: UTF8.self)
    return (text, nil)
}

@Suite("Hostile timestamps (seeded fuzz)")
struct TimestampFuzzTests {
    @Test("parseRFC3339 never traps; what it accepts is in range, matches timegm and round-trips")
    func rfc3339() {
        var g = SplitMix64(seed: fuzzSeed)
        var accepted = 0
        for _ in 0..<FuzzSeed.iterations(5000) {
            let (text, fields) = hostileTimestamp(&g)
            let parsed = Timestamp.parseRFC3339(text)
            if let fields {
                // An independent oracle: libc's timegm on fields it normalises
                // only when they are valid, which we check first.
                var expected: UInt64?
                let days = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
                let leap = (fields.y % 4 == 0 && fields.y % 100 != 0) || fields.y % 400 == 0
                if (1...12).contains(fields.mo), fields.d >= 1, fields.d <= days[fields.mo - 1] + (fields.mo == 2 && leap ? 1 : 0),
                   fields.h < 24, fields.mi < 60, fields.s <= 60, let offset = fields.offset, offset != Int.min {
                    var parts = tm()
                    parts.tm_year = Int32(fields.y - 1900); parts.tm_mon = Int32(fields.mo - 1); parts.tm_mday = Int32(fields.d)
                    parts.tm_hour = Int32(fields.h); parts.tm_min = Int32(fields.mi)
                    let seconds = Int64(timegm(&parts)) + Int64(fields.s) - Int64(offset)
                    if seconds >= 0, seconds < Timestamp.endSeconds {
                        let digits = fields.fraction.prefix(9)
                        let fractionNs = digits.isEmpty ? 0 : UInt64(digits + String(repeating: "0", count: 9 - digits.count))!
                        expected = UInt64(seconds) * 1_000_000_000 + fractionNs
                    }
                }
                if parsed != expected {
                    Issue.record("seed \(fuzzSeed) (FLOWFOREST_FUZZ_SEED): \(text.debugDescription) parsed \(String(describing: parsed)), expected \(String(describing: expected))")
                    return
                }
            }
            guard let ns = parsed else { continue }
            accepted += 1
            let again = Timestamp.parseRFC3339(Timestamp.rfc3339(nanoseconds: ns))
            guard ns < Timestamp.endNs, again == ns / 1_000_000 * 1_000_000 else {
                Issue.record("seed \(fuzzSeed) (FLOWFOREST_FUZZ_SEED): \(text.debugDescription) gave \(ns), which formats as \(Timestamp.rfc3339(nanoseconds: ns)) and parses back as \(String(describing: again))")
                return
            }
        }
        // The generator must reach the accepting paths too, or this proves little.
        #expect(accepted > 500, "seed \(fuzzSeed): only \(accepted) inputs accepted")
    }

    @Test("parseEpochSeconds never traps and accepts only plain decimals in range")
    func epochSeconds() {
        var g = SplitMix64(seed: fuzzSeed ^ 0xE90C)
        let alphabet = Array("0123456789.+-eExn ".utf8) + [0]
        for _ in 0..<FuzzSeed.iterations(5000) {
            let length = Int.random(in: 0...24, using: &g)
            let text = String(decoding: (0..<length).map { _ in
                Int.random(in: 0..<4, using: &g) == 0 ? alphabet.randomElement(using: &g)! : UInt8(ascii: "0") + UInt8.random(in: 0...9, using: &g)
            }, as: UTF8.self)
            guard let ns = Timestamp.parseEpochSeconds(text) else { continue }
            let plain = text.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || $0 == UInt8(ascii: ".") }
            guard plain, ns < Timestamp.endNs, let value = Double(text), abs(Double(ns) / 1e9 - value) < 1e-3 else {
                Issue.record("seed \(fuzzSeed) (FLOWFOREST_FUZZ_SEED): \(text.debugDescription) accepted as \(ns)")
                return
            }
        }
    }
}
