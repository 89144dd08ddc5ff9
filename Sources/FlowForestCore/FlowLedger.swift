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
/// A flow leaves the ledger with its ended record, or once it had neither a
/// packet nor a record for ``forgetAfterNs`` (a source that never reported
/// its end). That is longer than its sources can go quiet about a flow they
/// hold open, so a flow is never forgotten and then reported again, its
/// running total read as new traffic; a full
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
    /// The shortest a flow with neither packet nor record is held: 10 minutes.
    public static let minimumForgetNs: UInt64 = 600_000_000_000
    /// A flow with neither packet nor record for this long is forgotten even
    /// without an ended record: ``minimumForgetNs``, or twice the sources'
    /// longest silence about an open flow when that is longer (a record can
    /// come a poll or a blocked batch after the timeout says).
    public let forgetAfterNs: UInt64
    /// How often (batch time) stale flows are looked for.
    static let sweepIntervalNs: UInt64 = 10_000_000_000

    public let maxFlows: Int
    /// Open flows, densely packed and fixed-size (``LedgerSlot``); ``index``
    /// finds a flow's slot by id (4 bytes a bucket: the ids are in the slots).
    private var slots = ChunkedArray<LedgerSlot>()
    private var index = SlotIndex()
    /// Interface names and origins, each held once and referred to by code.
    private var names = ValueCodes<InterfaceName>()
    private var origins = ValueCodes<Origin>()
    /// When each origin's flows were last looked over, by its own batches' time.
    private var lastSweepNs: [Origin: UInt64] = [:]
    /// Records of new flows the ledger had no room for.
    public private(set) var notTracked: UInt64 = 0

    /// - Parameters:
    ///   - maxFlows: open flows held at most.
    ///   - longestSilenceNs: the longest the sources feeding the ledger go
    ///     without a record of a flow they hold open
    ///     (``FlowTableConfiguration/longestSilenceNs``).
    public init(maxFlows: Int = FlowLedger.defaultMaxFlows, longestSilenceNs: UInt64 = 0) {
        self.maxFlows = maxFlows
        forgetAfterNs = max(Self.minimumForgetNs, longestSilenceNs.multipliedReportingOverflow(by: 2).overflow ? .max : longestSilenceNs * 2)
    }

    /// Flows held now.
    public var count: Int { slots.count }

    /// Distinct observation points the open flows hold.
    var interfaceNamesHeld: Int { names.count }

    /// What the codes hold of an observation point: none is no value.
    private static func code(_ interface: InterfaceName) -> InterfaceName? { interface.isNone ? nil : interface }

    /// The entry of the flow with this id, if it is open.
    public subscript(id: UInt64) -> Entry? { position(of: id).map { entry(at: $0) } }

    private func position(of id: UInt64) -> Int? {
        index.find(hash: id.ledgerHash) { slots[$0].id == id }
    }

    /// Every open flow, in no particular order.
    public var openFlows: OpenFlows { OpenFlows(ledger: self) }

    /// The open flows as a sequence of ``Entry``, each built when it is read.
    public struct OpenFlows: Sequence, Sendable {
        fileprivate let ledger: FlowLedger

        public var count: Int { ledger.slots.count }

        public func makeIterator() -> Iterator { Iterator(ledger: ledger) }

        public struct Iterator: IteratorProtocol {
            fileprivate let ledger: FlowLedger
            fileprivate var position = 0

            public mutating func next() -> Entry? {
                guard position < ledger.slots.count else { return nil }
                defer { position += 1 }
                return ledger.entry(at: position)
            }
        }
    }

    /// Calls `body` with the latest record and ``Entry/firstSeenNs`` of each
    /// open flow of one IP protocol: what a per-poll pass over every flow
    /// reads, without making an ``Entry`` (and its origin) of the others.
    public func forEachOpenFlow(ipProtocol: UInt8, _ body: (_ record: FlowRecord, _ firstSeenNs: UInt64) -> Void) {
        for position in 0..<slots.count where slots[position].ipProtocol == ipProtocol {
            let s = slots[position]
            body(s.record(interface: names[s.interface] ?? .none), s.firstSeenNs)
        }
    }

    private func entry(at position: Int) -> Entry {
        let s = slots[position]
        return Entry(record: s.record(interface: names[s.interface] ?? .none), origin: origins[s.origin]?.name ?? "",
                     firstSeenNs: s.firstSeenNs, updatedNs: s.updatedNs)
    }

    /// Takes one batch's records, in order, and returns what each changed.
    /// An ended record removes its flow; flows silent for
    /// ``forgetAfterNs`` are forgotten afterwards (every ten seconds of
    /// batch time). `reporting` is when the batch's source reports packets:
    /// for a delayed one, each later record's change says after which packet
    /// its new traffic passed (``FlowChange/spreadFromNs``).
    public mutating func apply(_ records: [FlowRecord], origin: String, nowNs: UInt64,
                               reporting: FlowReporting = .asSeen) -> [FlowChange] {
        var changes: [FlowChange] = []
        changes.reserveCapacity(records.count)
        var found = [Int](repeating: -1, count: Self.lookupRun)
        var start = 0
        while start < records.count {
            let run = start..<min(start + Self.lookupRun, records.count)
            // A run's flows are looked up before any is updated: the lookups
            // do not depend on each other, so their cache misses overlap
            // (at 100,000 flows the index and the slots are far beyond the
            // cache), where one lookup between two updates waits alone.
            for i in run { found[i - start] = position(of: records[i].id) ?? -1 }
            for i in run {
                changes.append(apply(records, i, found: found[i - start], origin: origin, nowNs: nowNs, reporting: reporting))
            }
            start = run.upperBound
        }
        let from = Origin(name: origin, reporting: reporting)
        // Each source's flows by its own clock: the eBPF drainer's runs on the
        // monotonic clock from its start, the collector's and ingest's on the
        // wall clock, and a step of either (NTP, a resumed VM) must not make
        // the other's flows look silent. Stepping back sweeps from the new time.
        if lastSweepNs[from].map({ nowNs &- $0 > Self.sweepIntervalNs }) ?? true {
            lastSweepNs[from] = nowNs
            if let code = origins.code(of: from) { forgetIdle(origin: code, nowNs: nowNs) }
        }
        return changes
    }

    /// Records looked up together before they are applied.
    static let lookupRun = 64

    /// Applies `records[at]`, read where the array holds it: a record
    /// passed as an argument is copied (312 bytes) on its way in, for
    /// every record of every poll. `found` is where a lookup earlier in its
    /// run found the flow (-1: not held then); an update since can have
    /// added it, or moved it (a removal fills its hole with the last
    /// slot), so it is checked.
    private mutating func apply(_ records: [FlowRecord], _ at: Int, found: Int, origin: String, nowNs: UInt64,
                                reporting: FlowReporting) -> FlowChange {
        let id = records[at].id, state = records[at].state
        let position = found >= 0 && found < slots.count && slots[found].id == id ? found : position(of: id)
        // Only its counters are read, not a whole record made of the slot.
        let previous = position.map { slots[$0].totals }
        let tracked = previous != nil || slots.count < maxFlows
        // Records carry running totals, and nothing remembers an untracked
        // flow's last one: its packets count once, with its ended record
        // (or with the first record the ledger has room for), never with
        // every record that repeats them.
        let totals = FlowDelta.totals(forward: records[at].forward, reverse: records[at].reverse)
        let delta = tracked || state == .ended ? FlowDelta(totals, since: previous) : .zero
        let spreadFrom = reporting == .delayed ? position.map { slots[$0].lastSeenNs } ?? 0 : 0
        let change = FlowChange(records: records, position: at, delta: delta, isNew: previous == nil, tracked: tracked,
                                spreadFromNs: spreadFrom)
        if state == .ended {
            if let position { remove(at: position) }
        } else if let position {
            // Changed in place: a whole slot made and copied over this one
            // costs two 296-byte copies for every record of every poll.
            let interface = names.replace(slots[position].interface, with: Self.code(records[at].interface))
            slots[position].update(from: records[at], interface: interface, updatedNs: nowNs)
        } else if change.tracked {
            // A copy of `slots` for the index's rehashing, gone before `slots` changes.
            do {
                let slots = self.slots
                index.insert(slot: slots.count, hash: id.ledgerHash) { slots[$0].id.ledgerHash }
            }
            let from = origins.acquire(Origin(name: origin, reporting: reporting))
            slots.append(LedgerSlot(records[at], interface: names.acquire(Self.code(records[at].interface)),
                                    origin: from, firstSeenNs: records[at].firstSeenNs, updatedNs: nowNs))
        }
        if !change.tracked { notTracked += 1 }
        return change
    }

    /// Frees a flow's slot; the last slot moves into it, and its index entry follows.
    private mutating func remove(at position: Int) {
        names.release(slots[position].interface)
        origins.release(slots[position].origin)
        do {
            let slots = self.slots
            index.remove(slot: position, hash: slots[position].id.ledgerHash) { slots[$0].id.ledgerHash }
        }
        let last = slots.count - 1
        if slots.removeBySwappingLast(at: position) { index.move(from: last, to: position, hash: slots[position].id.ledgerHash) }
    }

    /// Forgets the flows of one origin that had neither a packet nor a
    /// record for ``forgetAfterNs`` by that origin's clock, by the later of
    /// the two: an exporter whose clock
    /// runs behind ours stamps an open flow's packets minutes back while its
    /// records keep arriving. A flow stamped ahead of the batch time (a
    /// sender's clock ahead of ours) goes once it had no record for that long.
    private mutating func forgetIdle(origin: UInt32, nowNs now: UInt64) {
        var position = 0
        while position < slots.count {
            // The origin read alone: the other origins' slots are not copied.
            guard slots[position].origin == origin else {
                position += 1
                continue
            }
            let s = slots[position]
            // A stamp past the batch time is the sender's clock, not a packet we saw later.
            let last = s.lastSeenNs <= now ? max(s.lastSeenNs, s.updatedNs) : s.updatedNs
            let idle = now.subtractingSaturated(last)
            // A removal moves the last slot here: look at this position again.
            if idle >= forgetAfterNs { remove(at: position) } else { position += 1 }
        }
    }
}

