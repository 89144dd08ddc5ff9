/// A map whose entries matter only while recent: the detector's per-address
/// memory (persistence bits, the last report of each kind and label).
///
/// Its keys are addresses a sender chooses (a forged flood brings a new one
/// with every packet), so it is bounded twice: entries untouched for
/// `idleNs` go, and at `limit` entries those idle ones and then the oldest
/// go until half the limit is left, which keeps the pruning's cost
/// amortized over the inserts between two prunes. An entry whose time lies
/// ahead of the clock (a capture file's hostile timestamps) is only ever
/// among the newest: the count bound still holds.
struct RecentMap<Key: Hashable, Value> {
    private var entries: [Key: (value: Value, touchedNs: UInt64)] = [:]
    let idleNs: UInt64
    let limit: Int

    init(idleNs: UInt64, limit: Int) {
        precondition(limit >= 2, "a recent map needs a limit of at least 2")
        self.idleNs = idleNs
        self.limit = limit
    }

    var count: Int { entries.count }
    /// Entries removed to stay within `limit` while not yet idle.
    private(set) var evicted: UInt64 = 0

    subscript(key: Key) -> Value? { entries[key]?.value }

    /// Sets (or with nil removes) the value of `key`, touched at `nowNs`.
    mutating func set(_ key: Key, _ value: Value?, nowNs: UInt64) {
        guard let value else {
            entries.removeValue(forKey: key)
            return
        }
        entries[key] = (value, nowNs)
        if entries.count > limit { prune(nowNs: nowNs) }
    }

    private mutating func prune(nowNs: UInt64) {
        entries = entries.filter { nowNs < $0.value.touchedNs || nowNs - $0.value.touchedNs < idleNs }
        let keep = limit / 2
        guard entries.count > keep else { return }
        let newest = entries.sorted { $0.value.touchedNs > $1.value.touchedNs }.prefix(keep)
        evicted += UInt64(entries.count - keep)
        entries = Dictionary(uniqueKeysWithValues: newest.map { ($0.key, $0.value) })
    }
}

extension RecentMap: Sendable where Key: Sendable, Value: Sendable {}
