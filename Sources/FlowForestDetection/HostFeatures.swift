#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
public import FlowForestCore

/// A host or destination vector as of one poll, with what an anomaly report needs.
public struct EntityVector: Sendable {
    public var kind: AnomalyKind
    /// The source host (kind `host`) or the destination (kind `destination`).
    public var address: IPAddress
    /// The one peer seen recently, when there was only one (else nil).
    public var peer: IPAddress?
    /// The protocol and destination port of the latest flow.
    public var ipProtocol: UInt8
    public var port: UInt16
    public var vector: [Double]
    /// The entity's latest flows, newest last.
    public var recentFlowIDs: [UInt64]

    /// A vector that says nothing about its address, left to the flow and
    /// the peer's vectors rather than raising one alert per address: a few
    /// small flows in 100 s (a swept address), or for a host, nothing but
    /// lone SYNs or lone unanswered packets to one address:port, without
    /// the rhythm of a beacon (a forged source of a flood: a flood forged
    /// from a /20 gives each address a handful of such flows, and thousands
    /// of addresses would each look unusual). Answered datagrams to one
    /// service (a tunnel through one resolver) are not thin.
    public var isThin: Bool {
        let i = kind == .host ? Self.host : Self.destination
        func raw(_ index: Int) -> Double { expm1(vector[index]) }
        let flows = raw(i.flows)
        guard raw(i.packets10s) < 100 else { return false }
        if flows < 3.5 { return true }
        return kind == .host && raw(Self.pairs) < 1.5 && raw(Self.packetsSent) < 1.5 * flows
            && (raw(Self.syns) >= 0.9 * flows || raw(Self.packetsReceived) < 0.5)
            && vector[Self.regularity] < 0.8
    }

    // Feature indices, looked up once: isThin runs for every vector of every
    // poll, and a forged flood brings tens of thousands of them.
    private static let host = (flows: FeatureSchema.index("flows_initiated_100s", in: .host),
                               packets10s: FeatureSchema.index("packets_sent_10s", in: .host))
    private static let destination = (flows: FeatureSchema.index("flows_received_100s", in: .destination),
                                      packets10s: FeatureSchema.index("packets_received_10s", in: .destination))
    private static let pairs = FeatureSchema.index("distinct_dst_pairs_100s", in: .host)
    private static let packetsSent = FeatureSchema.index("packets_sent_100s", in: .host)
    private static let packetsReceived = FeatureSchema.index("packets_received_100s", in: .host)
    private static let syns = FeatureSchema.index("syn_sent_100s", in: .host)
    private static let regularity = FeatureSchema.index("beacon_regularity", in: .host)
}

/// Counters behind the host and destination vectors that users may want to
/// see: how much state is held and what had to be approximated.
public struct HostTrackerStatistics: Sendable, Hashable, Codable {
    public var trackedFlows = 0
    public var trackedHosts = 0
    public var trackedDestinations = 0
    /// Distinct-count updates that could not be remembered because an
    /// entity's set was full: those items count as new each time.
    public var distinctOverflows: UInt64 = 0
    /// Flow states dropped because the tracker was full.
    public var flowsNotTracked: UInt64 = 0
}

/// Damped-window statistics per source host and per destination (Kitsune's
/// incremental statistics): every counter decays with half-lives of 1 s,
/// 10 s and 100 s, so a burst shows at once and no window edge hides it.
///
/// Fed with every record of every poll (active, interim, ended); keeps the
/// last totals of each flow to turn them into deltas.
public struct HostTracker: Sendable {
    static let windows = FeatureSchema.halfLives.map { $0.seconds * 1e9 }
    static let maxDistinct = 4096
    static let maxFlows = 2_000_000
    /// A SYN unanswered this long counts as a failed connection.
    static let unansweredNs: UInt64 = 1_000_000_000
    /// Open flows this old and slower than `slowPacketsPerSecond` count as slow.
    static let slowAgeNs: UInt64 = 1_000_000_000
    static let slowPacketsPerSecond = 5.0
    static let forgetAfterNs: UInt64 = 600_000_000_000
    /// A flow first reported this long after its first packet predates the tracker.
    static let historyNs: UInt64 = 3_000_000_000

