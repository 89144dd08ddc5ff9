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
/// Fed with every record of every poll (active, interim, ended) as the
/// ``FlowLedger`` saw it: the ledger owns each flow's state and the deltas
/// of its totals; the tracker keeps only hosts, destinations and pairs.
public struct HostTracker: Sendable {
    /// A SYN unanswered this long counts as a failed connection.
    static let unansweredNs: UInt64 = 1_000_000_000
    /// Open flows this old and slower than `slowPacketsPerSecond` count as slow.
    static let slowAgeNs: UInt64 = 1_000_000_000
    static let slowPacketsPerSecond = 5.0
    static let forgetAfterNs: UInt64 = 600_000_000_000
    /// A flow first reported this long after its first packet is reported
    /// late: its traffic is counted as of when it happened.
    static let historyNs: UInt64 = 3_000_000_000

    /// What one record adds to its flow, as the feature arithmetic takes it,
    /// and the share of it each window takes.
    struct Deltas {
        var forwardPackets, reversePackets, forwardBytes, reverseBytes, syn, synAck: Double
        var shares = WindowShares.whole

        static let zero = Deltas(.zero)

        init(_ d: FlowDelta) {
            forwardPackets = Double(d.forwardPackets)
            reversePackets = Double(d.reversePackets)
            forwardBytes = Double(d.forwardBytes)
            reverseBytes = Double(d.reverseBytes)
            syn = Double(d.forwardSyn)
            synAck = Double(d.reverseSynAck)
        }

        /// What `change` adds at `now`: whole when its packets passed in the
        /// last ``historyNs`` as far as its record says, else spread over
        /// when they passed. A first record's packets passed from its first
        /// to its last packet (``init(late:now:historyBeforeNs:)``); a later
        /// record's from a delayed source after the flow's previous last
        /// packet (an exporter's next piece of a flow the collector still
        /// holds, an agent's next buffer), while a source that reports within
        /// a poll brings only packets since its previous poll: whole.
        init(_ change: FlowChange, now: UInt64, historyBeforeNs: UInt64) {
            if change.isNew {
                guard change.record.firstSeenNs &+ HostTracker.historyNs < now else {
                    self.init(change.delta)
                    return
                }
                self.init(late: change, now: now, historyBeforeNs: historyBeforeNs)
                return
            }
            self.init(change.delta)
            let from = change.spreadFromNs
            if from != 0 && from &+ HostTracker.historyNs < now {
                shares = WindowShares(spreadFrom: from, to: change.record.lastSeenNs, now: now)
            }
        }

        /// The deltas of a new flow's first record, `change`, at `now`.
        ///
        /// A flow that began before the tracker's first poll (less
        /// ``historyNs``) brings history, not a burst: nothing. One reported
        /// late but begun since (an exporter's record arrives after its
        /// active or idle timeout, minutes after the packets) is spread over
        /// its first to last packet and decayed to `now`, as if each packet
        /// had been counted when it passed: the long windows take nearly all
        /// of it, the one-second window what its last second left. Counted
        /// whole at `now` instead, ten minutes of a backup reported at once
        /// would read as a one-second burst; counted as nothing, as it was,
        /// collected traffic had no volume. However old its first packet (an
        /// exporter's active timeout of 30 minutes), the record is new: the
        /// ledger holds a quiet open flow longer than its source can go
        /// without reporting it (``FlowLedger/forgetAfterNs``), so no
        /// returning running total comes through here.
        init(late change: FlowChange, now: UInt64, historyBeforeNs: UInt64) {
            let r = change.record
            guard r.firstSeenNs >= historyBeforeNs else {
                self = .zero
                return
            }
            self.init(change.delta)
            shares = WindowShares(spreadFrom: r.firstSeenNs, to: r.lastSeenNs, now: now)
        }
    }

    /// A new flow that began before this (its first packet stamped earlier)
    /// predates the tracker: the first poll's time less ``historyNs``, set
    /// again when the clock steps back past it (a capture file).
    private var historyBeforeNs: UInt64?

    private var hosts = TrackerTable<IPAddress, WindowedStatistics>()
    private var destinations = TrackerTable<IPAddress, WindowedStatistics>()
    private var beacons: BeaconHistories
    private var marks = FlowMarks()
    private var lastSweepNs: UInt64 = 0
    public private(set) var statistics = HostTrackerStatistics()
    /// How many hosts, destinations and beacon histories are held at most.
    public let limits: TrackerLimits
    private var hostArrivals = ArrivalQueue<IPAddress>()
    private var destinationArrivals = ArrivalQueue<IPAddress>()
    private let stems = Stems()

    /// Open flows whose failure, or whose completed handshake, is counted
    /// already: a connection fails once, whether a record showed it or the
    /// clock did (a SYN unanswered for a second), and is established once.
    struct FlowMarks {
        var failed: Set<UInt64> = []
        var established: Set<UInt64> = []
    }