/// One open flow as the ledger holds it: its latest record's numbers, with
/// the interface name and origin as codes into the ledger's ``ValueCodes``
/// rather than a `String` each. Fixed-size and free of references: a
/// million of them sit in a ``ChunkedArray`` with no allocation per flow.
///
/// Field order packs the small fields into the padding after each
/// `DirectionStats`: 296 bytes with the codes and both times, less than
/// a bare `FlowRecord`.
struct LedgerSlot: Sendable {
    var id: UInt64
    var sourceAddress: IPAddress
    var destinationAddress: IPAddress
    var forward: DirectionStats
    var ipProtocol: UInt8
    var state: FlowState
    var reverse: DirectionStats
    var vlan: UInt16
    var sourcePort: UInt16
    var destinationPort: UInt16
    var interfaceIndex: UInt32
    var interface: UInt32
    var origin: UInt32
    var firstSeenNs: UInt64
    var updatedNs: UInt64

    init(_ r: FlowRecord, interface: UInt32, origin: UInt32, firstSeenNs: UInt64, updatedNs: UInt64) {
        id = r.id
        sourceAddress = r.sourceAddress
        destinationAddress = r.destinationAddress
        forward = r.forward
        ipProtocol = r.ipProtocol
        state = r.state
        reverse = r.reverse
        vlan = r.vlan
        sourcePort = r.sourcePort
        destinationPort = r.destinationPort
        interfaceIndex = r.interfaceIndex
        self.interface = interface
        self.origin = origin
        self.firstSeenNs = firstSeenNs
        self.updatedNs = updatedNs
    }

