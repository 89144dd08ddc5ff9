#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
public import FlowForestCore

/// Host and destination vectors from flow records: damped-window
/// statistics (``WindowedStatistics``) per source host and per destination,
/// plus the beacon history of each source and destination service.
///
/// Fed with every record of every poll (active, interim, ended); keeps the
/// last totals of each flow to turn them into deltas.
public struct HostTracker: Sendable {
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

    /// What one record adds to its flow since the flow's previous record.
    struct Deltas {
        var forwardPackets, reversePackets, forwardBytes, reverseBytes, syn, synAck: Double

        init(_ r: FlowRecord, since st: FlowState) {
            // A total below the last one means the flow's counters restarted.
            func delta<T: BinaryInteger>(_ new: T, _ old: T) -> Double { new >= old ? Double(new - old) : Double(new) }
            forwardPackets = delta(r.forward.packets, st.fwdPackets)
            reversePackets = delta(r.reverse.packets, st.revPackets)
            forwardBytes = delta(r.forward.bytes, st.fwdBytes)
            reverseBytes = delta(r.reverse.bytes, st.revBytes)
            syn = delta(r.forward.synCount, st.fwdSyn)
            synAck = delta(r.reverse.synAckCount, st.revSynAck)
        }
    }

    private var flows: [UInt64: FlowState] = [:]
    private var hosts: [IPAddress: WindowedStatistics] = [:]
    private var destinations: [IPAddress: WindowedStatistics] = [:]
    private var pairs: [BeaconScore.PairKey: [BeaconScore.Start]] = [:]
    private var lastSweepNs: UInt64 = 0
    public private(set) var statistics = HostTrackerStatistics()

    /// Host stems, by their names in ``FeatureSchema``.
    private enum H {
        static let flows = FeatureSchema.stem("flows_initiated", in: .host)
        static let addrs = FeatureSchema.stem("distinct_dst_addrs", in: .host)
        static let ports = FeatureSchema.stem("distinct_dst_ports", in: .host)
        static let pairs = FeatureSchema.stem("distinct_dst_pairs", in: .host)
        static let failed = FeatureSchema.stem("failed_flows", in: .host)
        static let syn = FeatureSchema.stem("syn_sent", in: .host)
        static let synAck = FeatureSchema.stem("synack_received", in: .host)
        static let echo = FeatureSchema.stem("icmp_echo_sent", in: .host)
        static let udp = FeatureSchema.stem("udp_packets_sent", in: .host)
        static let icmp = FeatureSchema.stem("icmp_packets_sent", in: .host)
        static let pkOut = FeatureSchema.stem("packets_sent", in: .host)
        static let pkIn = FeatureSchema.stem("packets_received", in: .host)
        static let byOut = FeatureSchema.stem("bytes_sent", in: .host)
        static let byIn = FeatureSchema.stem("bytes_received", in: .host)
        static let stems = FeatureSchema.windowedStems(of: .host).count
    }

    /// Destination stems, by their names in ``FeatureSchema``.
    private enum D {
        static let flows = FeatureSchema.stem("flows_received", in: .destination)
        static let srcs = FeatureSchema.stem("distinct_src_addrs", in: .destination)
        static let sports = FeatureSchema.stem("distinct_src_ports", in: .destination)
        static let dports = FeatureSchema.stem("distinct_dst_ports", in: .destination)
        static let syn = FeatureSchema.stem("syn_received", in: .destination)
        static let synAck = FeatureSchema.stem("synack_sent", in: .destination)
        static let failed = FeatureSchema.stem("failed_flows", in: .destination)
        static let udp = FeatureSchema.stem("udp_packets_received", in: .destination)
        static let icmp = FeatureSchema.stem("icmp_packets_received", in: .destination)
        static let pkIn = FeatureSchema.stem("packets_received", in: .destination)
        static let byIn = FeatureSchema.stem("bytes_received", in: .destination)
        static let stems = FeatureSchema.windowedStems(of: .destination).count
    }

    /// Distinct-count sets of each entity.
    private enum Distinct {
        static let addresses = 0, ports = 1, pairs = 2
        static let sources = 0, sourcePorts = 1, destinationPorts = 2
        static let sets = 3
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
        Self.endPoll(&hosts)
        Self.endPoll(&destinations)
        if nowNs &- lastSweepNs > 10_000_000_000 { forgetIdle(nowNs: nowNs) }
        statistics.trackedFlows = flows.count
        statistics.trackedHosts = hosts.count
        statistics.trackedDestinations = destinations.count
        return out
    }

    /// Walks by index so values change in place without copying the table.
    private static func endPoll(_ entities: inout [IPAddress: WindowedStatistics]) {
        var index = entities.startIndex
        while index != entities.endIndex {
            entities.values[index].endPoll()
            entities.formIndex(after: &index)
        }
    }