    /// The stems the tracker counts into, looked up by their names in
    /// ``FeatureSchema`` once per tracker. A `static let` computed at run
    /// time is reached through `swift_once` on every use: some thirty uses
    /// a record were 1.7 % of the daemon's CPU at 100,000 changing flows.
    private struct Stems {
        let host = HostStems()
        let destination = DestinationStems()
    }

    /// Host stems, by their names in ``FeatureSchema``.
    private struct HostStems {
        let flows = FeatureSchema.stem("flows_initiated", in: .host)
        let addrs = FeatureSchema.stem("distinct_dst_addrs", in: .host)
        let ports = FeatureSchema.stem("distinct_dst_ports", in: .host)
        let pairs = FeatureSchema.stem("distinct_dst_pairs", in: .host)
        let failed = FeatureSchema.stem("failed_flows", in: .host)
        let syn = FeatureSchema.stem("syn_sent", in: .host)
        let synAck = FeatureSchema.stem("synack_received", in: .host)
        let established = FeatureSchema.stem("established_flows", in: .host)
        let icmpBytes = FeatureSchema.stem("icmp_bytes_sent", in: .host)
        let otherIP = FeatureSchema.stem("other_ip_packets_sent", in: .host)
        let dnsQueries = FeatureSchema.stem("dns_queries_sent", in: .host)
        let dnsBytes = FeatureSchema.stem("dns_bytes_sent", in: .host)
        let echo = FeatureSchema.stem("icmp_echo_sent", in: .host)
        let udp = FeatureSchema.stem("udp_packets_sent", in: .host)
        let icmp = FeatureSchema.stem("icmp_packets_sent", in: .host)
        let unsolicited = FeatureSchema.stem("unsolicited_tcp_sent", in: .host)
        let pkOut = FeatureSchema.stem("packets_sent", in: .host)
        let pkIn = FeatureSchema.stem("packets_received", in: .host)
        let byOut = FeatureSchema.stem("bytes_sent", in: .host)
        let byIn = FeatureSchema.stem("bytes_received", in: .host)
        let count = FeatureSchema.windowedStems(of: .host).count
    }

    /// Destination stems, by their names in ``FeatureSchema``.
    private struct DestinationStems {
        let flows = FeatureSchema.stem("flows_received", in: .destination)
        let srcs = FeatureSchema.stem("distinct_src_addrs", in: .destination)
        let sports = FeatureSchema.stem("distinct_src_ports", in: .destination)
        let dports = FeatureSchema.stem("distinct_dst_ports", in: .destination)
        let syn = FeatureSchema.stem("syn_received", in: .destination)
        let synAck = FeatureSchema.stem("synack_sent", in: .destination)
        let established = FeatureSchema.stem("established_flows", in: .destination)
        let otherIP = FeatureSchema.stem("other_ip_packets_received", in: .destination)
        let failed = FeatureSchema.stem("failed_flows", in: .destination)
        let udp = FeatureSchema.stem("udp_packets_received", in: .destination)
        let icmp = FeatureSchema.stem("icmp_packets_received", in: .destination)
        let unsolicited = FeatureSchema.stem("unsolicited_tcp_received", in: .destination)
        let pkIn = FeatureSchema.stem("packets_received", in: .destination)
        let byIn = FeatureSchema.stem("bytes_received", in: .destination)
        let count = FeatureSchema.windowedStems(of: .destination).count
    }

    /// Distinct-count sets of each entity.
    private enum Distinct {
        static let addresses = 0, ports = 1, pairs = 2
        static let sources = 0, sourcePorts = 1, destinationPorts = 2
    }

    public init(limits: TrackerLimits = .standard) {
        self.limits = limits
        beacons = BeaconHistories(limit: limits.pairs)
    }

    /// Adds one poll's records, as `flows` (already holding them) saw
    /// them, and returns a vector for every host and destination whose
    /// traffic changed in it: ``beginPoll(_:flows:nowNs:)``, every vector,
    /// ``endPoll(flows:nowNs:)``.
    public mutating func update(_ changes: [FlowChange], flows: FlowLedger, nowNs: UInt64) -> [EntityVector] {
        let touched = beginPoll(changes, flows: flows, nowNs: nowNs)
        let out = vectors(of: touched, in: 0..<touched.count)
        endPoll(flows: flows, nowNs: nowNs)
        return out
    }

    /// The hosts and destinations whose traffic changed in a poll, by slot:
    /// what ``vectors(of:in:)`` builds vectors for, until ``endPoll(flows:nowNs:)``.
    public struct TouchedEntities: Sendable {
        fileprivate var hosts: [Int32] = []
        fileprivate var destinations: [Int32] = []