    struct FlowState {
        var source: IPAddress
        var destination: IPAddress
        var fwdPackets: UInt64 = 0, revPackets: UInt64 = 0
        var fwdBytes: UInt64 = 0, revBytes: UInt64 = 0
        var fwdSyn: UInt32 = 0, revSynAck: UInt32 = 0
        var firstSeenNs: UInt64
        var lastSeenNs: UInt64
        var handshake = false
        var failed = false
        /// A FIN or RST was seen: closing, so not held open.
        var closing = false
        var ipProtocol: UInt8

        /// Takes the record's running totals as the point later deltas start from.
        mutating func setTotals(_ r: FlowRecord) {
            fwdPackets = r.forward.packets
            revPackets = r.reverse.packets
            fwdBytes = r.forward.bytes
            revBytes = r.reverse.bytes
            fwdSyn = r.forward.synCount
            revSynAck = r.reverse.synAckCount
        }
    }

    struct Entity {
        /// Windowed counters, stem-major: `counters[stem * 3 + window]`.
        var counters: [Double]
        var updatedNs: UInt64
        var distinct: [[UInt64: UInt64]]
        var openFlows = 0
        var slowFlows = 0
        var beacon = 0.0
        var peer: IPAddress?
        var multiplePeers = false
        var ipProtocol: UInt8 = 0
        var port: UInt16 = 0
        var recent: [UInt64] = []
        var touched = false

        init(stems: Int, distinctSets: Int, now: UInt64) {
            counters = [Double](repeating: 0, count: stems * 3)
            updatedNs = now
            distinct = Array(repeating: [:], count: distinctSets)
        }

        /// Brings every counter to `now`; returns the decay factors applied.
        mutating func decay(to now: UInt64) {
            guard now > updatedNs else { return }
            let dt = Double(now - updatedNs)
            for (w, h) in HostTracker.windows.enumerated() {
                let f = exp2(-dt / h)
                var i = w
                while i < counters.count {
                    counters[i] *= f
                    i += 3
                }
            }
            beacon *= exp2(-dt / HostTracker.windows[2])
            updatedNs = now
        }

        mutating func add(_ stem: Int, _ amount: Double) {
            guard amount != 0 else { return }
            counters[stem * 3] += amount
            counters[stem * 3 + 1] += amount
            counters[stem * 3 + 2] += amount
        }

        /// Decayed distinct count: each item contributes 2^(−age/h), so a
        /// repeat only refreshes its own contribution.
        mutating func touchDistinct(set: Int, stem: Int, item: UInt64, now: UInt64, overflow: inout UInt64) {
            if let previous = distinct[set][item] {
                let age = Double(now &- previous)
                for (w, h) in HostTracker.windows.enumerated() {
                    counters[stem * 3 + w] += 1 - exp2(-age / h)
                }
                distinct[set][item] = now
            } else {
                if distinct[set].count < HostTracker.maxDistinct {
                    distinct[set][item] = now
                } else {
                    overflow += 1
                }
                add(stem, 1)
            }
        }

        mutating func note(flow id: UInt64, peer p: IPAddress, ipProtocol: UInt8, port: UInt16) {
            if recent.last != id {
                recent.append(id)
                if recent.count > 16 { recent.removeFirst(recent.count - 16) }
            }
            if let existing = peer, existing != p { multiplePeers = true }
            peer = p
            self.ipProtocol = ipProtocol
            self.port = port
        }

        func value(_ stem: Int, _ window: Int) -> Double { counters[stem * 3 + window] }

        /// Peers are reported per poll: the one peer of this poll, if only one.
        mutating func endPoll() {
            touched = false
            peer = nil
            multiplePeers = false
        }
    }

    /// Pair history for beaconing: start times of the last flows between
    /// one source and one destination service.
    struct PairKey: Hashable {
        var source: IPAddress
        var destination: IPAddress
        var port: UInt16
        var ipProtocol: UInt8

        init(_ r: FlowRecord) {
            source = r.sourceAddress
            destination = r.destinationAddress
            port = r.destinationPort
            ipProtocol = r.ipProtocol
        }
    }

    private var flows: [UInt64: FlowState] = [:]
    private var hosts: [IPAddress: Entity] = [:]
    private var destinations: [IPAddress: Entity] = [:]
    /// One connection in a pair's history.
    struct PairStart {
        var startNs: UInt64
        var flowID: UInt64
        /// Bytes both ways as of the flow's latest record.
        var bytes: UInt64
        /// A lone packet that nothing answered, or a TCP connection that never
        /// got past its first SYN: a probe or a forged packet, not a check-in.
        var probe: Bool

