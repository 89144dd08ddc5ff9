import FlowForestCore
import Testing
@testable import FlowForestDetection

/// DNS tunnels: a steady stream of long queries (data encoded in the names)
/// from one host to one resolver, each answered. Not a UDP flood (the rate
/// is modest), and not ordinary lookups (their names are short).
@Suite("DNS tunnel")
struct DNSTunnelTests {
    /// `rate` queries a second of `length` IP bytes to the resolver, each
    /// from a new source port (or all from one) and answered.
    static func tunnel(rate: Int, length: UInt32, onePort: Bool) -> @Sendable (inout TrafficSimulator, Int) -> Void {
        { s, _ in
            for i in 0..<rate {
                let t = s.nowNs + UInt64(i) * UInt64(1_000_000_000 / rate)
                let sport = onePort ? 41_000 : s.ephemeralPort()
                s.packet(at: t, Attacks.attacker, TrafficSimulator.dns, sport: sport, dport: 53, proto: 17, length: length)
                s.packet(at: t + 700_000, TrafficSimulator.dns, Attacks.attacker, sport: 53, dport: sport, proto: 17, length: length + 40)
            }
        }
    }

    struct Case: Sendable, CustomStringConvertible {
        var description: String
        var attack: @Sendable (inout TrafficSimulator, Int) -> Void
    }

    static let cases: [Case] = [
        Case(description: "10 queries/s of 170 bytes, one socket", attack: tunnel(rate: 10, length: 170, onePort: true)),
        Case(description: "40 queries/s of 250 bytes, a socket per query", attack: tunnel(rate: 40, length: 250, onePort: false)),
    ]

    @Test("long queries to one resolver at a steady rate are a dns tunnel by the sender, within 5 s", arguments: cases)
    func tunnelIsNamed(_ c: Case) throws {
        var sim = TrafficSimulator()
        var detector = trainedDetector(&sim)
        let found = sim.runAttack(seconds: 8, into: &detector, c.attack)
        let summary = found.map { "s\($0.second) \($0.anomaly.kind) \($0.anomaly.label) \($0.anomaly.explanation.map(\.text))" }
        let tunnel = try #require(found.first { $0.anomaly.label == .dnsTunnel }, "no dns tunnel: \(summary)")
        #expect(tunnel.second <= 5, "\(summary)")
        #expect(tunnel.anomaly.kind == .host && tunnel.anomaly.sourceAddress == Attacks.attacker)
        #expect(tunnel.anomaly.explanation.contains { $0.feature == "dns_bytes_sent_10s" && $0.direction == "above" })
        #expect(!found.contains { $0.anomaly.label == .udpFlood }, "\(summary)")
    }

    @Test("as many short lookups are not a dns tunnel")
    func shortLookupsAreNot() {
        var sim = TrafficSimulator()
        var detector = trainedDetector(&sim)
        let found = sim.runAttack(seconds: 8, into: &detector, Self.tunnel(rate: 40, length: 70, onePort: false)).map(\.anomaly)
        #expect(!found.contains { $0.label == .dnsTunnel }, "\(found.map { "\($0.kind) \($0.label)" })")
    }

    @Test("a UDP flood to port 53 stays a udp flood")
    func floodIsAFlood() throws {
        var sim = TrafficSimulator()
        var detector = trainedDetector(&sim)
        let found = sim.runAttack(seconds: 4, into: &detector, Self.tunnel(rate: 3000, length: 540, onePort: true)).map(\.anomaly)
        #expect(found.contains { $0.kind == .host && $0.label == .udpFlood }, "\(found.map { "\($0.kind) \($0.label)" })")
        #expect(!found.contains { $0.label == .dnsTunnel })
    }
}