        /// Hosts first, then destinations.
        public var count: Int { hosts.count + destinations.count }
    }

    /// Adds one poll's records, as `flows` (already holding them) saw them,
    /// and returns the entities they changed. Their vectors are then built
    /// a slice at a time (``vectors(of:in:)``), so a poll that changes a
    /// hundred thousand hosts (a forged flood's admitted sources, ending
    /// together) never holds a vector for each; ``endPoll(flows:nowNs:)``
    /// closes the poll, and no other change may come in between.
    public mutating func beginPoll(_ changes: [FlowChange], flows: FlowLedger, nowNs: UInt64) -> TouchedEntities {
        hostArrivals.refill(limit: limits.entities)
        destinationArrivals.refill(limit: limits.entities)
        beacons.beginPoll()
        if historyBeforeNs.map({ $0 > nowNs &+ WindowedStatistics.clockStepNs }) ?? true {
            historyBeforeNs = nowNs.subtractingSaturated(Self.historyNs)
        }
        // By index: each record is copied once, for the call, not also
        // into the loop's element.
        for i in changes.indices { add(changes[i], changes[i].record, nowNs: nowNs) }
        countSlowFlows(flows, nowNs: nowNs)
        var touched = TouchedEntities()
        for slot in hosts.slots where hosts[slot].touched { touched.hosts.append(Int32(slot)) }
        for slot in destinations.slots where destinations[slot].touched { touched.destinations.append(Int32(slot)) }
        return touched
    }

    /// The vectors of the touched entities numbered `range` (hosts first,
    /// then destinations, in slot order).
    public func vectors(of touched: TouchedEntities, in range: Range<Int>) -> [EntityVector] {
        range.map { i in
            if i < touched.hosts.count {
                let slot = Int(touched.hosts[i])
                return Self.entityVector(.host, hosts.key(at: slot), hosts[slot], vector: hostVector(hosts[slot]))
            }
            let slot = Int(touched.destinations[i - touched.hosts.count])
            return Self.entityVector(.destination, destinations.key(at: slot), destinations[slot],
                                     vector: destinationVector(destinations[slot]))
        }
    }

    /// Closes the poll ``beginPoll(_:flows:nowNs:)`` began: clears the
    /// touched marks, forgets idle entities and keeps the tables within
    /// their limits.
    public mutating func endPoll(flows: FlowLedger, nowNs: UInt64) {
        Self.clearPoll(&hosts)
        Self.clearPoll(&destinations)
        // A clock that stepped back a minute or more (a capture file) sweeps from the new time.
        if nowNs.subtractingSaturated(lastSweepNs) > 10_000_000_000 || lastSweepNs > nowNs &+ 60_000_000_000 {
            forgetIdle(nowNs: nowNs, flows: flows)
        }
        enforceLimits()
        statistics.trackedFlows = flows.count
        statistics.flowsNotTracked = flows.notTracked
        statistics.trackedHosts = hosts.count
        statistics.trackedDestinations = destinations.count
        statistics.trackedPairs = beacons.count
        statistics.pairsEvicted = beacons.evicted
    }

    /// An entity's vector as of this poll, naming its main peer with that
    /// peer's protocol and port (else the latest flow's).
    private static func entityVector(_ kind: AnomalyKind, _ address: IPAddress, _ e: WindowedStatistics,
                                     vector: [Double]) -> EntityVector {
        let main = e.mainPeer
        return EntityVector(kind: kind, address: address, peer: main?.peer, ipProtocol: main?.ipProtocol ?? e.ipProtocol,
                            port: main?.port ?? e.port, observationPoint: e.observationPoint, vector: vector,
                            recentFlowIDs: Array(e.recent))
    }

    private static func clearPoll(_ entities: inout TrackerTable<IPAddress, WindowedStatistics>) {
        for slot in entities.slots { entities[slot].endPoll() }
    }

