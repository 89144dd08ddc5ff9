/// The one owner of per-flow state downstream of capture: the latest record
/// of every open flow, from any source, and the deltas each new record adds.
///
/// Capture sources build flows from packets (the kernel map, ``FlowTable``)
/// and report running totals; everything after them — packet and byte
/// counters, the open-flow list of the API, the host and destination
/// vectors of the detector — reads this ledger instead of keeping flows of
/// its own. A value type with no clock: the caller passes each batch's
/// time, so a capture file replays identically.
///
/// A flow leaves the ledger with its ended record, or once its last packet
/// is ``forgetAfterNs`` old (a source that never reported its end); a full
/// ledger takes no new flow (counted in ``notTracked``): such a flow's
/// packets count when its ended record comes, so they are counted once but
/// late while the ledger stays full.
public struct FlowLedger: Sendable {
    /// What the ledger remembers of one open flow.
    public struct Entry: Sendable {
        /// The flow's latest record (running totals).
        public var record: FlowRecord
        /// The capture mode whose source reports the flow (`tc`, `ingest`, ...).
        public var origin: String
        /// `firstSeenNs` of the flow's first record. A later record can
        /// report an earlier first packet (one direction's packets arriving
        /// late); the age of a flow counts from when it was first reported.
        public var firstSeenNs: UInt64
        /// Time of the batch that brought the latest record.
        public var updatedNs: UInt64
    }

    /// Flows held at most by default: beyond the largest flow table or kernel map.
    public static let defaultMaxFlows = 2_000_000
    /// A flow whose last packet is this old is forgotten even without an ended record.
    public static let forgetAfterNs: UInt64 = 600_000_000_000
    /// How often (batch time) stale flows are looked for.
    static let sweepIntervalNs: UInt64 = 10_000_000_000

    public let maxFlows: Int
    private var entries: [UInt64: Entry] = [:]
    private var lastSweepNs: UInt64 = 0
    /// Records of new flows the ledger had no room for.
    public private(set) var notTracked: UInt64 = 0

    public init(maxFlows: Int = FlowLedger.defaultMaxFlows) {
        self.maxFlows = maxFlows
    }

    /// Flows held now.
    public var count: Int { entries.count }

    /// The entry of the flow with this id, if it is open.
    public subscript(id: UInt64) -> Entry? { entries[id] }

    /// Every open flow, in no particular order.
    public var openFlows: Dictionary<UInt64, Entry>.Values { entries.values }

    /// Takes one batch's records, in order, and returns what each changed.
    /// An ended record removes its flow; flows silent for
    /// ``forgetAfterNs`` are forgotten afterwards (every ten seconds of
    /// batch time).
    public mutating func apply(_ records: [FlowRecord], origin: String, nowNs: UInt64) -> [FlowChange] {
        var changes: [FlowChange] = []
        changes.reserveCapacity(records.count)
        for record in records { changes.append(apply(record, origin: origin, nowNs: nowNs)) }
        if nowNs &- lastSweepNs > Self.sweepIntervalNs { forgetIdle(nowNs: nowNs) }
        return changes
    }

    private mutating func apply(_ record: FlowRecord, origin: String, nowNs: UInt64) -> FlowChange {
        let previous = entries[record.id]
        let tracked = previous != nil || entries.count < maxFlows
        // Records carry running totals, and nothing remembers an untracked
        // flow's last one: its packets count once, with its ended record
        // (or with the first record the ledger has room for), never with
        // every record that repeats them.
        let delta = tracked || record.state == .ended ? FlowDelta(record, since: previous?.record) : .zero
        let change = FlowChange(record: record, delta: delta, previous: previous, tracked: tracked)
        if record.state == .ended {
            entries.removeValue(forKey: record.id)
        } else if let previous {
            entries[record.id] = Entry(record: record, origin: previous.origin, firstSeenNs: previous.firstSeenNs, updatedNs: nowNs)
        } else if change.tracked {
            entries[record.id] = Entry(record: record, origin: origin, firstSeenNs: record.firstSeenNs, updatedNs: nowNs)
        }
        if !change.tracked { notTracked += 1 }
        return change
    }

    /// Forgets flows whose last packet is ``forgetAfterNs`` old. A flow
    /// stamped ahead of the batch time (a sender's clock ahead of ours) has
    /// no idle time by its stamps; it goes once it had no record for that long.
    private mutating func forgetIdle(nowNs now: UInt64) {
        lastSweepNs = now
        entries = entries.filter { _, entry in
            let last = entry.record.lastSeenNs
            let idle = now >= last ? now - last : (now >= entry.updatedNs ? now - entry.updatedNs : 0)
            return idle < Self.forgetAfterNs
        }
    }
}
