import FlowForestCore
import Testing
@testable import FlowForestDetection

/// Floods of IP protocols other than TCP, UDP and ICMP (hping3 --rawip):
/// named on the flooder and on the victim.
@Suite("IP floods")
struct IPFloodTests {
    /// `rate` bare packets of protocol `proto` a second to the web server.
    static func flood(proto: UInt8, rate: Int) -> @Sendable (inout TrafficSimulator, Int) -> Void {
        { s, _ in
            for i in 0..<rate {
                s.packet(at: s.nowNs + UInt64(i) * UInt64(1_000_000_000 / rate), Attacks.attacker, TrafficSimulator.web, sport: 0, dport: 0,
                         proto: proto, length: 84)
            }
        }
    }

    @Test("a raw IP flood is an ip flood on the flooder and the victim within 2 s", arguments: [UInt8(47), 0, 255])
    func rawIPFlood(proto: UInt8) throws {
        var sim = TrafficSimulator()
        var detector = trainedDetector(&sim)
        let found = sim.runAttack(seconds: 4, into: &detector, Self.flood(proto: proto, rate: 2000))
        let summary = found.map { "s\($0.second) \($0.anomaly.kind) \($0.anomaly.label)" }
        let victim = try #require(found.first { $0.anomaly.kind == .destination && $0.anomaly.label == .ipFlood }, "\(summary)")
        #expect(victim.second <= 2)
        #expect(victim.anomaly.destinationAddress == TrafficSimulator.web)
        #expect(victim.anomaly.explanation.contains { $0.feature == "other_ip_packets_received_1s" && $0.direction == "above" })
        #expect(found.contains { $0.anomaly.kind == .host && $0.anomaly.label == .ipFlood && $0.anomaly.sourceAddress == Attacks.attacker },
                "\(summary)")
    }
}