    /// Adds one record to its source host and its destination, changing
    /// each in place in its table.
    private mutating func add(_ change: FlowChange, _ r: FlowRecord, nowNs now: UInt64) {
        // A new flow the ledger had no room for is left out, as it always was.
        guard change.tracked else { return }
        // A record with no new traffic (a flow timing out) of an entity the
        // limits evicted updates the side still held and does not make the
        // other again, empty: a forged flood's sources would all come back.
        let quiet = !change.isNew && change.delta == .zero
        // First: an unreachable's target, if held or if there is a free
        // place, counts its failure before the record's source may evict it.
        if change.isNew { countUnreachable(r, nowNs: now) }
        // Made before either is changed, so the slots stay valid until the
        // record is added: nothing else adds to or removes from these tables
        // in between.
        let hostSlot = quiet ? hosts.slot(of: r.sourceAddress)
            : Self.slot(for: r.sourceAddress, in: &hosts, queue: &hostArrivals, limit: limits.entities, stems: stems.host.count,
                        now: now, evicted: &statistics.hostsEvicted)
        let destinationSlot = quiet ? destinations.slot(of: r.destinationAddress)
            : Self.slot(for: r.destinationAddress, in: &destinations, queue: &destinationArrivals, limit: limits.entities,
                        stems: stems.destination.count, now: now, evicted: &statistics.destinationsEvicted)
        var overflow: UInt64 = 0
        let deltas = Deltas(change, now: now, historyBeforeNs: historyBeforeNs ?? 0)
        switch (hostSlot, destinationSlot) {
        case let (h?, d?):
            Self.add(change, r, deltas, now: now, stems: stems, host: &hosts[h], destination: &destinations[d], beacons: &beacons, marks: &marks,
                     overflow: &overflow)
        case let (h?, nil):
            var d = WindowedStatistics(stems: stems.destination.count, now: now)
            Self.add(change, r, deltas, now: now, stems: stems, host: &hosts[h], destination: &d, beacons: &beacons, marks: &marks,
                     overflow: &overflow)
        case let (nil, d?):
            var h = WindowedStatistics(stems: stems.host.count, now: now)
            Self.add(change, r, deltas, now: now, stems: stems, host: &h, destination: &destinations[d], beacons: &beacons, marks: &marks,
                     overflow: &overflow)
        case (nil, nil):
            var h = WindowedStatistics(stems: stems.host.count, now: now), d = WindowedStatistics(stems: stems.destination.count, now: now)
            Self.add(change, r, deltas, now: now, stems: stems, host: &h, destination: &d, beacons: &beacons, marks: &marks, overflow: &overflow)
        }
        statistics.distinctOverflows += overflow
    }

    /// What one record adds to its host and destination, both brought to
    /// `now` and marked for a fresh vector.
    private static func add(_ change: FlowChange, _ r: FlowRecord, _ deltas: Deltas, now: UInt64, stems: Stems,
                            host h: inout WindowedStatistics, destination d: inout WindowedStatistics,
                            beacons: inout BeaconHistories, marks: inout FlowMarks, overflow: inout UInt64) {
        let isNew = change.isNew
        h.decay(to: now)
        h.touched = true
        d.decay(to: now)
        d.touched = true
        h.note(flow: r.id, peer: r.destinationAddress, ipProtocol: r.ipProtocol, port: r.destinationPort, observedAt: r.interface,
               interfaceIndex: r.interfaceIndex)
        d.note(flow: r.id, peer: r.sourceAddress, ipProtocol: r.ipProtocol, port: r.destinationPort, observedAt: r.interface,
               interfaceIndex: r.interfaceIndex)
        if isNew {
            countNewFlow(r, stems: stems, host: &h, destination: &d, beacons: &beacons, nowNs: now, overflow: &overflow)
        } else if IPProtocol.hasPorts(r.ipProtocol) {
            beacons.noteBytes(r)
        }
        if change.delta.reversePackets > 0 {
            h.answered = true
            d.answered = true
        }
        addTraffic(r, deltas, stems: stems, host: &h, destination: &d, beacons: beacons)
        countFailure(r, stems: stems, host: &h, destination: &d, marks: &marks, nowNs: now)
        countEstablished(r, stems: stems, host: &h, destination: &d, marks: &marks)
        if r.state == .ended {
            marks.failed.remove(r.id)
            marks.established.remove(r.id)
            h.openFlows = max(0, h.openFlows - 1)
            d.openFlows = max(0, d.openFlows - 1)
        }
    }

    /// The slot of `address`'s entity, added (queued for eviction order)
    /// when not held, after evicting to make room at `limit`: a table that
    /// grew past its limit within a poll would keep the grown index
    /// (doubled again for one entry over a power of two). Counts what it
    /// evicted in `evicted`.
    private static func slot(for address: IPAddress, in table: inout TrackerTable<IPAddress, WindowedStatistics>,
                             queue: inout ArrivalQueue<IPAddress>, limit: Int, stems: Int, now: UInt64,
                             evicted: inout UInt64) -> Int {
        if let slot = table.slot(of: address) { return slot }
        if table.count >= limit {
            evicted += UInt64(ArrivalQueue.evict(&table, queue: &queue, limit: limit - 1, arrival: \.arrival,
                                                 isWorthKeeping: \.isWorthKeeping).count)
        }
        var e = WindowedStatistics(stems: stems, now: now)
        e.arrival = queue.push(address)
        return table.insert(e, for: address)
    }

