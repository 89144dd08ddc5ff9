import FlowForestCore
import FlowForestTestSupport
import Foundation
@testable import PcapCapture
import Testing

/// Capture files mutated at random, seeded: every one reads to its end with
/// every packet in exactly one place (a flow, non-IP, malformed or a counted
/// loss), or is refused with a one-line error. Never a trap, never a hang.
@Suite("Capture file readers (seeded fuzz)")
struct CaptureFileFuzzTests {
    typealias T = CaptureFileTimestampTests

    /// A sound file to start from: classic (µs or ns) or pcapng, a few packets.
    static func base(_ g: inout SplitMix64) -> [UInt8] {
        switch Int.random(in: 0..<3, using: &g) {
        case 0: return T.classic(nanosecond: false, seconds: T.goodSeconds, fraction: 10)
        case 1: return T.classic(nanosecond: true, seconds: T.goodSeconds, fraction: 10)
        default:
            let unit: UInt64 = 1_000_000
            let t = UInt64(T.goodSeconds) * unit
            return T.pcapng(tsresol: Bool.random(using: &g) ? 6 : nil, times: [t, t + 1, t + unit])
        }
    }

    /// Overwrites, bit flips, 32-bit field writes of edge values, truncation
    /// and duplicated ranges: what a corrupt disk or a hostile sender makes.
    static func mutate(_ bytes: [UInt8], _ g: inout SplitMix64) -> [UInt8] {
        var d = bytes
        let edges: [UInt32] = [0, 1, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF, 0xFFFF_FFFE, 12, 65535, 0x0A0D_0D0A]
        for _ in 0..<Int.random(in: 1...4, using: &g) where !d.isEmpty {
            let at = Int.random(in: 0..<d.count, using: &g)
            switch Int.random(in: 0..<5, using: &g) {
            case 0: d[at] = UInt8.random(in: 0...255, using: &g)
            case 1: d[at] ^= 1 << UInt8.random(in: 0...7, using: &g)
            case 2 where at + 4 <= d.count:
                let v = edges.randomElement(using: &g)!
                let le = withUnsafeBytes(of: v.littleEndian, Array.init)
                d.replaceSubrange(at..<at + 4, with: le)
            case 3: d = Array(d.prefix(at))
            default:
                let end = min(d.count, at + Int.random(in: 1...64, using: &g))
                d.insert(contentsOf: d[at..<end], at: at)
            }
        }
        return d
    }

    @Test("mutated pcap and pcapng files: no trap, exact accounting or a one-line error")
    func mutatedFiles() async throws {
        let seed = FuzzSeed.current()
        var g = SplitMix64(seed: seed.value ^ 0xCAF1)
        var read = 0, refused = 0
        for i in 0..<FuzzSeed.iterations(300) {
            let bytes = Self.mutate(Self.base(&g), &g)
            switch try await T.read(bytes) {
            case .read(let s):
                read += 1
                let placed = s.packetsAccounted + s.notIP + s.malformed + s.tableFull
                guard placed == s.packetsSeen else {
                    Issue.record("file \(i), \(seed): \(s.packetsSeen) packets seen, \(placed) placed: \(s)")
                    return
                }
            case .failed(let message):
                refused += 1
                guard !message.isEmpty, !message.contains("\n") else {
                    Issue.record("file \(i), \(seed): error \(message.debugDescription)")
                    return
                }
            }
        }
        // Both outcomes occur, or the mutations are not reaching the readers.
        #expect(read > 10 && refused > 10, "\(seed): \(read) read, \(refused) refused")
    }
}
