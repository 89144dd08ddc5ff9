#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import FlowForestCore

/// Damped-window counters of one source host or one destination (Kitsune's
/// incremental statistics): every counter decays with each half-life of
/// ``FeatureSchema/halfLives``, so a burst shows at once and no window edge
/// hides it. Also holds what the entity's vector and report need besides
/// counters: open and slow flows, beacon regularity, its main peer this poll.
struct WindowedStatistics {
    /// Decay half-lives in nanoseconds, one per window.
    static let windows = FeatureSchema.halfLives.map { $0.seconds * 1e9 }
    /// How far back a clock must go to count as a step rather than two sources' polls interleaving.
    static let clockStepNs: UInt64 = 60_000_000_000
    static let windowCount = FeatureSchema.halfLives.count
    /// Items a distinct-count set remembers; beyond it, items count as new each time.
    static let maxDistinct = 4096
    /// Flow ids kept for the report.
    static let recentFlows = 16

    /// Windowed counters, stem-major: `counters[stem * windowCount + window]`.
    var counters: [Double]
    var updatedNs: UInt64
    /// Last time each item of each distinct-count set was seen.
    var distinct = DistinctSets()
    var openFlows = 0
    var slowFlows = 0
    /// Beacon regularity, decaying with the longest window.
    var beacon = 0.0
    /// This poll's records by peer as a Misra–Gries summary of
    /// ``trackedPeers`` counters (each count at most the peer's true one,
    /// and short of it by at most pollRecords / (trackedPeers + 1)), and all
    /// of this poll's records.
    var peers = InlineFirstArray<PeerRecords>()
    var pollRecords = 0
    /// The protocol and destination port of the latest flow.
    var ipProtocol: UInt8 = 0
    var port: UInt16 = 0
    var recent = InlineFirstArray<UInt64>()
    /// Where the latest flow was observed: the capture interface or, for a
    /// collected flow, its exporter. Kept across polls: it names the entity's
    /// anomaly, as the protocol and port do. Held inline (with the flow's
    /// interface index, which an exporter's name includes) and named only
    /// for a vector: it is noted on every record.
    var observedAt = InterfaceName.none
    var observedInterfaceIndex: UInt32 = 0
    var observationPoint: String? { observedAt.name(interfaceIndex: observedInterfaceIndex) }
    /// Changed this poll, so it gets a fresh vector.
    var touched = false
    /// When it entered its table (``ArrivalQueue``); 0 until stored.
    var arrival: UInt64 = 0
    /// New flows it took part in since it entered the table, saturating,
    /// and whether any of its flows was answered: an entity of one
    /// unanswered flow (a forged source) is the first to go when the table is full.
    var flowsSeen: UInt32 = 0
    var answered = false

    /// Worth a second chance when its table is over its limit.
    var isWorthKeeping: Bool { flowsSeen > 1 || answered }

    init(stems: Int, now: UInt64) {
        counters = [Double](repeating: 0, count: stems * Self.windowCount)
        updatedNs = now
    }

    /// Brings every counter to `now`. A clock that went back a long way (a
    /// capture file with a record stamped years ahead, then its own times)
    /// decays on from the new time; small steps back (sources polled a
    /// moment apart) are left to the next decay.
    mutating func decay(to now: UInt64) {
        guard now > updatedNs else {
            if updatedNs - now > Self.clockStepNs { updatedNs = now }
            return
        }
        let dt = Double(now - updatedNs)
        for (w, h) in Self.windows.enumerated() {
            let f = exp2(-dt / h)
            var i = w
            while i < counters.count {
                counters[i] *= f
                i += Self.windowCount
            }
        }
        beacon *= exp2(-dt / Self.windows[Self.windowCount - 1])
        updatedNs = now
    }

    mutating func add(_ stem: Int, _ amount: Double) {
        guard amount != 0 else { return }
        for w in 0..<Self.windowCount { counters[stem * Self.windowCount + w] += amount }
    }

    /// Adds `amount` to each window in its share.
    mutating func add(_ stem: Int, _ amount: Double, _ shares: WindowShares) {
        guard !shares.isWhole else { return add(stem, amount) }
        guard amount != 0 else { return }
        for w in 0..<Self.windowCount { counters[stem * Self.windowCount + w] += amount * shares.values[w] }
    }