    /// A new flow: one more flow, open flow and distinct peer, port and
    /// service for each side, and a start in its pair's beacon history.
    private static func countNewFlow(_ r: FlowRecord, stems: Stems, host h: inout WindowedStatistics,
                                     destination d: inout WindowedStatistics,
                                     beacons: inout BeaconHistories, nowNs now: UInt64, overflow: inout UInt64) {
        let hasPorts = IPProtocol.hasPorts(r.ipProtocol)
        let destinationKey = Self.addressKey(r.destinationAddress)
        // A port of TCP, UDP or SCTP, or for any other protocol the
        // protocol itself: a scan over any transport (nmap -sY) or over
        // the protocol numbers (-sO) counts as many targets as it probes.
        let port = UInt64(hasPorts ? r.destinationPort : 0) | UInt64(r.ipProtocol) << 16
        h.add(stems.host.flows, 1)
        h.openFlows += 1
        h.flowsSeen = h.flowsSeen &+ (h.flowsSeen == .max ? 0 : 1)
        d.flowsSeen = d.flowsSeen &+ (d.flowsSeen == .max ? 0 : 1)
        h.touchDistinct(set: Distinct.addresses, stem: stems.host.addrs, item: destinationKey, now: now, overflow: &overflow)
        h.touchDistinct(set: Distinct.ports, stem: stems.host.ports, item: port, now: now, overflow: &overflow)
        let service = destinationKey ^ (UInt64(r.destinationPort) << 48 | UInt64(r.ipProtocol) << 40)
        h.touchDistinct(set: Distinct.pairs, stem: stems.host.pairs, item: service, now: now, overflow: &overflow)
        d.add(stems.destination.flows, 1)
        d.openFlows += 1
        d.touchDistinct(set: Distinct.sources, stem: stems.destination.srcs, item: Self.addressKey(r.sourceAddress), now: now,
                        overflow: &overflow)
        d.touchDistinct(set: Distinct.destinationPorts, stem: stems.destination.dports, item: port, now: now, overflow: &overflow)
        if hasPorts {
            d.touchDistinct(set: Distinct.sourcePorts, stem: stems.destination.sports, item: UInt64(r.sourcePort), now: now,
                            overflow: &overflow)
            h.beacon = max(h.beacon, beacons.noteStart(r))
        }
    }

    /// An address folded to the 64-bit item distinct-count sets hold.
    private static func addressKey(_ a: IPAddress) -> UInt64 {
        a.high ^ (a.low &* 0x9E37_79B9_7F4A_7C15)
    }

    /// Packets, bytes and flags since the flow's previous record; and the
    /// rhythm of a long flow, which can be a beacon on its own.
    private static func addTraffic(_ r: FlowRecord, _ delta: Deltas, stems: Stems, host h: inout WindowedStatistics,
                                   destination d: inout WindowedStatistics, beacons: borrowing BeaconHistories) {
        let isUDP = r.ipProtocol == IPProtocol.udp
        let isICMP = IPProtocol.isICMP(r.ipProtocol)
        let hasPorts = IPProtocol.hasPorts(r.ipProtocol)
        let isOther = !hasPorts && !isICMP
        let echo = isICMP && (r.forward.icmpType == 8 || r.forward.icmpType == 128)
        h.add(stems.host.syn, delta.syn, delta.shares)
        h.add(stems.host.synAck, delta.synAck, delta.shares)
        h.add(stems.host.pkOut, delta.forwardPackets, delta.shares)
        h.add(stems.host.pkIn, delta.reversePackets, delta.shares)
        h.add(stems.host.byOut, delta.forwardBytes, delta.shares)
        h.add(stems.host.byIn, delta.reverseBytes, delta.shares)
        if isUDP { h.add(stems.host.udp, delta.forwardPackets, delta.shares) }
        if isICMP {
            h.add(stems.host.icmp, delta.forwardPackets, delta.shares)
            h.add(stems.host.icmpBytes, delta.forwardBytes, delta.shares)
        }
        if echo { h.add(stems.host.echo, delta.forwardPackets, delta.shares) }
        if isOther {
            h.add(stems.host.otherIP, delta.forwardPackets, delta.shares)
            d.add(stems.destination.otherIP, delta.forwardPackets, delta.shares)
        }
        if isDNSQuery(r) {
            h.add(stems.host.dnsQueries, delta.forwardPackets, delta.shares)
            h.add(stems.host.dnsBytes, delta.forwardBytes, delta.shares)
        }
        d.add(stems.destination.syn, delta.syn, delta.shares)
        d.add(stems.destination.synAck, delta.synAck, delta.shares)
        d.add(stems.destination.pkIn, delta.forwardPackets, delta.shares)
        d.add(stems.destination.byIn, delta.forwardBytes, delta.shares)
        if isUDP { d.add(stems.destination.udp, delta.forwardPackets, delta.shares) }
        if isICMP { d.add(stems.destination.icmp, delta.forwardPackets, delta.shares) }
        if isUnsolicited(r) {
            h.add(stems.host.unsolicited, delta.forwardPackets, delta.shares)
            d.add(stems.destination.unsolicited, delta.forwardPackets, delta.shares)
        }
        // One long flow that sends on a fixed rhythm is a beacon too; but a
        // rhythm that many slow connections of the host share at once is
        // slow connections (slowloris keeps each alive on a timer), not a
        // check-in. The count is the one of the previous poll, so it still
        // holds when those connections end together.
        // Its packet gaps are held to the same strictness as a series of
        // connections with as many gaps: a few gaps agree by chance (a busy
        // client's TCP timers), many equal gaps do not.
        // A transfer's acknowledgements keep the rhythm of the data they
        // answer (a slow download's ACK clock), so the rhythm counts only
        // when at least a third of the sender's packets carry data, as a
        // check-in or a keep-alive line does. A rhythm to a service many
        // hosts keep one with is the site's (``BeaconScore/sharedServiceSources``).
        let carriesData = 3 * UInt64(r.forward.payloadPackets) >= r.forward.packets
        // Last: the service lookup is needed for the few flows long enough to have a rhythm.
        if hasPorts && r.forward.packets > 4 && carriesData && h.slowFlows < Labeler.slowConnectionsFloor && !beacons.isShared(r) {
            let gaps = FlowFeatures.interArrival(r.forward)
            if gaps.meanMs >= 200 {
                // At most a full history's strictness (seven gaps): the leniency of
                // longer series is for connection starts, which come one connect
                // each; packet gaps inside one connection line up more readily.
                let gapCount = Int(min(r.forward.packets - 2, 64))
                let strictness = BeaconScore.strictness(gaps: min(gapCount, BeaconScore.history - 1))
                let rhythm = FlowFeatures.regularity(r.forward, strictness: strictness, dropShortest: true)
                h.beacon = max(h.beacon, BeaconScore.capped(rhythm, gaps: gapCount))
            }
        }
    }

