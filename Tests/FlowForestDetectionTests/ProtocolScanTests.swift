import FlowForestCore
import Testing
@testable import FlowForestDetection

/// Scans over any transport or over the IP protocol numbers: each probe's
/// port (TCP, UDP, SCTP) or, for protocols without ports, the protocol is a
/// target, so they are port scans like any TCP scan.
@Suite("Scans over any protocol")
struct ProtocolScanTests {
    static let sctp: UInt8 = 132

    /// nmap -sY: one SCTP INIT per port from one source port; the victim
    /// has no SCTP and answers each with ICMP protocol unreachable, or not at all.
    static func sctpInitScan(answered: Bool) -> @Sendable (inout TrafficSimulator, Int) -> Void {
        { s, second in
            guard second <= 2 else { return }
            for i in 0..<100 {
                let port = UInt16((second - 1) * 100 + i + 1)
                let t = s.nowNs + UInt64(i) * 8_000_000
                s.packet(at: t, Attacks.attacker, TrafficSimulator.web, sport: 51_000, dport: port, proto: sctp, length: 52)
                if answered && i % 10 == 0 {
                    s.packet(at: t + 50_000, TrafficSimulator.web, Attacks.attacker, sport: 3, dport: 2, proto: 1, length: 80, icmpType: 3)
                }
            }
        }
    }

    /// nmap -sO: one bare IP packet per protocol number; a few answered
    /// with ICMP protocol unreachable (Linux rate-limits them).
    static func protocolScan(_ s: inout TrafficSimulator, _ second: Int) {
        guard second <= 2 else { return }
        for i in 0..<128 {
            let proto = UInt8((second - 1) * 128 + i)
            guard proto != IPProtocol.tcp, proto != IPProtocol.udp, proto != IPProtocol.icmp, proto != sctp else { continue }
            let t = s.nowNs + UInt64(i) * 7_000_000
            s.packet(at: t, Attacks.attacker, TrafficSimulator.web, sport: 0, dport: 0, proto: proto, length: 20)
            if i % 20 == 0 {
                s.packet(at: t + 50_000, TrafficSimulator.web, Attacks.attacker, sport: 3, dport: 2, proto: 1, length: 48, icmpType: 3)
            }
        }
    }

    struct Case: Sendable, CustomStringConvertible {
        var description: String
        var attack: @Sendable (inout TrafficSimulator, Int) -> Void
    }

    static let cases: [Case] = [
        Case(description: "SCTP INIT scan, unanswered", attack: sctpInitScan(answered: false)),
        Case(description: "SCTP INIT scan, protocol unreachable", attack: sctpInitScan(answered: true)),
        Case(description: "IP protocol scan", attack: protocolScan),
    ]

    @Test("a scan of SCTP ports or of IP protocols is a port scan by the scanner, within 3 s", arguments: cases)
    func scanIsPortScan(_ c: Case) throws {
        var sim = TrafficSimulator()
        var detector = trainedDetector(&sim)
        let found = sim.runAttack(seconds: 5, into: &detector, c.attack)
        let summary = found.map { "s\($0.second) \($0.anomaly.kind) \($0.anomaly.label)" }
        let scan = try #require(found.first { $0.anomaly.label == .portScan }, "no port scan: \(summary)")
        #expect(scan.second <= 3)
        #expect(found.contains { $0.anomaly.label == .portScan && $0.anomaly.kind == .host && $0.anomaly.sourceAddress == Attacks.attacker },
                "\(summary)")
        #expect(scan.anomaly.explanation.contains { $0.feature.hasPrefix("distinct_dst_ports") && $0.direction == "above" })
        #expect(found.count <= 6, "\(summary)")
    }

    @Test("ordinary traffic on three protocols counts three targets, not more")
    func ordinaryProtocols() throws {
        var sim = TrafficSimulator()
        var tracker = HostTracker()
        var flows = FlowLedger()
        let client = TrafficSimulator.clients[0]
        sim.tcpSession(at: sim.nowNs + 1_000_000, client, TrafficSimulator.web, dport: 443)
        sim.dnsQuery(at: sim.nowNs + 2_000_000, client, TrafficSimulator.dns)
        sim.ping(at: sim.nowNs + 3_000_000, client, TrafficSimulator.web)
        sim.ping(at: sim.nowNs + 4_000_000, client, TrafficSimulator.web)
        let batch = sim.tick()
        let changes = flows.apply(batch.records, origin: "test", nowNs: batch.timeNs)
        let vectors = tracker.update(changes, flows: flows, nowNs: batch.timeNs)
        let host = vectors.first { $0.kind == .host && $0.address == client }
        let column = FeatureSchema.index("distinct_dst_ports_10s", in: .host)
        let count = try #require(host.map { FeatureSchema.host[column].display($0.vector[column]) })
        // Three targets (tcp/443, udp/53, icmp), each a fraction of a second old.
        #expect(count > 2.5 && count <= 3, "\(count)")
    }
}
