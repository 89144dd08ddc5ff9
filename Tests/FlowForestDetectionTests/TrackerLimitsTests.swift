import FlowForestCore
import Foundation
import Testing
@testable import FlowForestDetection

/// A forged-source flood brings a new source with every admitted packet:
/// the tracker must stay within its limits, and what it drops first must be
/// those one-packet sources, not the hosts it has history for.
@Suite("The host tracker stays within its limits under a forged flood")
struct TrackerLimitsTests {
    static let t0: UInt64 = 1_764_000_000_000_000_000
    static let server = TrafficSimulator.ip("198.18.1.10")
    static let victim = TrafficSimulator.ip("198.18.1.2")
    static let limits = TrackerLimits(entities: 500, pairs: 1000)

    /// A completed request to `server` on port `port`.
    static func session(id: UInt64, from client: IPAddress, port: UInt16, at t: UInt64) -> FlowRecord {
        var r = FlowRecord(id: id, sourceAddress: client, destinationAddress: server, sourcePort: UInt16(40_000 + id % 20_000),
                           destinationPort: port, ipProtocol: IPProtocol.tcp)
        r.forward.packets = 4
        r.forward.bytes = 600
        r.forward.synCount = 1
        r.forward.ackCount = 3
        r.forward.payloadPackets = 1
        r.forward.firstSeenNs = t
        r.forward.lastSeenNs = t + 20_000_000
        r.reverse.packets = 3
        r.reverse.bytes = 4000
        r.reverse.synAckCount = 1
        r.reverse.ackCount = 3
        r.reverse.firstSeenNs = t + 1_000_000
        r.reverse.lastSeenNs = t + 19_000_000
        r.state = .ended
        r.endReason = .tcpClose
        return r
    }

    /// One SYN from a forged source that nothing answers.
    static func forged(id: UInt64, at t: UInt64) -> FlowRecord {
        let source = IPAddress(ipv4: 0xC613_0000 | UInt32(truncatingIfNeeded: id))  // 198.19.0.0/16
        return TrafficSimulator.unansweredSyn(id: id, from: source, to: victim, sourcePort: UInt16(1024 + id % 60_000),
                                              destinationPort: 80, at: t)
    }

    static func value(_ name: String, of v: EntityVector) -> Double {
        let i = FeatureSchema.index(name, in: v.kind)
        return FeatureSchema.features(of: v.kind)[i].display(v.vector[i])
    }

    @Test("20,000 forged sources: tables within the limits, the victim and known clients kept, evictions counted, quiet ends bring nothing back")
    func forgedFlood() throws {
        var ledger = FlowLedger()
        var tracker = HostTracker(limits: Self.limits)
        var now = Self.t0
        var id: UInt64 = 0
        func poll(_ records: [FlowRecord]) -> [EntityVector] {
            now += 500_000_000
            return tracker.update(ledger.apply(records, origin: "tc", nowNs: now), flows: ledger, nowNs: now)
        }
        // Twenty clients with history: three requests each.
        let clients = (1...20).map { TrafficSimulator.ip("198.18.0.\($0)") }
        for round in 0..<3 {
            _ = poll(clients.map { c in id += 1; return Self.session(id: id, from: c, port: 443, at: now + UInt64(round) * 1_000_000) })
        }
        var forgedRecords: [FlowRecord] = []
        for _ in 0..<10 {
            let batch = (0..<2000).map { _ in id += 1; return Self.forged(id: id, at: now) }
            forgedRecords += batch
            let vectors = poll(batch)
            let s = tracker.statistics
            #expect(s.trackedHosts <= Self.limits.entities && s.trackedDestinations <= Self.limits.entities)
            #expect(s.trackedPairs <= Self.limits.pairs)
            let victim = try #require(vectors.first { $0.kind == .destination && $0.address == Self.victim })
            #expect(Self.value("flows_received_10s", of: victim) > 1500)
        }
        let s = tracker.statistics
        #expect(s.hostsEvicted >= 20_000 - UInt64(Self.limits.entities), "\(s)")
        #expect(s.destinationsEvicted == 0, "the victim and the server are held: \(s)")
        #expect(s.pairsEvicted >= 20_000 - UInt64(Self.limits.pairs), "\(s)")

        // Every client kept its history: a fourth request counts as its fourth flow.
        let later = poll(clients.map { c in id += 1; return Self.session(id: id, from: c, port: 443, at: now) })
        for c in clients {
            let host = try #require(later.first { $0.kind == .host && $0.address == c }, "no vector of \(c)")
            #expect(Self.value("flows_initiated_100s", of: host) > 3.5, "\(c) lost its history")
        }

        // The forged flows time out with no new packets: their evicted
        // sources are not made again.
        let ended = forgedRecords.map { r -> FlowRecord in
            var e = r
            e.state = .ended
            e.endReason = .idle
            return e
        }
        let evictedBefore = tracker.statistics.hostsEvicted
        let atEnd = poll(ended)
        #expect(tracker.statistics.hostsEvicted == evictedBefore, "quiet ends brought evicted sources back")
        #expect(atEnd.filter { $0.kind == .host }.count <= Self.limits.entities)
    }