    /// The DNS port: queries to it (UDP or TCP) are counted on their own,
    /// as a DNS tunnel hides in them.
    static let dnsPort: UInt16 = 53

    /// A flow that carries DNS queries: UDP or TCP to port 53.
    static func isDNSQuery(_ r: FlowRecord) -> Bool {
        (r.ipProtocol == IPProtocol.udp || r.ipProtocol == IPProtocol.tcp) && r.destinationPort == dnsPort
    }

    /// A TCP connection counts as established once, with the first record
    /// that shows its handshake completed (SYN, SYN-ACK and the initiator's
    /// ACK). SYNs that a flood tool answers with a reset never get there,
    /// however many bytes other flows of the same hosts carry.
    private static func countEstablished(_ r: FlowRecord, stems: Stems, host h: inout WindowedStatistics,
                                         destination d: inout WindowedStatistics, marks: inout FlowMarks) {
        guard r.handshakeCompleted, !marks.established.contains(r.id) else { return }
        if r.state != .ended { marks.established.insert(r.id) }
        h.add(stems.host.established, 1)
        d.add(stems.destination.established, 1)
    }

    /// A TCP flow outside any connection: its initiator sent no SYN and the
    /// other side answered, if at all, only with resets. ACK, FIN, RST,
    /// PSH+ACK and XMAS floods are such flows; a connection seen mid-stream
    /// (it began before the capture) is not, as its peer answers with data
    /// or acknowledgements.
    static func isUnsolicited(_ r: FlowRecord) -> Bool {
        r.ipProtocol == IPProtocol.tcp && r.forward.synCount == 0 && r.reverse.synAckCount == 0
            && r.reverse.packets == UInt64(r.reverse.rstCount)
    }

    /// Whether a TCP connection had failed as of a record reported at
    /// `now`: refused (RST without handshake), or a SYN unanswered for a
    /// second. Each part only grows with later records, so a flow failed as
    /// of its previous record has failed already and is not counted twice.
    static func hasFailed(_ r: FlowRecord, at now: UInt64) -> Bool {
        guard r.ipProtocol == IPProtocol.tcp && r.forward.synCount > 0 && r.reverse.synAckCount == 0 else { return false }
        return r.reverse.rstCount > 0 || now.subtractingSaturated(r.firstSeenNs) >= Self.unansweredNs || r.state == .ended
    }

    /// A connection fails once: counted with the first record that shows it.
    private static func countFailure(_ r: FlowRecord, stems: Stems, host h: inout WindowedStatistics,
                                     destination d: inout WindowedStatistics, marks: inout FlowMarks, nowNs now: UInt64) {
        // The cheap test first: most records are of flows that have not failed.
        guard hasFailed(r, at: now) && !marks.failed.contains(r.id) else { return }
        if r.state != .ended { marks.failed.insert(r.id) }
        h.add(stems.host.failed, 1)
        d.add(stems.destination.failed, 1)
    }