        init(startNs: UInt64, flowID: UInt64, bytes: UInt64, probe: Bool = false) {
            self.startNs = startNs
            self.flowID = flowID
            self.bytes = bytes
            self.probe = probe
        }

        init(_ r: FlowRecord) {
            startNs = r.firstSeenNs
            flowID = r.id
            bytes = r.forward.bytes &+ r.reverse.bytes
            probe = r.ipProtocol == IPProtocol.tcp
                ? !r.handshakeCompleted && r.forward.packets <= 1
                : r.forward.packets <= 1 && r.reverse.packets == 0
        }
    }

    private var pairs: [PairKey: [PairStart]] = [:]
    private var lastSweepNs: UInt64 = 0
    public private(set) var statistics = HostTrackerStatistics()

    // Stem indices, in FeatureSchema order.
    private enum H {
        static let flows = 0, addrs = 1, ports = 2, pairs = 3, failed = 4, syn = 5, synAck = 6
        static let echo = 7, udp = 8, icmp = 9, pkOut = 10, pkIn = 11, byOut = 12, byIn = 13
        static let stems = 14
    }
    private enum D {
        static let flows = 0, srcs = 1, sports = 2, dports = 3, syn = 4, synAck = 5, failed = 6, udp = 7, icmp = 8, pkIn = 9, byIn = 10
        static let stems = 11
    }

    public init() {}

    /// Adds one poll's records and returns a vector for every host and
    /// destination whose traffic changed in it.
    public mutating func update(_ records: [FlowRecord], nowNs: UInt64) -> [EntityVector] {
        for r in records { add(r, nowNs: nowNs) }
        countSlowFlows(nowNs: nowNs)
        var out: [EntityVector] = []
        for (address, e) in hosts where e.touched {
            out.append(EntityVector(kind: .host, address: address, peer: e.multiplePeers ? nil : e.peer,
                                    ipProtocol: e.ipProtocol, port: e.port, vector: hostVector(e), recentFlowIDs: e.recent))
        }
        for (address, e) in destinations where e.touched {
            out.append(EntityVector(kind: .destination, address: address, peer: e.multiplePeers ? nil : e.peer,
                                    ipProtocol: e.ipProtocol, port: e.port, vector: destinationVector(e), recentFlowIDs: e.recent))
        }
        var index = hosts.startIndex
        while index != hosts.endIndex {
            hosts.values[index].endPoll()
            hosts.formIndex(after: &index)
        }
        index = destinations.startIndex
        while index != destinations.endIndex {
            destinations.values[index].endPoll()
            destinations.formIndex(after: &index)
        }
        if nowNs &- lastSweepNs > 10_000_000_000 { forgetIdle(nowNs: nowNs) }
        statistics.trackedFlows = flows.count
        statistics.trackedHosts = hosts.count
        statistics.trackedDestinations = destinations.count
        return out
    }

