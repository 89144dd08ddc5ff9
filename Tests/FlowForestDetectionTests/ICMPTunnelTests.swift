import FlowForestCore
import Testing
@testable import FlowForestDetection

/// ICMP tunnels: echo requests carrying data in payloads far larger than a
/// ping's, at a modest rate, answered. Data leaving in them is exfiltration.
@Suite("ICMP tunnel")
struct ICMPTunnelTests {
    /// `rate` echo requests a second of `length` IP bytes, each echoed back.
    static func tunnel(rate: Int, length: UInt32) -> @Sendable (inout TrafficSimulator, Int) -> Void {
        { s, _ in
            for i in 0..<rate {
                let t = s.nowNs + UInt64(i) * UInt64(1_000_000_000 / rate)
                s.packet(at: t, Attacks.attacker, Attacks.outside, sport: 8, dport: 0, proto: 1, length: length, icmpType: 8)
                s.packet(at: t + 400_000, Attacks.outside, Attacks.attacker, sport: 0, dport: 8, proto: 1, length: length, icmpType: 0)
            }
        }
    }

    @Test("20 echo requests a second of 1028 bytes are exfiltration by the sender, within 5 s, not an icmp flood")
    func tunnelIsExfiltration() throws {
        var sim = TrafficSimulator()
        var detector = trainedDetector(&sim)
        let found = sim.runAttack(seconds: 8, into: &detector, Self.tunnel(rate: 20, length: 1028))
        let summary = found.map { "s\($0.second) \($0.anomaly.kind) \($0.anomaly.label) \($0.anomaly.explanation.map(\.text))" }
        let exfiltration = try #require(found.first { $0.anomaly.label == .exfiltration }, "no exfiltration: \(summary)")
        #expect(exfiltration.second <= 5, "\(summary)")
        #expect(exfiltration.anomaly.kind == .host && exfiltration.anomaly.sourceAddress == Attacks.attacker)
        #expect(exfiltration.anomaly.explanation.contains { $0.feature == "icmp_bytes_sent_10s" && $0.direction == "above" })
        #expect(!found.contains { $0.anomaly.label == .icmpFlood }, "\(summary)")
    }

    @Test("as many ordinary pings are not exfiltration")
    func pingsAreNot() {
        var sim = TrafficSimulator()
        var detector = trainedDetector(&sim)
        let found = sim.runAttack(seconds: 8, into: &detector, Self.tunnel(rate: 20, length: 84)).map(\.anomaly)
        #expect(!found.contains { $0.label == .exfiltration }, "\(found.map { "\($0.kind) \($0.label)" })")
    }
}