    /// Decayed distinct count: each item contributes 2^(−age/h), so a
    /// repeat only refreshes its own contribution.
    mutating func touchDistinct(set: Int, stem: Int, item: UInt64, now: UInt64, overflow: inout UInt64) {
        if let previous = distinct[set][item] {
            let age = Double(now.nanosecondsApart(from: previous))
            for (w, h) in Self.windows.enumerated() {
                counters[stem * Self.windowCount + w] += 1 - exp2(-age / h)
            }
            distinct[set][item] = now
        } else {
            if distinct[set].count < Self.maxDistinct {
                distinct[set][item] = now
            } else {
                overflow += 1
            }
            add(stem, 1)
        }
    }

    /// One peer's share of the entity's records in a poll, with the protocol
    /// and destination port of its latest flow.
    struct PeerRecords {
        var peer: IPAddress
        var records: Int
        var ipProtocol: UInt8
        var port: UInt16
    }

    /// Counters of the peer summary: a flood's thousands of forged sources
    /// need no count each, as none of them can make half the records.
    static let trackedPeers = 8

    mutating func note(flow id: UInt64, peer p: IPAddress, ipProtocol: UInt8, port: UInt16, observedAt point: InterfaceName,
                       interfaceIndex: UInt32) {
        if recent.last != id {
            recent.append(id)
            if recent.count > Self.recentFlows { recent.removeFirst(recent.count - Self.recentFlows) }
        }
        countPeer(p, ipProtocol: ipProtocol, port: port)
        self.ipProtocol = ipProtocol
        self.port = port
        if !point.isNone {
            observedAt = point
            observedInterfaceIndex = interfaceIndex
        }
    }

    /// Counts one record (or one open slow connection) of this poll towards
    /// `p`: a peer without a counter takes a free one, or else every counter
    /// gives one up (Misra–Gries), so a peer making most records keeps its
    /// counter however many others came first.
    mutating func countPeer(_ p: IPAddress, ipProtocol: UInt8, port: UInt16) {
        pollRecords += 1
        if let i = peers.firstIndex(where: { $0.peer == p }) {
            peers[i].records += 1
            peers[i].ipProtocol = ipProtocol
            peers[i].port = port
        } else if peers.count < Self.trackedPeers {
            peers.append(PeerRecords(peer: p, records: 1, ipProtocol: ipProtocol, port: port))
        } else {
            for i in peers.indices { peers[i].records -= 1 }
            peers.removeAll { $0.records == 0 }
        }
    }

    /// The peer this poll's records and open slow connections were about:
    /// the only one, or the one that made more than half of them (a slowloris
    /// client's server among its DNS lookups; the client among a server's
    /// other visitors). Nil when no peer did, or when nothing named one.
    /// A summary count never exceeds the true one, so a peer named did make
    /// more than half; one just over half may go unnamed (over 11/18 never does).
    var mainPeer: PeerRecords? {
        guard let top = peers.max(by: { $0.records < $1.records }), top.records * 2 > pollRecords else { return nil }
        return top
    }

    func value(_ stem: Int, _ window: Int) -> Double { counters[stem * Self.windowCount + window] }

    /// Peers are reported per poll: the main peer of this poll, if any.
    mutating func endPoll() {
        touched = false
        peers.removeAll(keepingCapacity: true)
        pollRecords = 0
    }
}

/// The share of an amount each window of ``WindowedStatistics`` takes: all of
/// it for traffic of this poll; less for traffic that passed earlier, by what
/// each window's decay has left of it since.
struct WindowShares: Sendable, Equatable {
    /// One share per window, in ``FeatureSchema/halfLives`` order.
    private(set) var values: SIMD4<Double>
    private(set) var isWhole: Bool

    static let whole = WindowShares(values: .one, isWhole: true)

    private init(values: SIMD4<Double>, isWhole: Bool) {
        precondition(WindowedStatistics.windowCount <= 4, "a share per window")
        self.values = values
        self.isWhole = isWhole
    }

    /// What is left at `now` of an amount spread evenly over `start` to `end`
    /// (nanoseconds): per window of half-life h, the mean of 2^(−age/h) over
    /// that span. An end after `now` is taken as `now`.
    init(spreadFrom start: UInt64, to end: UInt64, now: UInt64) {
        let last = min(end, now), first = min(start, last)
        let sinceLast = Double(now - last), span = Double(last - first)
        var values = SIMD4<Double>.zero
        for (w, h) in WindowedStatistics.windows.enumerated() {
            // Below a microsecond the mean is the value at the end (and the
            // integral's difference would be all rounding).
            values[w] = span < 1_000 ? exp2(-sinceLast / h)
                : h / (span * M_LN2) * (exp2(-sinceLast / h) - exp2(-(sinceLast + span) / h))
        }
        self.init(values: values, isWhole: false)
    }
}