    private mutating func add(_ r: FlowRecord, nowNs now: UInt64) {
        let isNew = flows[r.id] == nil
        if isNew && flows.count >= Self.maxFlows {
            statistics.flowsNotTracked += 1
            return
        }
        var st = flows[r.id] ?? FlowState(source: r.sourceAddress, destination: r.destinationAddress,
                                          firstSeenNs: r.firstSeenNs, lastSeenNs: r.lastSeenNs, ipProtocol: r.ipProtocol)
        if isNew && r.firstSeenNs &+ Self.historyNs < now {
            // A flow older than the tracker (it started before this detector
            // did): its totals so far are history, not a burst in this poll.
            st.setTotals(r)
        }
        func delta<T: BinaryInteger>(_ new: T, _ old: T) -> Double { new >= old ? Double(new - old) : Double(new) }
        let dFwdP = delta(r.forward.packets, st.fwdPackets), dRevP = delta(r.reverse.packets, st.revPackets)
        let dFwdB = delta(r.forward.bytes, st.fwdBytes), dRevB = delta(r.reverse.bytes, st.revBytes)
        let dSyn = delta(r.forward.synCount, st.fwdSyn), dSynAck = delta(r.reverse.synAckCount, st.revSynAck)
        let isUDP = r.ipProtocol == IPProtocol.udp
        let isICMP = IPProtocol.isICMP(r.ipProtocol)
        let hasPorts = r.ipProtocol == IPProtocol.tcp || isUDP
        let echo = isICMP && (r.forward.icmpType == 8 || r.forward.icmpType == 128)
        let unreachable = isICMP && ((r.ipProtocol == IPProtocol.icmp && r.forward.icmpType == 3)
            || (r.ipProtocol == IPProtocol.icmpv6 && r.forward.icmpType == 1))
        let destinationKey = r.destinationAddress.high ^ (r.destinationAddress.low &* 0x9E37_79B9_7F4A_7C15)

        var overflow: UInt64 = 0
        var h = hosts[r.sourceAddress] ?? Entity(stems: H.stems, distinctSets: 3, now: now)
        h.decay(to: now)
        h.touched = true
        h.note(flow: r.id, peer: r.destinationAddress, ipProtocol: r.ipProtocol, port: r.destinationPort)
        var d = destinations[r.destinationAddress] ?? Entity(stems: D.stems, distinctSets: 3, now: now)
        d.decay(to: now)
        d.touched = true
        d.note(flow: r.id, peer: r.sourceAddress, ipProtocol: r.ipProtocol, port: r.destinationPort)

        if isNew {
            h.add(H.flows, 1)
            h.openFlows += 1
            h.touchDistinct(set: 0, stem: H.addrs, item: destinationKey, now: now, overflow: &overflow)
            if hasPorts {
                h.touchDistinct(set: 1, stem: H.ports, item: UInt64(r.destinationPort) | UInt64(r.ipProtocol) << 16, now: now, overflow: &overflow)
            }
            h.touchDistinct(set: 2, stem: H.pairs, item: destinationKey ^ (UInt64(r.destinationPort) << 48 | UInt64(r.ipProtocol) << 40), now: now, overflow: &overflow)
            d.add(D.flows, 1)
            d.openFlows += 1
            d.touchDistinct(set: 0, stem: D.srcs, item: r.sourceAddress.high ^ (r.sourceAddress.low &* 0x9E37_79B9_7F4A_7C15), now: now, overflow: &overflow)
            if hasPorts {
                d.touchDistinct(set: 1, stem: D.sports, item: UInt64(r.sourcePort), now: now, overflow: &overflow)
                d.touchDistinct(set: 2, stem: D.dports, item: UInt64(r.destinationPort) | UInt64(r.ipProtocol) << 16, now: now, overflow: &overflow)
                h.beacon = max(h.beacon, notePairStart(r))
            }
        } else if hasPorts {
            notePairBytes(r)
        }
        h.add(H.syn, dSyn)
        h.add(H.synAck, dSynAck)
        h.add(H.pkOut, dFwdP)
        h.add(H.pkIn, dRevP)
        h.add(H.byOut, dFwdB)
        h.add(H.byIn, dRevB)
        if isUDP { h.add(H.udp, dFwdP) }
        if isICMP { h.add(H.icmp, dFwdP) }
        if echo { h.add(H.echo, dFwdP) }
        d.add(D.syn, dSyn)
        d.add(D.synAck, dSynAck)
        d.add(D.pkIn, dFwdP)
        d.add(D.byIn, dFwdB)
        if isUDP { d.add(D.udp, dFwdP) }
        if isICMP { d.add(D.icmp, dFwdP) }
        if hasPorts && r.forward.packets > 4 {
            // One long flow that sends on a fixed rhythm is a beacon too.
            let gaps = FlowFeatures.interArrival(r.forward)
            if gaps.meanMs >= 200 { h.beacon = max(h.beacon, FlowFeatures.regularity(r.forward)) }
        }

        // A connection fails once: refused (RST without handshake), or a SYN unanswered for a second.
        if !st.failed && r.ipProtocol == IPProtocol.tcp && r.forward.synCount > 0 && r.reverse.synAckCount == 0 {
            let age = now &- r.firstSeenNs
            if r.reverse.rstCount > 0 || age >= Self.unansweredNs || r.state == .ended {
                st.failed = true
                h.add(H.failed, 1)
                d.add(D.failed, 1)
            }
        }
        if isNew && unreachable {
            // An ICMP unreachable is a failure of the host it is sent to.
            var target = hosts[r.destinationAddress] ?? Entity(stems: H.stems, distinctSets: 3, now: now)
            if r.destinationAddress != r.sourceAddress {
                hosts[r.sourceAddress] = h
                target.decay(to: now)
                target.add(H.failed, 1)
                target.touched = true
                hosts[r.destinationAddress] = target
                h = hosts[r.sourceAddress]!
            }
        }

        st.setTotals(r)
        st.lastSeenNs = r.lastSeenNs
        st.handshake = r.handshakeCompleted
        st.closing = r.forward.finCount + r.reverse.finCount + r.forward.rstCount + r.reverse.rstCount > 0
        if r.state == .ended {
            flows.removeValue(forKey: r.id)
            h.openFlows = max(0, h.openFlows - 1)
            d.openFlows = max(0, d.openFlows - 1)
        } else {
            flows[r.id] = st
        }
        statistics.distinctOverflows += overflow
        hosts[r.sourceAddress] = h
        destinations[r.destinationAddress] = d
    }

