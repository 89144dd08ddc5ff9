import FlowForestCore

/// The beacon history of each source towards each destination service (its
/// last ``BeaconScore/history`` connection starts), and how many sources
/// keep one with each service. Part of ``HostTracker``, held apart so that
/// the tracker can change a host, a destination and these histories for
/// one record at once, each in its own table.
struct BeaconHistories {
    /// One source's last connections to one destination service, oldest first.
    struct PairHistory {
        var starts: InlineFirstArray<BeaconScore.Start>
        /// The gaps between connections that have left `starts`.
        var earlier = BeaconScore.EarlierGaps()
        /// When it entered the table (``ArrivalQueue``).
        var arrival: UInt64

        /// More than one connection, or one that was answered: a forged
        /// source's lone SYN is the first history to go.
        var isWorthKeeping: Bool { starts.count > 1 || starts.contains { !$0.probe } }
    }

    private var pairs = TrackerTable<BeaconScore.PairKey, PairHistory>()
    /// Sources with a history in `pairs` towards each service.
    private var serviceSources = TrackerTable<BeaconScore.ServiceKey, Int>()
    private var arrivals = ArrivalQueue<BeaconScore.PairKey>()
    /// How many histories are held at most.
    let limit: Int
    /// Histories evicted to stay within `limit`.
    private(set) var evicted: UInt64 = 0

    init(limit: Int) {
        self.limit = limit
    }

    /// Histories held.
    var count: Int { pairs.count }

    /// Grants this poll's second chances to histories worth keeping.
    mutating func beginPoll() {
        arrivals.refill(limit: limit)
    }

    /// Adds a new flow to its pair's history and returns the pair's
    /// regularity, ``BeaconScore/regularity(_:earlier:)``; 0 towards a
    /// shared service, whose rhythm is the site's.
    mutating func noteStart(_ r: FlowRecord) -> Double {
        let key = BeaconScore.PairKey(r)
        // Taken out of the table (swapped) so storing it back does not copy it.
        var history = PairHistory(starts: InlineFirstArray(), arrival: 0)
        let slot = pairs.slot(of: key)
        if let slot { swap(&history, &pairs[slot]) }
        BeaconScore.record(BeaconScore.Start(r), in: &history.starts, earlier: &history.earlier)
        let series = history.starts, earlier = history.earlier
        if let slot {
            swap(&history, &pairs[slot])
        } else {
            // Room first, as for hosts, so the index keeps its size for the
            // limit; then queued, so eviction never meets the new pair's number.
            if pairs.count >= limit { evict(limit: limit - 1) }
            if let s = serviceSources.slot(of: key.service) {
                serviceSources[s] += 1
            } else {
                serviceSources.insert(1, for: key.service)
            }
            history.arrival = arrivals.push(key)
            pairs.insert(history, for: key)
        }
        return isShared(r) ? 0 : BeaconScore.regularity(series, earlier: earlier)
    }

    /// Whether the flow's destination service is one that
    /// ``BeaconScore/sharedServiceSources`` or more sources keep a history with.
    func isShared(_ r: FlowRecord) -> Bool {
        guard IPProtocol.hasPorts(r.ipProtocol) else { return false }
        return (serviceSources[key: BeaconScore.ServiceKey(r)] ?? 0) >= BeaconScore.sharedServiceSources
    }

    /// Keeps the byte count of a flow in its pair's history current.
    mutating func noteBytes(_ r: FlowRecord) {
        let key = BeaconScore.PairKey(r)
        guard let slot = pairs.slot(of: key), let i = pairs[slot].starts.lastIndex(where: { $0.flowID == r.id }) else { return }
        pairs[slot].starts[i] = BeaconScore.Start(r)
    }

    /// Brings the table within ``limit``, the histories of a single
    /// unanswered flow first.
    mutating func enforceLimit() {
        evict(limit: limit)
    }

    private mutating func evict(limit: Int) {
        let gone = ArrivalQueue.evict(&pairs, queue: &arrivals, limit: limit,
                                      arrival: \.arrival, isWorthKeeping: \.isWorthKeeping)
        for key in gone { forgetSource(key) }
        evicted += UInt64(gone.count)
    }

    /// Forgets the histories whose last connection started `age`
    /// nanoseconds or more before `now`.
    mutating func forget(olderThan age: UInt64, nowNs now: UInt64) {
        var stale: [BeaconScore.PairKey] = []
        pairs.removeAll { key, history in
            guard now.subtractingSaturated(history.starts.last?.startNs ?? 0) >= age else { return false }
            stale.append(key)
            return true
        }
        for key in stale { forgetSource(key) }
        // A local copy (shared, not copied) so the closure does not read
        // self while the queue changes.
        let held = pairs
        arrivals.retain { held[key: $0]?.arrival == $1 }
    }

    /// One source fewer keeps a history with the pair's service.
    private mutating func forgetSource(_ key: BeaconScore.PairKey) {
        guard let s = serviceSources.slot(of: key.service) else { return }
        serviceSources[s] -= 1
        if serviceSources[s] <= 0 { serviceSources.remove(at: s) }
    }
}

extension BeaconHistories: Sendable {}