    /// Takes a later record of the same flow; its origin and first-seen time stay.
    mutating func update(from r: FlowRecord, interface: UInt32, updatedNs: UInt64) {
        self = LedgerSlot(r, interface: interface, origin: origin, firstSeenNs: firstSeenNs, updatedNs: updatedNs)
    }

    var lastSeenNs: UInt64 { max(forward.lastSeenNs, reverse.lastSeenNs) }

    /// The running totals ``FlowDelta`` subtracts.
    var totals: FlowDelta { FlowDelta.totals(forward: forward, reverse: reverse) }

    /// The record this slot was made from (never ended: ended flows leave the ledger).
    func record(interface: InterfaceName) -> FlowRecord {
        FlowRecord(id: id, sourceAddress: sourceAddress, destinationAddress: destinationAddress,
                   sourcePort: sourcePort, destinationPort: destinationPort, ipProtocol: ipProtocol, vlan: vlan,
                   interfaceIndex: interfaceIndex, interface: interface, forward: forward, reverse: reverse,
                   state: state, endReason: nil)
    }
}

/// Where a flow's records come from: the capture mode the pipeline was given
/// and when its source reports packets, which together tell the sources of
/// one pipeline apart (local capture and collection both run as
/// `tc+collect`) and so the clock their times are on.
struct Origin: Hashable, Sendable {
    let name: String
    let reporting: FlowReporting
}

