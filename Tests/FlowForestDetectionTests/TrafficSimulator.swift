import FlowForestCore
import FlowForestTestSupport
@testable import FlowForestDetection

/// Packets of synthetic but protocol-faithful traffic pushed through the
/// real ``FlowTable``, cut into one-second polls as a live source would.
struct TrafficSimulator {
    var table = FlowTable()
    var pending: [PacketSummary] = []
    var nowNs: UInt64 = 1_764_000_000_000_000_000
    var rng = SeededGenerator(seed: 77)
    var nextPort: UInt16 = 32768
    /// Every client also keeps the time with ``ntp``: one query every 16 s,
    /// within 10 ms, each client at its own phase (a site's machine traffic).
    var timeSync = false

    static func ip(_ text: String) -> IPAddress { IPAddress(text)! }

    /// The record of a lone SYN that nothing answered (a probe, a forged packet), seen at `t`.
    static func unansweredSyn(id: UInt64, from source: IPAddress, to destination: IPAddress, sourcePort: UInt16,
                              destinationPort: UInt16, at t: UInt64) -> FlowRecord {
        FlowRecord.loneSyn(id: id, from: source, to: destination, sourcePort: sourcePort, destinationPort: destinationPort, at: t)
    }

    mutating func ephemeralPort() -> UInt16 {
        nextPort = nextPort >= 60999 ? 32768 : nextPort + 1
        return nextPort
    }

    mutating func packet(at t: UInt64, _ src: IPAddress, _ dst: IPAddress, sport: UInt16, dport: UInt16, proto: UInt8,
                         length: UInt32, flags: TCPFlags = [], icmpType: UInt8 = 0) {
        pending.append(PacketSummary(
            timestampNs: t, source: src, destination: dst, sourcePort: sport, destinationPort: dport, ipProtocol: proto,
            ipLength: length, payloadLength: length > 40 ? length - 40 : 0, tcpFlags: flags, tcpWindow: flags.contains(.syn) ? 64240 : 500,
            icmpType: icmpType))
    }

    /// A complete TCP exchange: handshake, request, response segments, close.
    mutating func tcpSession(at t: UInt64, _ c: IPAddress, _ s: IPAddress, dport: UInt16, requestBytes: UInt32 = 300, responseSegments: Int = 3) {
        let sport = ephemeralPort()
        var time = t
        func step(_ ms: Double) -> UInt64 { time += UInt64(ms * 1e6); return time }
        packet(at: step(0), c, s, sport: sport, dport: dport, proto: 6, length: 60, flags: .syn)
        packet(at: step(0.2), s, c, sport: dport, dport: sport, proto: 6, length: 60, flags: [.syn, .ack])
        packet(at: step(0.1), c, s, sport: sport, dport: dport, proto: 6, length: 52, flags: .ack)
        packet(at: step(0.1), c, s, sport: sport, dport: dport, proto: 6, length: requestBytes, flags: [.psh, .ack])
        for _ in 0..<responseSegments {
            packet(at: step(0.3), s, c, sport: dport, dport: sport, proto: 6, length: 1400, flags: .ack)
            packet(at: step(0.05), c, s, sport: sport, dport: dport, proto: 6, length: 52, flags: .ack)
        }
        packet(at: step(1), c, s, sport: sport, dport: dport, proto: 6, length: 52, flags: [.fin, .ack])
        packet(at: step(0.2), s, c, sport: dport, dport: sport, proto: 6, length: 52, flags: [.fin, .ack])
        packet(at: step(0.1), c, s, sport: sport, dport: dport, proto: 6, length: 52, flags: .ack)
    }

    mutating func dnsQuery(at t: UInt64, _ c: IPAddress, _ s: IPAddress) {
        let sport = ephemeralPort()
        packet(at: t, c, s, sport: sport, dport: 53, proto: 17, length: 70)
        packet(at: t + 800_000, s, c, sport: 53, dport: sport, proto: 17, length: 130)
    }