    /// Adds one record to its flow, its source host and its destination.
    private mutating func add(_ r: FlowRecord, nowNs now: UInt64) {
        guard let found = flowState(of: r, nowNs: now) else { return }
        var st = found.state
        let isNew = found.isNew
        let deltas = Deltas(r, since: st)
        var overflow: UInt64 = 0
        var h = entity(in: hosts, r.sourceAddress, stems: H.stems, now: now)
        h.note(flow: r.id, peer: r.destinationAddress, ipProtocol: r.ipProtocol, port: r.destinationPort)
        var d = entity(in: destinations, r.destinationAddress, stems: D.stems, now: now)
        d.note(flow: r.id, peer: r.sourceAddress, ipProtocol: r.ipProtocol, port: r.destinationPort)
        let hasPorts = r.ipProtocol == IPProtocol.tcp || r.ipProtocol == IPProtocol.udp
        if isNew {
            countNewFlow(r, host: &h, destination: &d, nowNs: now, overflow: &overflow)
        } else if hasPorts {
            notePairBytes(r)
        }
        Self.addTraffic(r, deltas, host: &h, destination: &d)
        countFailure(r, flow: &st, host: &h, destination: &d, nowNs: now)
        if isNew { countUnreachable(r, nowNs: now) }
        finish(r, flow: st, host: &h, destination: &d)
        statistics.distinctOverflows += overflow
        hosts[r.sourceAddress] = h
        destinations[r.destinationAddress] = d
    }

    /// The flow's state before this record, and whether the record is its
    /// first; nil when a new flow finds the tracker full.
    private mutating func flowState(of r: FlowRecord, nowNs now: UInt64) -> (state: FlowState, isNew: Bool)? {
        if let st = flows[r.id] { return (st, false) }
        guard flows.count < Self.maxFlows else {
            statistics.flowsNotTracked += 1
            return nil
        }
        var st = FlowState(source: r.sourceAddress, destination: r.destinationAddress,
                           firstSeenNs: r.firstSeenNs, lastSeenNs: r.lastSeenNs, ipProtocol: r.ipProtocol)
        if r.firstSeenNs &+ Self.historyNs < now {
            // A flow older than the tracker (it started before this detector
            // did): its totals so far are history, not a burst in this poll.
            st.setTotals(r)
        }
        return (st, true)
    }

    /// An entity's statistics brought to `now` and marked for a fresh vector.
    private func entity(in table: [IPAddress: WindowedStatistics], _ address: IPAddress, stems: Int,
                        now: UInt64) -> WindowedStatistics {
        var e = table[address] ?? WindowedStatistics(stems: stems, distinctSets: Distinct.sets, now: now)
        e.decay(to: now)
        e.touched = true
        return e
    }

    /// A new flow: one more flow, open flow and distinct peer, port and
    /// service for each side, and a start in its pair's beacon history.
    private mutating func countNewFlow(_ r: FlowRecord, host h: inout WindowedStatistics, destination d: inout WindowedStatistics,
                                       nowNs now: UInt64, overflow: inout UInt64) {
        let hasPorts = r.ipProtocol == IPProtocol.tcp || r.ipProtocol == IPProtocol.udp
        let destinationKey = Self.addressKey(r.destinationAddress)
        let port = UInt64(r.destinationPort) | UInt64(r.ipProtocol) << 16
        h.add(H.flows, 1)
        h.openFlows += 1
        h.touchDistinct(set: Distinct.addresses, stem: H.addrs, item: destinationKey, now: now, overflow: &overflow)
        if hasPorts {
            h.touchDistinct(set: Distinct.ports, stem: H.ports, item: port, now: now, overflow: &overflow)
        }
        let service = destinationKey ^ (UInt64(r.destinationPort) << 48 | UInt64(r.ipProtocol) << 40)
        h.touchDistinct(set: Distinct.pairs, stem: H.pairs, item: service, now: now, overflow: &overflow)
        d.add(D.flows, 1)
        d.openFlows += 1
        d.touchDistinct(set: Distinct.sources, stem: D.srcs, item: Self.addressKey(r.sourceAddress), now: now, overflow: &overflow)
        if hasPorts {
            d.touchDistinct(set: Distinct.sourcePorts, stem: D.sports, item: UInt64(r.sourcePort), now: now, overflow: &overflow)
            d.touchDistinct(set: Distinct.destinationPorts, stem: D.dports, item: port, now: now, overflow: &overflow)
            h.beacon = max(h.beacon, notePairStart(r))
        }
    }

    /// An address folded to the 64-bit item distinct-count sets hold.
    private static func addressKey(_ a: IPAddress) -> UInt64 {
        a.high ^ (a.low &* 0x9E37_79B9_7F4A_7C15)
    }