    /// A SYN that has gone unanswered for a second fails by the clock, not
    /// with the flow's next record: a half-open flow sends nothing more
    /// until it times out, and a scan posted in one request (remote ingest)
    /// would otherwise show its failures only then. Counts it on both ends
    /// and marks them for a fresh vector.
    private mutating func countUnanswered(_ r: FlowRecord, nowNs now: UInt64) {
        guard r.forward.synCount > 0, !marks.failed.contains(r.id), Self.hasFailed(r, at: now) else { return }
        marks.failed.insert(r.id)
        Self.countFailure(of: r, in: &hosts, r.sourceAddress, stem: stems.host.failed, peer: r.destinationAddress, nowNs: now)
        Self.countFailure(of: r, in: &destinations, r.destinationAddress, stem: stems.destination.failed, peer: r.sourceAddress,
                          nowNs: now)
    }

    /// One failure of `r` for the entity of `address`, if held, marked for a fresh vector.
    private static func countFailure(of r: FlowRecord, in table: inout TrackerTable<IPAddress, WindowedStatistics>,
                                     _ address: IPAddress, stem: Int, peer: IPAddress, nowNs now: UInt64) {
        guard let slot = table.slot(of: address) else { return }
        table[slot].decay(to: now)
        table[slot].add(stem, 1)
        table[slot].touched = true
        // The failure is traffic with that peer this poll, as a record would be.
        table[slot].note(flow: r.id, peer: peer, ipProtocol: r.ipProtocol, port: r.destinationPort, observedAt: r.interface,
                         interfaceIndex: r.interfaceIndex)
    }

    /// An ICMP unreachable is a failure of the host it is sent to.
    private mutating func countUnreachable(_ r: FlowRecord, nowNs now: UInt64) {
        let unreachable = (r.ipProtocol == IPProtocol.icmp && r.forward.icmpType == 3)
            || (r.ipProtocol == IPProtocol.icmpv6 && r.forward.icmpType == 1)
        guard unreachable, r.destinationAddress != r.sourceAddress else { return }
        // A target not held takes a free place only: anyone can send
        // unreachables to any number of addresses, and a target made by
        // evicting would push out hosts that sent traffic (the record's own
        // source, made next, evicts to make room as usual).
        guard hosts.count < limits.entities || hosts.slot(of: r.destinationAddress) != nil else {
            statistics.unreachablesNotHeld += 1
            return
        }
        // Below the limit, so this makes room by evicting nothing.
        var evicted: UInt64 = 0
        let slot = Self.slot(for: r.destinationAddress, in: &hosts, queue: &hostArrivals, limit: limits.entities, stems: stems.host.count,
                             now: now, evicted: &evicted)
        hosts[slot].decay(to: now)
        hosts[slot].touched = true
        hosts[slot].add(stems.host.failed, 1)
    }

    /// Counts each entity's open TCP connections that are old and slow (not
    /// closing: a FIN or RST was not seen), and the SYNs that have gone
    /// unanswered for a second by now.
    private mutating func countSlowFlows(_ flows: FlowLedger, nowNs now: UInt64) {
        var slowBySource: [IPAddress: Int] = [:]
        var slowByDestination: [IPAddress: Int] = [:]
        flows.forEachOpenFlow(ipProtocol: IPProtocol.tcp) { r, firstSeenNs in
            countUnanswered(r, nowNs: now)
            // A connection never established (a flood's half-open or bare
            // packets) is not a slow connection, however long it stays open.
            guard r.forward.synCount > 0 && r.reverse.synAckCount > 0 else { return }
            let closing = (r.forward.finCount | r.reverse.finCount | r.forward.rstCount | r.reverse.rstCount) != 0
            guard !closing else { return }
            let age = now.subtractingSaturated(firstSeenNs)
            guard age >= Self.slowAgeNs, now.subtractingSaturated(r.lastSeenNs) < 60_000_000_000 else { return }
            let rate = Double(r.packets) / (Double(age) / 1e9)
            if rate < Self.slowPacketsPerSecond {
                slowBySource[r.sourceAddress, default: 0] += 1
                slowByDestination[r.destinationAddress, default: 0] += 1
                // A slow connection sends little or nothing in a poll, yet it is
                // what a slow-connections anomaly is about: it names its peers.
                if let slot = hosts.slot(of: r.sourceAddress) {
                    hosts[slot].countPeer(r.destinationAddress, ipProtocol: r.ipProtocol, port: r.destinationPort)
                }
                if let slot = destinations.slot(of: r.destinationAddress) {
                    destinations[slot].countPeer(r.sourceAddress, ipProtocol: r.ipProtocol, port: r.destinationPort)
                }
            }
        }
        Self.setSlowFlows(&hosts, from: slowBySource, now: now)
        Self.setSlowFlows(&destinations, from: slowByDestination, now: now)
    }

