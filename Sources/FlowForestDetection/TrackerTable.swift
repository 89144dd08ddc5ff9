import FlowForestCore

/// One of the host tracker's tables (hosts, destinations, beacon
/// histories): entries packed densely in ``ChunkedArray``s and found through
/// a ``SlotIndex``, as the flow ledger holds its flows.
///
/// A `Dictionary` at the tracker's limits (131,072 hosts) keeps 262,144
/// buckets of key and value, half of them empty, and doubles into a second
/// table while it grows; here the index costs 4 bytes a bucket and the
/// entries sit in chunks of 4,096, with at most one spare chunk.
///
/// Entries are addressed by slot number. A slot stays valid until an entry
/// is removed: ``remove(at:)`` moves the last entry into the freed slot.
/// Keys are hashed with a secret key per table (``TableHasher``), so
/// addresses a sender picks cannot aim at one probe chain.
struct TrackerTable<Key: TrackerKey, Value> {
    private var keys = ChunkedArray<Key>()
    private var values = ChunkedArray<Value>()
    private var index = SlotIndex()
    private let hasher = TableHasher()

    /// Entries held.
    var count: Int { keys.count }

    /// Every slot in use, in no particular order.
    var slots: Range<Int> { 0..<keys.count }

    /// The slot holding `key`, if any.
    func slot(of key: Key) -> Int? {
        index.find(hash: key.hash(with: hasher)) { keys[$0] == key }
    }

    func key(at slot: Int) -> Key { keys[slot] }

    /// The entry in `slot`, read and changed in place: reading one field
    /// does not depend on the optimizer eliding the copy of the whole entry
    /// (and a retain of every array it holds) that a `get` returns.
    subscript(slot: Int) -> Value {
        _read { yield values[slot] }
        _modify { yield &values[slot] }
    }

    /// The entry for `key`, if held.
    subscript(key key: Key) -> Value? {
        slot(of: key).map { values[$0] }
    }

    /// Adds an entry for a key not held yet; returns its slot.
    @discardableResult
    mutating func insert(_ value: Value, for key: Key) -> Int {
        let slot = keys.count
        do {
            // A copy for the index's rehashing, shared and gone before `keys` changes.
            let keys = self.keys
            let hasher = self.hasher
            index.insert(slot: slot, hash: key.hash(with: hasher)) { keys[$0].hash(with: hasher) }
        }
        keys.append(key)
        values.append(value)
        return slot
    }

    /// Removes the entry in `slot`; the last entry moves into it.
    mutating func remove(at slot: Int) {
        do {
            let keys = self.keys
            let hasher = self.hasher
            index.remove(slot: slot, hash: keys[slot].hash(with: hasher)) { keys[$0].hash(with: hasher) }
        }
        let last = keys.count - 1
        keys.removeBySwappingLast(at: slot)
        if values.removeBySwappingLast(at: slot) { index.move(from: last, to: slot, hash: keys[slot].hash(with: hasher)) }
    }

    /// Removes every entry for which `shouldRemove` holds.
    mutating func removeAll(where shouldRemove: (Key, Value) -> Bool) {
        var slot = 0
        while slot < keys.count {
            // A removal moves the last entry here: look at this slot again.
            if shouldRemove(keys[slot], values[slot]) { remove(at: slot) } else { slot += 1 }
        }
    }
}

extension TrackerTable: Sendable where Key: Sendable, Value: Sendable {}