    /// Packets, bytes and flags since the flow's previous record; and the
    /// rhythm of a long flow, which can be a beacon on its own.
    private static func addTraffic(_ r: FlowRecord, _ delta: Deltas, host h: inout WindowedStatistics,
                                   destination d: inout WindowedStatistics) {
        let isUDP = r.ipProtocol == IPProtocol.udp
        let isICMP = IPProtocol.isICMP(r.ipProtocol)
        let hasPorts = r.ipProtocol == IPProtocol.tcp || isUDP
        let echo = isICMP && (r.forward.icmpType == 8 || r.forward.icmpType == 128)
        h.add(H.syn, delta.syn)
        h.add(H.synAck, delta.synAck)
        h.add(H.pkOut, delta.forwardPackets)
        h.add(H.pkIn, delta.reversePackets)
        h.add(H.byOut, delta.forwardBytes)
        h.add(H.byIn, delta.reverseBytes)
        if isUDP { h.add(H.udp, delta.forwardPackets) }
        if isICMP { h.add(H.icmp, delta.forwardPackets) }
        if echo { h.add(H.echo, delta.forwardPackets) }
        d.add(D.syn, delta.syn)
        d.add(D.synAck, delta.synAck)
        d.add(D.pkIn, delta.forwardPackets)
        d.add(D.byIn, delta.forwardBytes)
        if isUDP { d.add(D.udp, delta.forwardPackets) }
        if isICMP { d.add(D.icmp, delta.forwardPackets) }
        if hasPorts && r.forward.packets > 4 {
            // One long flow that sends on a fixed rhythm is a beacon too.
            let gaps = FlowFeatures.interArrival(r.forward)
            if gaps.meanMs >= 200 { h.beacon = max(h.beacon, FlowFeatures.regularity(r.forward)) }
        }
    }

    /// A connection fails once: refused (RST without handshake), or a SYN unanswered for a second.
    private func countFailure(_ r: FlowRecord, flow st: inout FlowState, host h: inout WindowedStatistics,
                              destination d: inout WindowedStatistics, nowNs now: UInt64) {
        guard !st.failed && r.ipProtocol == IPProtocol.tcp && r.forward.synCount > 0 && r.reverse.synAckCount == 0 else { return }
        let age = now &- r.firstSeenNs
        if r.reverse.rstCount > 0 || age >= Self.unansweredNs || r.state == .ended {
            st.failed = true
            h.add(H.failed, 1)
            d.add(D.failed, 1)
        }
    }

    /// An ICMP unreachable is a failure of the host it is sent to.
    private mutating func countUnreachable(_ r: FlowRecord, nowNs now: UInt64) {
        let unreachable = (r.ipProtocol == IPProtocol.icmp && r.forward.icmpType == 3)
            || (r.ipProtocol == IPProtocol.icmpv6 && r.forward.icmpType == 1)
        guard unreachable, r.destinationAddress != r.sourceAddress else { return }
        var target = hosts[r.destinationAddress] ?? WindowedStatistics(stems: H.stems, distinctSets: Distinct.sets, now: now)
        target.decay(to: now)
        target.add(H.failed, 1)
        target.touched = true
        hosts[r.destinationAddress] = target
    }

    /// Takes the record's totals as the flow's new starting point, and
    /// forgets the flow once it ended.
    private mutating func finish(_ r: FlowRecord, flow: FlowState, host h: inout WindowedStatistics,
                                 destination d: inout WindowedStatistics) {
        var st = flow
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
    }

    /// Adds a new flow to its pair's history (the last ``BeaconScore/history`` connections
    /// from this source to this destination service) and returns the
    /// pair's regularity, ``BeaconScore/regularity(_:)``.
    private mutating func notePairStart(_ r: FlowRecord) -> Double {
        let key = BeaconScore.PairKey(r)
        var series = pairs[key] ?? []
        // A poll reports its new flows in no particular order: keep the starts sorted.
        let start = BeaconScore.Start(r)
        let position = series.lastIndex { $0.startNs <= start.startNs }.map { $0 + 1 } ?? 0
        series.insert(start, at: position)
        if series.count > BeaconScore.history { series.removeFirst(series.count - BeaconScore.history) }
        pairs[key] = series
        return BeaconScore.regularity(series)
    }

    /// Keeps the byte count of a flow in its pair's history current.
    private mutating func notePairBytes(_ r: FlowRecord) {
        let key = BeaconScore.PairKey(r)
        guard let i = pairs[key]?.lastIndex(where: { $0.flowID == r.id }) else { return }
        pairs[key]![i] = BeaconScore.Start(r)
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
    private static func setSlowFlows(_ entities: inout [IPAddress: WindowedStatistics], from counts: [IPAddress: Int], now: UInt64) {
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

    private func hostVector(_ e: WindowedStatistics) -> [Double] {
        var v: [Double] = []
        v.reserveCapacity(FeatureSchema.host.count)
        for stem in 0..<H.stems {
            for w in 0..<WindowedStatistics.windowCount { v.append(log1p(max(0, e.value(stem, w)))) }
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

    private func destinationVector(_ e: WindowedStatistics) -> [Double] {
        var v: [Double] = []
        v.reserveCapacity(FeatureSchema.destination.count)
        for stem in 0..<D.stems {
            for w in 0..<WindowedStatistics.windowCount { v.append(log1p(max(0, e.value(stem, w)))) }
        }
        let flows10 = e.value(D.flows, 1)
        v.append(flows10 > 0.5 ? min(1, e.value(D.failed, 1) / flows10) : 0)
        v.append(log1p(Double(e.openFlows)))
        v.append(log1p(Double(e.slowFlows)))
        return v
    }
}