    /// Updates each entity's count of open slow connections; an entity whose
    /// count rises is marked for a fresh vector.
    private static func setSlowFlows(_ entities: inout TrackerTable<IPAddress, WindowedStatistics>, from counts: [IPAddress: Int],
                                     now: UInt64) {
        for slot in entities.slots {
            let slow = counts[entities.key(at: slot)] ?? 0
            guard entities[slot].slowFlows != slow else { continue }
            entities[slot].slowFlows = slow
            if slow > 0 {
                entities[slot].decay(to: now)
                entities[slot].touched = true
            }
        }
    }

    /// Brings each table within ``limits``, the entities and histories of
    /// a single unanswered flow first (a forged source, a one-off probe):
    /// those say little alone, and what they did still counts on their
    /// peer's side.
    private mutating func enforceLimits() {
        let hostsGone = ArrivalQueue.evict(&hosts, queue: &hostArrivals, limit: limits.entities,
                                           arrival: \.arrival, isWorthKeeping: \.isWorthKeeping)
        let destinationsGone = ArrivalQueue.evict(&destinations, queue: &destinationArrivals, limit: limits.entities,
                                                  arrival: \.arrival, isWorthKeeping: \.isWorthKeeping)
        beacons.enforceLimit()
        statistics.hostsEvicted += UInt64(hostsGone.count)
        statistics.destinationsEvicted += UInt64(destinationsGone.count)
    }

    private mutating func forgetIdle(nowNs now: UInt64, flows: FlowLedger) {
        lastSweepNs = now
        // Flows the ledger forgot without an ended record.
        marks.failed = marks.failed.filter { flows[$0] != nil }
        marks.established = marks.established.filter { flows[$0] != nil }
        hosts.removeAll { now.subtractingSaturated($1.updatedNs) >= Self.forgetAfterNs && $1.openFlows <= 0 }
        destinations.removeAll { now.subtractingSaturated($1.updatedNs) >= Self.forgetAfterNs && $1.openFlows <= 0 }
        beacons.forget(olderThan: Self.forgetAfterNs, nowNs: now)
        do {
            // Local copies (shared, not copied) so the closures do not read
            // self while a queue changes; gone before the tables change again.
            let (heldHosts, heldDestinations) = (hosts, destinations)
            hostArrivals.retain { heldHosts[key: $0]?.arrival == $1 }
            destinationArrivals.retain { heldDestinations[key: $0]?.arrival == $1 }
        }
        // Items unseen for 10 minutes weigh under 2 % even in the 100 s
        // window. A busy server that is never idle long enough to be
        // forgotten would otherwise fill its sets with clients of hours ago
        // (4,096 at most), and then count each returning client as a new one.
        let cutoff = now > Self.forgetAfterNs ? now - Self.forgetAfterNs + 1 : 0
        for slot in hosts.slots { hosts[slot].distinct.forget(seenBefore: cutoff) }
        for slot in destinations.slots { destinations[slot].distinct.forget(seenBefore: cutoff) }
    }

    private func hostVector(_ e: WindowedStatistics) -> [Double] {
        var v: [Double] = []
        v.reserveCapacity(FeatureSchema.host.count)
        for stem in 0..<stems.host.count {
            for w in 0..<WindowedStatistics.windowCount { v.append(log1p(max(0, e.value(stem, w)))) }
        }
        let flows10 = e.value(stems.host.flows, 1)
        v.append(flows10 > 0.5 ? min(1, e.value(stems.host.failed, 1) / flows10) : 0)
        v.append(log1p(e.value(stems.host.syn, 1) / (e.value(stems.host.synAck, 1) + 1)))
        v.append(log1p(max(0, e.value(stems.host.byOut, 2))) - log1p(max(0, e.value(stems.host.byIn, 2))))
        let flows100 = e.value(stems.host.flows, 2)
        v.append(log1p(flows100 > 0.5 ? (e.value(stems.host.byOut, 2) + e.value(stems.host.byIn, 2)) / flows100 : 0))
        v.append(log1p(Double(e.openFlows)))
        v.append(log1p(Double(e.slowFlows)))
        v.append(e.beacon)
        return v
    }

    private func destinationVector(_ e: WindowedStatistics) -> [Double] {
        var v: [Double] = []
        v.reserveCapacity(FeatureSchema.destination.count)
        for stem in 0..<stems.destination.count {
            for w in 0..<WindowedStatistics.windowCount { v.append(log1p(max(0, e.value(stem, w)))) }
        }
        let flows10 = e.value(stems.destination.flows, 1)
        v.append(flows10 > 0.5 ? min(1, e.value(stems.destination.failed, 1) / flows10) : 0)
        v.append(log1p(Double(e.openFlows)))
        v.append(log1p(Double(e.slowFlows)))
        return v
    }
}
