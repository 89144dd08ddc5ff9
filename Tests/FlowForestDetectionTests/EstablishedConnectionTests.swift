import FlowForestCore
import Testing
@testable import FlowForestDetection

/// SYN floods against an open port: the server answers each SYN and the
/// flooder's kernel resets the connection, so SYNs are answered but no
/// connection is established. What tells them from a flood of completed
/// requests is the handshakes completed, not the bytes that other clients'
/// downloads put into the same second.
@Suite("Established connections")
struct EstablishedConnectionTests {
    /// hping3 -S at `rate` a second to port 80: SYN, SYN-ACK, the attacker's RST.
    static func answeredSynFlood(rate: Int) -> @Sendable (inout TrafficSimulator, Int) -> Void {
        { s, _ in
            for i in 0..<rate {
                let sport = UInt16(1024 + (i * 13 + s.rng.below(50_000)) % 60_000)
                let t = s.nowNs + UInt64(i) * UInt64(1_000_000_000 / rate)
                s.packet(at: t, Attacks.attacker, TrafficSimulator.web, sport: sport, dport: 80, proto: 6, length: 40, flags: .syn)
                s.packet(at: t + 60_000, TrafficSimulator.web, Attacks.attacker, sport: 80, dport: sport, proto: 6, length: 44,
                         flags: [.syn, .ack])
                s.packet(at: t + 120_000, Attacks.attacker, TrafficSimulator.web, sport: sport, dport: 80, proto: 6, length: 40, flags: .rst)
            }
        }
    }

    /// The flood with a large download by a normal client in the same seconds.
    static func floodWithDownloads(_ s: inout TrafficSimulator, _ second: Int) {
        answeredSynFlood(rate: 200)(&s, second)
        s.tcpSession(at: s.nowNs + 5_000_000, TrafficSimulator.clients[2], TrafficSimulator.web, dport: 80, responseSegments: 200)
    }

    @Test("an answered SYN flood at 200/s beside a download is a syn flood on both ends, never a connection flood")
    func synFloodBesideDownloads() throws {
        var sim = TrafficSimulator()
        var detector = trainedDetector(&sim)
        let found = sim.runAttack(seconds: 5, into: &detector, Self.floodWithDownloads).map(\.anomaly)
        let summary = found.map { "\($0.kind) \($0.label)" }
        #expect(found.contains { $0.kind == .host && $0.label == .synFlood && $0.sourceAddress == Attacks.attacker }, "\(summary)")
        #expect(found.contains { $0.kind == .destination && $0.label == .synFlood && $0.destinationAddress == TrafficSimulator.web },
                "\(summary)")
        #expect(!found.contains { $0.label == .connectionFlood }, "\(summary)")
    }

    @Test("a connection counts as established once, when its handshake completes; a reset SYN never does")
    func countedOnce() throws {
        var sim = TrafficSimulator()
        var tracker = HostTracker()
        var flows = FlowLedger()
        let column = FeatureSchema.index("established_flows_100s", in: .destination)
        var counts: [Double] = []
        // A connection whose packets span three polls, and a reset SYN in the first.
        let client = TrafficSimulator.clients[0], web = TrafficSimulator.web, t = sim.nowNs
        sim.packet(at: t + 1_000_000, client, web, sport: 40_000, dport: 80, proto: 6, length: 60, flags: .syn)
        sim.packet(at: t + 1_200_000, web, client, sport: 80, dport: 40_000, proto: 6, length: 60, flags: [.syn, .ack])
        sim.packet(at: t + 1_300_000, client, web, sport: 40_000, dport: 80, proto: 6, length: 52, flags: .ack)
        for second in 1...2 {
            sim.packet(at: t + UInt64(second) * 1_000_000_000 + 5_000_000, client, web, sport: 40_000, dport: 80, proto: 6, length: 300,
                       flags: [.psh, .ack])
        }
        Self.answeredSynFlood(rate: 1)(&sim, 1)
        for _ in 0..<3 {
            let batch = sim.tick()
            let changes = flows.apply(batch.records, origin: "test", nowNs: batch.timeNs)
            for e in tracker.update(changes, flows: flows, nowNs: batch.timeNs) where e.kind == .destination && e.address == web {
                counts.append(FeatureSchema.destination[column].display(e.vector[column]))
            }
        }
        #expect(counts.count == 3, "a vector each poll: \(counts)")
        let first = try #require(counts.first)
        #expect(first > 0.99 && first <= 1, "one connection established, not the reset SYN: \(counts)")
        #expect(counts.allSatisfy { $0 <= 1 }, "never counted twice: \(counts)")
    }
}