    /// Adds a new flow to its pair's history (the last eight connections
    /// from this source to this destination service) and returns the
    /// pair's regularity, ``beaconRegularity(_:)``.
    private mutating func notePairStart(_ r: FlowRecord) -> Double {
        let key = PairKey(r)
        var series = pairs[key] ?? []
        // A poll reports its new flows in no particular order: keep the starts sorted.
        let start = PairStart(r)
        let position = series.lastIndex { $0.startNs <= start.startNs }.map { $0 + 1 } ?? 0
        series.insert(start, at: position)
        if series.count > 8 { series.removeFirst(series.count - 8) }
        pairs[key] = series
        return Self.beaconRegularity(series)
    }

    /// Keeps the byte count of a flow in its pair's history current.
    private mutating func notePairBytes(_ r: FlowRecord) {
        let key = PairKey(r)
        guard let i = pairs[key]?.lastIndex(where: { $0.flowID == r.id }) else { return }
        pairs[key]![i] = PairStart(r)
    }

    /// Regularity (0-1) of a pair's connections, oldest first, in the manner
    /// of RITA's beacon score: 1 − CV(gaps between starts) ×
    /// ``beaconStrictness(gaps:)`` − CV(bytes per connection) / 2, where CV
    /// is the coefficient of variation. Starts are the records' exact
    /// first-packet times; the newest connection's bytes are left out (it
    /// may still be under way). 0 with fewer than three gaps (seven when an
    /// earlier connection was a lone probe), or when the starts average
    /// under 200 ms apart (a burst, not a beacon).
    static func beaconRegularity(_ series: [PairStart]) -> Double {
        // Among thousands of forged flood sources each sending a few lone SYNs, some
        // short series look regular by chance; a series with probes in it (a beacon
        // to a dead or refusing server, or one-way datagrams) must fill the history.
        let needed = series.dropLast().contains(where: \.probe) ? 8 : 4
        guard series.count >= needed else { return 0 }
        let gaps = zip(series.dropFirst(), series).map { Double($0.startNs &- $1.startNs) }
        let timing = coefficientOfVariation(gaps)
        guard timing.mean >= 2e8 else { return 0 }
        let sizes = coefficientOfVariation(series.dropLast().map { Double($0.bytes) })
        return max(0, 1 - timing.cv * beaconStrictness(gaps: gaps.count) - sizes.cv / 2)
    }

    private static func coefficientOfVariation(_ values: [Double]) -> (mean: Double, cv: Double) {
        let mean = values.reduce(0, +) / Double(values.count)
        guard mean > 0 else { return (mean, 0) }
        let variance = values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(values.count)
        return (mean, variance.squareRoot() / mean)
    }

    /// How much the coefficient of variation of `gaps` gaps is magnified.
    /// A few gaps agree by chance far more often than many: for gaps drawn
    /// at random, P(CV < c) grows about as c^(gaps−1). Three gaps must
    /// therefore be 15 times as tight as five, and four 2.5 times, for the
    /// same regularity; then a random series (Poisson or uniform gaps)
    /// reaches beacon regularity with three or four gaps less often than
    /// with five. Five or more
    /// gaps count at 1.6 times their CV, so regularity 0.92 (certain
    /// beaconing) means gaps within about 5 % of their mean: a client
    /// querying one resolver at random reaches 8 % over seven gaps now and
    /// then, a timer-driven beacon stays within a few milliseconds. Such a
    /// beacon is therefore recognised at its fourth connection.
    static func beaconStrictness(gaps: Int) -> Double {
        gaps <= 3 ? 24 : gaps == 4 ? 4 : 1.6
    }