    mutating func ping(at t: UInt64, _ c: IPAddress, _ s: IPAddress) {
        packet(at: t, c, s, sport: 8, dport: 0, proto: 1, length: 84, icmpType: 8)
        packet(at: t + 300_000, s, c, sport: 0, dport: 8, proto: 1, length: 84, icmpType: 0)
    }

    static let clients = (10...17).map { ip("198.18.0.\($0)") }
    static let web = ip("198.18.1.1")
    static let dns = ip("198.18.1.2")
    static let ntp = ip("198.18.1.3")

    /// One second of ordinary office traffic: web sessions, DNS, pings.
    mutating func normalSecond() {
        for c in Self.clients {
            let u = rng.unit()
            if u < 0.5 { tcpSession(at: nowNs + UInt64(rng.below(900_000_000)), c, Self.web, dport: rng.unit() < 0.8 ? 443 : 80, responseSegments: 1 + rng.below(6)) }
            if rng.unit() < 0.4 { dnsQuery(at: nowNs + UInt64(rng.below(900_000_000)), c, Self.dns) }
            if rng.unit() < 0.2 { ping(at: nowNs + UInt64(rng.below(900_000_000)), c, Self.web) }
        }
        if timeSync { timeQueries() }
    }

    /// This second's NTP queries: client i asks at second i (mod 16).
    private mutating func timeQueries() {
        let second = Int(nowNs / 1_000_000_000 % 16)
        for (i, c) in Self.clients.enumerated() where i % 16 == second {
            let at = nowNs + 300_000_000 + UInt64(rng.below(10_000_000))
            let sport = ephemeralPort()
            packet(at: at, c, Self.ntp, sport: sport, dport: 123, proto: 17, length: 76)
            packet(at: at + 500_000, Self.ntp, c, sport: 123, dport: sport, proto: 17, length: 76)
        }
    }

    /// Feeds the second's packets to the flow table and returns its poll.
    mutating func tick() -> FlowBatch {
        pending.sort { $0.timestampNs < $1.timestampNs }
        let end = nowNs + 1_000_000_000
        let due = pending.filter { $0.timestampNs < end }
        pending.removeAll { $0.timestampNs < end }
        for p in due { table.add(p) }
        nowNs = end
        let records = table.advance(to: nowNs)
        return FlowBatch(timeNs: nowNs, records: records, statistics: table.statistics, activeFlows: table.activeCount)
    }

    /// Seconds of normal traffic, fed to `detector`; returns what it reported.
    mutating func runNormal(seconds: Int, into detector: inout Detector) -> [Anomaly] {
        var out: [Anomaly] = []
        for _ in 0..<seconds {
            normalSecond()
            out += detector.process(tick())
        }
        return out
    }

    /// Normal traffic plus `attack` injected each second for `seconds`;
    /// returns the anomalies with the second they appeared in (1 = the attack's first second).
    mutating func runAttack(seconds: Int, into detector: inout Detector, _ attack: (inout TrafficSimulator, Int) -> Void) -> [(second: Int, anomaly: Anomaly)] {
        var out: [(Int, Anomaly)] = []
        for s in 1...seconds {
            normalSecond()
            attack(&self, s)
            out += detector.process(tick()).map { (s, $0) }
        }
        return out
    }
}

/// A detector that learned from `seconds` of normal traffic.
func trainedDetector(_ sim: inout TrafficSimulator, seconds: Int = 300, configure: (inout DetectorConfiguration) -> Void = { _ in }) -> Detector {
    var config = DetectorConfiguration()
    // Each kind's window starts with its first vector, a few seconds in for some.
    config.learningSeconds = Double(seconds - 10)
    config.learningVectors = 1_000_000
    config.minimumLearningVectors = 50
    configure(&config)
    var detector = Detector(configuration: config, sensor: "test")
    let during = sim.runNormal(seconds: seconds, into: &detector)
    precondition(during.isEmpty)
    return detector
}
