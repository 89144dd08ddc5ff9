/// How many entities the host tracker holds at most. A forged-source flood
/// brings a new source address with every packet the data plane admits,
/// and each would otherwise stay for ``HostTracker/forgetAfterNs``: the
/// limits bound the tracker's memory whatever the traffic, and what they
/// evict is counted (``HostTrackerStatistics``).
public struct TrackerLimits: Sendable, Hashable {
    /// Source hosts held at most, and as many destinations.
    public var entities: Int
    /// Beacon histories (one per source and destination service) held at most.
    public var pairs: Int

    /// 131,072 hosts and destinations each (about 1.2 KB each) and 262,144
    /// beacon histories (about 0.2 KB each): about 360 MiB in all when every
    /// table is full.
    public static let standard = TrackerLimits(entities: 131_072, pairs: 262_144)

    public init(entities: Int, pairs: Int) {
        precondition(entities > 0 && pairs > 0, "tracker limits must be positive")
        self.entities = entities
        self.pairs = pairs
    }
}

/// The order in which a tracker table's entries arrived, for evicting the
/// oldest first when the table is over its limit.
///
/// Each entry is pushed once, when it is made, with a sequence number the
/// entry keeps; a queued number that no longer matches its entry (the entry
/// was forgotten, or evicted and made again) is stale and skipped.
struct ArrivalQueue<Key: Hashable> {
    private var ring: [(key: Key, arrival: UInt64)] = []
    private var head = 0
    private var nextArrival: UInt64 = 1
    /// Entries worth keeping that may still be queued again this poll
    /// instead of evicted (``refill(limit:)``).
    private var secondChances = 0

    var count: Int { ring.count - head }

    /// Grants a new poll's second chances: an eighth of the table's limit,
    /// so a table of entries all worth keeping still evicts within a poll.
    mutating func refill(limit: Int) {
        secondChances = limit / 8 + 64
    }

    /// Queues `key` and returns the arrival number its entry keeps.
    mutating func push(_ key: Key) -> UInt64 {
        let arrival = nextArrival
        nextArrival += 1
        ring.append((key, arrival))
        return arrival
    }

    /// Queues an entry again under its existing arrival number (a second chance).
    mutating func requeue(_ key: Key, arrival: UInt64) {
        ring.append((key, arrival))
    }

    mutating func pop() -> (key: Key, arrival: UInt64)? {
        guard head < ring.count else { return nil }
        let entry = ring[head]
        head += 1
        // Drop the consumed prefix once it is half the buffer: amortized O(1).
        if head >= 4096 && head * 2 >= ring.count {
            ring.removeFirst(head)
            head = 0
        }
        return entry
    }

    /// Keeps only the queued entries `isCurrent` accepts, in order; after a
    /// sweep that forgot entries, so stale numbers do not pile up.
    mutating func retain(_ isCurrent: (Key, UInt64) -> Bool) {
        ring = ring[head...].filter { isCurrent($0.key, $0.arrival) }
        head = 0
    }

    /// Evicts entries of `table` until it holds at most `limit`, oldest
    /// arrival first. An entry `isWorthKeeping` accepts is queued again
    /// instead while the poll's second chances last; past them the oldest go
    /// whatever they are, so the bound always holds and a call costs
    /// amortized O(1) per eviction. Returns the evicted keys, for tables
    /// whose entries other state counts.
    static func evict<Value>(_ table: inout TrackerTable<Key, Value>, queue: inout ArrivalQueue<Key>, limit: Int,
                             arrival: (Value) -> UInt64, isWorthKeeping: (Value) -> Bool) -> [Key] where Key: TrackerKey {
        var evicted: [Key] = []
        while table.count > limit, let (key, number) = queue.pop() {
            guard let slot = table.slot(of: key), arrival(table[slot]) == number else { continue }
            if queue.secondChances > 0 && isWorthKeeping(table[slot]) {
                queue.secondChances -= 1
                queue.requeue(key, arrival: number)
                continue
            }
            table.remove(at: slot)
            evicted.append(key)
        }
        return evicted
    }
}

extension ArrivalQueue: Sendable where Key: Sendable {}