    private mutating func countSlowFlows(nowNs now: UInt64) {
        var slowBySource: [IPAddress: Int] = [:]
        var slowByDestination: [IPAddress: Int] = [:]
        for st in flows.values where st.ipProtocol == IPProtocol.tcp && !st.closing {
            let age = now &- st.firstSeenNs
            guard age >= Self.slowAgeNs, now &- st.lastSeenNs < 60_000_000_000 else { continue }
            let rate = Double(st.fwdPackets + st.revPackets) / (Double(age) / 1e9)
            if rate < Self.slowPacketsPerSecond {
                slowBySource[st.source, default: 0] += 1
                slowByDestination[st.destination, default: 0] += 1
            }
        }
        Self.setSlowFlows(&hosts, from: slowBySource, now: now)
        Self.setSlowFlows(&destinations, from: slowByDestination, now: now)
    }

    /// Updates each entity's count of open slow connections; an entity whose
    /// count rises is marked for a fresh vector. Walks by index so values
    /// change in place without copying the table.
    private static func setSlowFlows(_ entities: inout [IPAddress: Entity], from counts: [IPAddress: Int], now: UInt64) {
        var index = entities.startIndex
        while index != entities.endIndex {
            let slow = counts[entities.keys[index]] ?? 0
            if entities.values[index].slowFlows != slow {
                entities.values[index].slowFlows = slow
                if slow > 0 {
                    entities.values[index].decay(to: now)
                    entities.values[index].touched = true
                }
            }
            entities.formIndex(after: &index)
        }
    }

    private mutating func forgetIdle(nowNs now: UInt64) {
        lastSweepNs = now
        hosts = hosts.filter { now &- $0.value.updatedNs < Self.forgetAfterNs || $0.value.openFlows > 0 }
        destinations = destinations.filter { now &- $0.value.updatedNs < Self.forgetAfterNs || $0.value.openFlows > 0 }
        flows = flows.filter { now &- $0.value.lastSeenNs < Self.forgetAfterNs }
        pairs = pairs.filter { now &- ($0.value.last?.startNs ?? 0) < Self.forgetAfterNs }
        for (key, value) in hosts {
            var e = value
            for s in e.distinct.indices { e.distinct[s] = e.distinct[s].filter { now &- $0.value < Self.forgetAfterNs } }
            hosts[key] = e
        }
    }

    private func hostVector(_ e: Entity) -> [Double] {
        var v: [Double] = []
        v.reserveCapacity(FeatureSchema.host.count)
        for stem in 0..<H.stems {
            for w in 0..<3 { v.append(log1p(max(0, e.value(stem, w)))) }
        }
        let flows10 = e.value(H.flows, 1)
        v.append(flows10 > 0.5 ? min(1, e.value(H.failed, 1) / flows10) : 0)
        v.append(log1p(e.value(H.syn, 1) / (e.value(H.synAck, 1) + 1)))
        v.append(log1p(max(0, e.value(H.byOut, 2))) - log1p(max(0, e.value(H.byIn, 2))))
        let flows100 = e.value(H.flows, 2)
        v.append(log1p(flows100 > 0.5 ? (e.value(H.byOut, 2) + e.value(H.byIn, 2)) / flows100 : 0))
        v.append(log1p(Double(e.openFlows)))
        v.append(log1p(Double(e.slowFlows)))
        v.append(e.beacon)
        return v
    }

    private func destinationVector(_ e: Entity) -> [Double] {
        var v: [Double] = []
        v.reserveCapacity(FeatureSchema.destination.count)
        for stem in 0..<D.stems {
            for w in 0..<3 { v.append(log1p(max(0, e.value(stem, w)))) }
        }
        let flows10 = e.value(D.flows, 1)
        v.append(flows10 > 0.5 ? min(1, e.value(D.failed, 1) / flows10) : 0)
        v.append(log1p(Double(e.openFlows)))
        v.append(log1p(Double(e.slowFlows)))
        return v
    }
}