    @Test("a beacon's history outlasts a flood of one-connection histories")
    func beaconHistoryKept() {
        var ledger = FlowLedger()
        var tracker = HostTracker(limits: TrackerLimits(entities: 100_000, pairs: 200))
        let beacon = TrafficSimulator.ip("198.18.0.50")
        var now = Self.t0
        var id: UInt64 = 0
        var regularity = 0.0
        for minute in 0..<8 {
            now += 60_000_000_000
            id += 1
            var records = [Self.session(id: id, from: beacon, port: 8443, at: now)]
            // Between check-ins, 1,000 one-off sources, each its own history.
            records += (0..<1000).map { _ in id += 1; return Self.forged(id: id, at: now) }
            let vectors = tracker.update(ledger.apply(records, origin: "tc", nowNs: now + 100_000_000), flows: ledger, nowNs: now + 100_000_000)
            #expect(tracker.statistics.trackedPairs <= 200)
            if minute == 7, let host = vectors.first(where: { $0.kind == .host && $0.address == beacon }) {
                regularity = Self.value("beacon_regularity", of: host)
            }
        }
        #expect(tracker.statistics.pairsEvicted >= 7000)
        #expect(regularity > 0.9, "the beacon's eight check-ins a minute apart were forgotten: regularity \(regularity)")
    }

    @Test("an ICMP unreachable to a held host, from a new source into a full table: the target counts its failure, then the source's room evicts it")
    func unreachableAtTheLimit() {
        var ledger = FlowLedger()
        var tracker = HostTracker(limits: TrackerLimits(entities: 2, pairs: 4))
        let (a, b, c) = (TrafficSimulator.ip("198.18.0.1"), TrafficSimulator.ip("198.18.0.2"), TrafficSimulator.ip("198.18.0.3"))
        var now = Self.t0
        now += 500_000_000
        _ = tracker.update(ledger.apply([
            TrafficSimulator.unansweredSyn(id: 1, from: a, to: Self.server, sourcePort: 40_000, destinationPort: 80, at: now),
            TrafficSimulator.unansweredSyn(id: 2, from: b, to: Self.victim, sourcePort: 40_001, destinationPort: 80, at: now),
        ], origin: "tc", nowNs: now), flows: ledger, nowNs: now)
        now += 500_000_000
        var unreachable = FlowRecord(id: 3, sourceAddress: c, destinationAddress: a, sourcePort: 0, destinationPort: 0,
                                     ipProtocol: IPProtocol.icmp)
        unreachable.forward.packets = 1
        unreachable.forward.bytes = 56
        unreachable.forward.icmpType = 3
        unreachable.forward.firstSeenNs = now
        unreachable.forward.lastSeenNs = now
        let vectors = tracker.update(ledger.apply([unreachable], origin: "tc", nowNs: now), flows: ledger, nowNs: now)
        // The table held a and b, both of one unanswered flow: making room
        // for c takes the oldest, a, after its failure was counted; b stays.
        #expect(tracker.statistics.hostsEvicted == 1 && tracker.statistics.trackedHosts == 2, "\(tracker.statistics)")
        #expect(!vectors.contains { $0.kind == .host && $0.address == a }, "\(vectors.map(\.address))")
        #expect(vectors.contains { $0.kind == .host && $0.address == c })
    }
    @Test("unreachables from a held host to many addresses in one poll, table full: no host is evicted for them, each is counted")
    func unreachablesDoNotEvict() {
        var ledger = FlowLedger()
        var tracker = HostTracker(limits: TrackerLimits(entities: 3, pairs: 8))
        let (a, b, router) = (TrafficSimulator.ip("198.18.0.1"), TrafficSimulator.ip("198.18.0.2"), TrafficSimulator.ip("198.18.0.254"))
        var now = Self.t0 + 500_000_000
        _ = tracker.update(ledger.apply([
            TrafficSimulator.unansweredSyn(id: 1, from: a, to: Self.server, sourcePort: 40_000, destinationPort: 80, at: now),
            TrafficSimulator.unansweredSyn(id: 2, from: b, to: Self.victim, sourcePort: 40_001, destinationPort: 80, at: now),
            TrafficSimulator.unansweredSyn(id: 3, from: router, to: Self.victim, sourcePort: 40_002, destinationPort: 80, at: now),
        ], origin: "tc", nowNs: now), flows: ledger, nowNs: now)
        #expect(tracker.statistics.trackedHosts == 3)
        now += 500_000_000
        let unreachables = (0..<50).map { i in
            var r = FlowRecord(id: UInt64(10 + i), sourceAddress: router, destinationAddress: IPAddress(ipv4: 0xC613_2000 | UInt32(i)),
                               sourcePort: 0, destinationPort: 0, ipProtocol: IPProtocol.icmp)
            r.forward.packets = 1
            r.forward.bytes = 56
            r.forward.icmpType = 3
            r.forward.firstSeenNs = now
            r.forward.lastSeenNs = now
            return r
        }
        _ = tracker.update(ledger.apply(unreachables, origin: "tc", nowNs: now), flows: ledger, nowNs: now)
        #expect(tracker.statistics.unreachablesNotHeld == 50, "\(tracker.statistics)")
        #expect(tracker.statistics.hostsEvicted == 0 && tracker.statistics.trackedHosts == 3, "\(tracker.statistics)")
    }
}
