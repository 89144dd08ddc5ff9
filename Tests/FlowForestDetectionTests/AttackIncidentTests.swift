import FlowForestCore
import FlowForestPipeline
import Testing
@testable import FlowForestDetection

/// One attack is one incident: the real detector's anomalies on simulated
/// traffic, grouped by the pipeline's incident tracker. The attacker is an
/// ordinary host besides (it looks names up every second), and the victim
/// serves other clients meanwhile, so neither side has only one peer.
@Suite("An attack amid other traffic is one incident")
struct AttackIncidentTests {
    struct Case: Sendable, CustomStringConvertible {
        var name: String
        var family: LabelFamily
        var seconds: Int
        var attack: @Sendable (inout TrafficSimulator, Int) -> Void
        var description: String { name }
    }

    static let cases: [Case] = [
        Case(name: "slow connections", family: .slowConnections, seconds: 12, attack: Attacks.slowConnections),
        Case(name: "port scan", family: .scan, seconds: 4, attack: Attacks.portScan),
    ]

    @Test("the attacker's host anomaly and the victim's destination anomaly name each other and share one incident", arguments: cases)
    func oneIncident(_ c: Case) throws {
        var sim = TrafficSimulator()
        var detector = trainedDetector(&sim)
        let found = sim.runAttack(seconds: c.seconds, into: &detector) { s, second in
            c.attack(&s, second)
            // At no steady rhythm, which would be a beacon of its own.
            s.dnsQuery(at: s.nowNs + UInt64(s.rng.below(900_000_000)), Attacks.attacker, TrafficSimulator.dns)
        }.map(\.anomaly)
        print("\(c.name): \(found.map { "\($0.kind) \($0.label) \($0.sourceAddress.map { "\($0)" } ?? "-") -> \($0.destinationAddress.map { "\($0)" } ?? "-")" })")
        let attack = found.filter { $0.label.family == c.family }
        let host = try #require(attack.first { $0.kind == .host && $0.sourceAddress == Attacks.attacker }, "no host anomaly of the attacker")
        let victim = try #require(attack.first { $0.kind == .destination && $0.destinationAddress == TrafficSimulator.web },
                                  "no destination anomaly of the victim")
        // Each names the other side: the peer that made most of its records in the poll.
        #expect(host.destinationAddress == TrafficSimulator.web)
        #expect(victim.sourceAddress == Attacks.attacker)

        var tracker = IncidentTracker(configuration: IncidentConfiguration(quietGap: .seconds(300)))
        var anomalies = found
        let changes = tracker.observe(&anomalies, nowMs: found.last.map(\.timeMs) ?? 0)
        let incidents = Dictionary(changes.map { ($0.incident.uid, $0.incident) }, uniquingKeysWith: { _, last in last }).values
        let about = incidents.filter { $0.actors.contains(Attacks.attacker) || $0.targets.contains(TrafficSimulator.web) }
        #expect(about.count == 1, "\(about.map { "\($0.label) \($0.actors) -> \($0.targets)" })")
        #expect(about.first?.family == c.family)
        #expect(about.first?.actors.first == Attacks.attacker)
    }
}

@Suite("The peer an entity's anomaly names")
struct MainPeerTests {
    static func ip(_ i: Int) -> IPAddress { TrafficSimulator.ip("198.18.3.\(i)") }

    @Test("the peer making most of a poll's records is named, though many others came first")
    func majorityAfterOthers() throws {
        var e = WindowedStatistics(stems: 1, now: 0)
        for i in 1...20 { e.countPeer(Self.ip(i), ipProtocol: 6, port: 443) }
        for _ in 0..<40 { e.countPeer(Self.ip(99), ipProtocol: 6, port: 80) }
        let main = try #require(e.mainPeer)
        #expect(main.peer == Self.ip(99) && main.port == 80)
        e.endPoll()
        #expect(e.mainPeer == nil, "peers are counted per poll")
    }

    @Test("no peer is named without a majority: an even split, or a flood's many forged sources")
    func noMajority() {
        var split = WindowedStatistics(stems: 1, now: 0)
        for _ in 0..<10 { split.countPeer(Self.ip(1), ipProtocol: 6, port: 80); split.countPeer(Self.ip(2), ipProtocol: 6, port: 80) }
        #expect(split.mainPeer == nil)
        var flood = WindowedStatistics(stems: 1, now: 0)
        for i in 0..<5000 { flood.countPeer(TrafficSimulator.ip("198.19.\(i / 250).\(i % 250 + 1)"), ipProtocol: 6, port: 80) }
        #expect(flood.mainPeer == nil)
        #expect(flood.peers.count <= WindowedStatistics.trackedPeers)
    }
}
