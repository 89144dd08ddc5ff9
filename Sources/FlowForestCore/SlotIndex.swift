/// A hash index from a key to a slot number, for tables whose slots hold
/// their own keys (the flow tables' ``ChunkedArray``s): four bytes a
/// bucket, where a `[Key: UInt32]` keeps a second copy of every key beside
/// the number (44 bytes a bucket for a ``FlowKey``).
///
/// Open addressing with linear probing, at most half full; a removal
/// shifts the entries after it back (no tombstones), so lookups never slow
/// down with churn. The index never sees a key: callers pass the key's
/// hash, a test that a slot holds the key, and, where entries move (growth,
/// removal), the hash of any slot's key.
///
/// Inlinable, as ``ChunkedArray`` is: the trackers of other modules call
/// it per entry, and its closures inline only where it does.
public struct SlotIndex: Sendable {
    /// Slot number + 1 per bucket; 0 is an empty bucket.
    @usableFromInline var buckets: [UInt32] = []
    @usableFromInline var storedCount = 0

    @inlinable public init() {}

    /// Slots indexed.
    @inlinable public var count: Int { storedCount }

    @inlinable var mask: Int { buckets.count - 1 }

    /// The slot, among those filed under `hash`, for which `matches` holds.
    @inlinable public func find(hash: Int, where matches: (Int) -> Bool) -> Int? {
        guard !buckets.isEmpty else { return nil }
        var b = hash & mask
        while buckets[b] != 0 {
            let slot = Int(buckets[b]) - 1
            if matches(slot) { return slot }
            b = (b + 1) & mask
        }
        return nil
    }

    /// Files `slot` (not in the index yet) under `hash`.
    @inlinable public mutating func insert(slot: Int, hash: Int, hashOf: (Int) -> Int) {
        precondition(slot >= 0 && slot < Int(UInt32.max), "SlotIndex: slot out of range")
        if (count + 1) * 2 > buckets.count { grow(hashOf) }
        place(slot, hash: hash)
        storedCount += 1
    }

    /// Takes `slot`, filed under `hash`, out of the index.
    @inlinable public mutating func remove(slot: Int, hash: Int, hashOf: (Int) -> Int) {
        guard var hole = bucket(of: slot, hash: hash) else { return }
        // Knuth's algorithm R: an entry after the hole moves into it unless
        // its home bucket lies cyclically in (hole, its bucket].
        var next = (hole + 1) & mask
        while buckets[next] != 0 {
            let home = hashOf(Int(buckets[next]) - 1) & mask
            if (next &- home) & mask >= (next &- hole) & mask {
                buckets[hole] = buckets[next]
                hole = next
            }
            next = (next + 1) & mask
        }
        buckets[hole] = 0
        storedCount -= 1
    }

    /// Re-files the entry for slot `from`, filed under `hash`, as slot `to`:
    /// its key moved to another slot.
    @inlinable public mutating func move(from: Int, to: Int, hash: Int) {
        guard let b = bucket(of: from, hash: hash) else { return }
        buckets[b] = UInt32(to + 1)
    }

    /// Empties the index and frees its buckets.
    @inlinable public mutating func removeAll() {
        buckets = []
        storedCount = 0
    }

    @inlinable func bucket(of slot: Int, hash: Int) -> Int? {
        guard !buckets.isEmpty else { return nil }
        let value = UInt32(slot + 1)
        var b = hash & mask
        while buckets[b] != 0 {
            if buckets[b] == value { return b }
            b = (b + 1) & mask
        }
        return nil
    }

    @inlinable mutating func place(_ slot: Int, hash: Int) {
        var b = hash & mask
        while buckets[b] != 0 { b = (b + 1) & mask }
        buckets[b] = UInt32(slot + 1)
    }

    @inlinable mutating func grow(_ hashOf: (Int) -> Int) {
        let old = buckets
        buckets = [UInt32](repeating: 0, count: max(16, old.count * 2))
        for value in old where value != 0 { place(Int(value) - 1, hash: hashOf(Int(value) - 1)) }
    }
}
