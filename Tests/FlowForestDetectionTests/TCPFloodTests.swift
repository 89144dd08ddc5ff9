import FlowForestCore
import Testing
@testable import FlowForestDetection

/// TCP floods that carry no SYN, as hping3 sends them: each packet from a
/// new source port (hping3's default), or all from one port (`-k -s`).
enum TCPFloods {
    /// `flags` packets at `rate` a second from the attacker to the web
    /// server's port 80; a closed-connection victim answers each with a RST
    /// (as Linux does to a stray ACK), or stays silent.
    static func oneSource(_ flags: TCPFlags, rate: Int = 2000, fixedPort: Bool = false,
                          answered: Bool = true) -> @Sendable (inout TrafficSimulator, Int) -> Void {
        { s, _ in
            for i in 0..<rate {
                let sport: UInt16 = fixedPort ? 2000 : UInt16(1024 + (i * 7 + s.rng.below(50_000)) % 60_000)
                let t = s.nowNs + UInt64(i) * UInt64(1_000_000_000 / rate)
                s.packet(at: t, Attacks.attacker, TrafficSimulator.web, sport: sport, dport: 80, proto: 6, length: 40, flags: flags)
                if answered {
                    s.packet(at: t + 40_000, TrafficSimulator.web, Attacks.attacker, sport: 80, dport: sport, proto: 6, length: 40, flags: .rst)
                }
            }
        }
    }

    /// `flags` packets from forged sources across 198.19.0.0/16 (`--rand-source`):
    /// the victim's resets go to addresses that never answer.
    static func forged(_ flags: TCPFlags, rate: Int = 2000) -> @Sendable (inout TrafficSimulator, Int) -> Void {
        { s, _ in
            for i in 0..<rate {
                let source = TrafficSimulator.ip("198.19.\(s.rng.below(256)).\(1 + s.rng.below(254))")
                let t = s.nowNs + UInt64(i) * UInt64(1_000_000_000 / rate)
                s.packet(at: t, source, TrafficSimulator.web, sport: UInt16(1024 + s.rng.below(60_000)), dport: 80, proto: 6,
                         length: 40, flags: flags)
            }
        }
    }
}

@Suite("TCP floods without SYN")
struct TCPFloodTests {
    struct Case: Sendable, CustomStringConvertible {
        var description: String
        var attack: @Sendable (inout TrafficSimulator, Int) -> Void
        /// Whether the attacker's own host vector must carry the label (not for forged sources).
        var hostLabelled: Bool
    }

    static let cases: [Case] = [
        Case(description: "ACK flood, new port per packet", attack: TCPFloods.oneSource(.ack), hostLabelled: true),
        Case(description: "FIN flood, one port", attack: TCPFloods.oneSource(.fin, fixedPort: true), hostLabelled: true),
        Case(description: "RST flood, unanswered", attack: TCPFloods.oneSource(.rst, answered: false), hostLabelled: true),
        Case(description: "PSH+ACK flood at 500/s", attack: TCPFloods.oneSource([.psh, .ack], rate: 500), hostLabelled: true),
        Case(description: "XMAS flood", attack: TCPFloods.oneSource([.fin, .psh, .urg]), hostLabelled: true),
        Case(description: "ACK flood from forged sources", attack: TCPFloods.forged(.ack), hostLabelled: false),
        Case(description: "XMAS flood from forged sources", attack: TCPFloods.forged([.fin, .psh, .urg]), hostLabelled: false),
    ]

    @Test("a flood of TCP packets outside any connection is labelled tcp flood on its victim", arguments: cases)
    func detected(_ c: Case) throws {
        var sim = TrafficSimulator()
        var detector = trainedDetector(&sim)
        let found = sim.runAttack(seconds: 4, into: &detector, c.attack)
        let victim = try #require(found.first { $0.anomaly.kind == .destination && $0.anomaly.label == .tcpFlood },
                                  "no tcp flood on the victim: \(found.map { "\($0.anomaly.kind) \($0.anomaly.label)" })")
        #expect(victim.anomaly.destinationAddress == TrafficSimulator.web)
        #expect(victim.second <= 2)
        #expect(victim.anomaly.explanation.contains { $0.feature == "unsolicited_tcp_received_1s" && $0.direction == "above" })
        if c.hostLabelled {
            #expect(found.contains { $0.anomaly.kind == .host && $0.anomaly.label == .tcpFlood && $0.anomaly.sourceAddress == Attacks.attacker })
        }
        // Nothing about the flood is called a SYN flood or slow connections.
        #expect(!found.contains { [.synFlood, .slowConnections].contains($0.anomaly.label) })
    }

    @Test("only flows outside a connection count: a connection seen mid-stream does not")
    func unsolicitedFlows() {
        func record(forward: (syn: UInt32, packets: UInt64), reverse: (synAck: UInt32, rst: UInt32, packets: UInt64)) -> FlowRecord {
            var r = FlowRecord(id: 1, sourceAddress: Attacks.attacker, destinationAddress: TrafficSimulator.web,
                               sourcePort: 40000, destinationPort: 80, ipProtocol: 6)
            r.forward.synCount = forward.syn
            r.forward.packets = forward.packets
            r.reverse.synAckCount = reverse.synAck
            r.reverse.rstCount = reverse.rst
            r.reverse.packets = reverse.packets
            return r
        }
        #expect(HostTracker.isUnsolicited(record(forward: (0, 1), reverse: (0, 0, 0))))  // a stray ACK, no answer
        #expect(HostTracker.isUnsolicited(record(forward: (0, 500), reverse: (0, 500, 500))))  // answered only by resets
        #expect(!HostTracker.isUnsolicited(record(forward: (0, 50), reverse: (0, 0, 40))))  // mid-stream connection
        #expect(!HostTracker.isUnsolicited(record(forward: (1, 3), reverse: (0, 1, 1))))  // a refused SYN
        #expect(!HostTracker.isUnsolicited(record(forward: (1, 10), reverse: (1, 0, 8))))  // a connection
    }
}

/// Completed connections at a high rate: each a handshake, a request and a response.
@Suite("Connection floods")
struct ConnectionFloodTests {
    static func connectionFlood(_ s: inout TrafficSimulator, _ second: Int) {
        for i in 0..<300 {
            s.tcpSession(at: s.nowNs + UInt64(i) * 3_000_000, Attacks.attacker, TrafficSimulator.web, dport: 80,
                         requestBytes: 180, responseSegments: 1)
        }
    }

    @Test("300 completed HTTP requests a second are a connection flood on the client and the server, not a syn flood")
    func connectionFloodIsNamed() throws {
        var sim = TrafficSimulator()
        var detector = trainedDetector(&sim)
        let found = sim.runAttack(seconds: 4, into: &detector, Self.connectionFlood).map(\.anomaly)
        let summary = found.map { "\($0.kind) \($0.label)" }
        #expect(found.contains { $0.kind == .host && $0.label == .connectionFlood && $0.sourceAddress == Attacks.attacker }, "\(summary)")
        #expect(found.contains { $0.kind == .destination && $0.label == .connectionFlood && $0.destinationAddress == TrafficSimulator.web },
                "\(summary)")
        #expect(!found.contains { $0.label == .synFlood }, "\(summary)")
    }
}