/// Values held once each and named by a 4-byte code, 0 for nil: how the
/// ledger keeps each flow's observation point and origin in 4 bytes. Each
/// code counts the slots holding it and is freed for reuse when the last
/// one goes, so the table is bounded by the open flows, not by every value
/// the sources ever reported.
struct ValueCodes<Value: Hashable & Sendable>: Sendable {
    private var values: [Value?] = []
    private var holders: [Int] = []
    private var codes: [Value: UInt32] = [:]
    private var free: [UInt32] = []
    /// The latest value coded: records of one batch mostly share theirs.
    private var last: (value: Value, code: UInt32)?

    /// The code of `value` for one more holder.
    mutating func acquire(_ value: Value?) -> UInt32 {
        guard let value else { return 0 }
        let code: UInt32
        if let last, last.value == value {
            code = last.code
        } else if let known = codes[value] {
            code = known
        } else if let reused = free.popLast() {
            code = reused
            values[Int(code) - 1] = value
            codes[value] = code
        } else {
            values.append(value)
            holders.append(0)
            code = UInt32(values.count)
            codes[value] = code
        }
        holders[Int(code) - 1] += 1
        last = (value, code)
        return code
    }

    /// One holder of `code` lets go; the last one frees it.
    mutating func release(_ code: UInt32) {
        guard code != 0 else { return }
        let i = Int(code) - 1
        holders[i] -= 1
        guard holders[i] == 0, let value = values[i] else { return }
        codes[value] = nil
        values[i] = nil
        free.append(code)
        if last?.code == code { last = nil }
    }

    /// `code` for a holder that now holds `value`: the same code when the
    /// value did not change, else the old one released and the new one acquired.
    mutating func replace(_ code: UInt32, with value: Value?) -> UInt32 {
        if self[code] == value { return code }
        let new = acquire(value)
        release(code)
        return new
    }

    /// Distinct values held now.
    var count: Int { codes.count }

    /// The code `value` has while some holder holds it.
    func code(of value: Value) -> UInt32? { codes[value] }

    subscript(code: UInt32) -> Value? { code == 0 ? nil : values[Int(code) - 1] }
}

extension UInt64 {
    /// A flow id spread over the index's buckets. Ids are the sources' own
    /// counters (never from outside), so the index needs no seeded hash to
    /// resist chosen keys, only one that spreads neighbouring ids, cheaply:
    /// the ledger looks up every record of every poll.
    fileprivate var ledgerHash: Int {
        var x = self
        x ^= x >> 33
        x &*= 0xff51_afd7_ed55_8ccd
        x ^= x >> 33
        return Int(truncatingIfNeeded: x)
    }
}
