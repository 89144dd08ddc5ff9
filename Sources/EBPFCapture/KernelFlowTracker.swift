import FlowForestCore

/// Turns successive reads of the kernel flow map, plus ring-buffer packets,
/// into ``FlowRecord``s: active records for flows that changed, interim
/// records at the active timeout, ended records on idle or TCP close.
///
/// Pure bookkeeping with no I/O: the drain loop decides *when* to read,
/// performs the final lookup-and-delete of flows this tracker reports due,
/// and reads an entry again when a checkpoint needs the totals of a flow
/// the walk found unchanged.
///
/// It holds a small summary per open flow (``Slot``), not the kernel's full
/// statistics: the pipeline's `FlowLedger` keeps the latest record of every
/// open flow, and the kernel's slot the running totals, so a copy here
/// would only double them. A flow the walk found in a kernel slot has its
/// totals read from that slot when the checkpoint builds its record; a read
/// given without a slot (``observe(_:kernelPackets:_:)``) stages its totals
/// for the poll's records instead.
struct KernelFlowTracker {
    /// One open flow as the tests and the final drain see it: kernel and
    /// ring-buffer parts together, summarised.
    struct Entry {
        var id: UInt64
        var initiatorIsLow: Bool
        var ifindex: UInt32
        var inKernel: Bool
        var packets: UInt64
        var bytes: UInt64
        var lastSeenNs: UInt64
        var emittedPackets: UInt64
        var windowStartNs: UInt64
    }

    /// Both directions' statistics of one flow, low endpoint first: the
    /// ring-buffer totals of a flow, or the kernel totals a read staged.
    struct Totals {
        var low = DirectionStats()
        var high = DirectionStats()
    }

    /// The TCP flags a close decision reads, three bits in place of the
    /// flag counts of both directions.
    struct CloseSignals: OptionSet {
        let rawValue: UInt8
        static let rst = CloseSignals(rawValue: 1)
        static let finLow = CloseSignals(rawValue: 2)
        static let finHigh = CloseSignals(rawValue: 4)

        init(rawValue: UInt8) { self.rawValue = rawValue }

        init(_ t: Totals) {
            self.init(rst: t.low.rstCount > 0 || t.high.rstCount > 0, finLow: t.low.finCount > 0, finHigh: t.high.finCount > 0)
        }

        /// A RST seen either way, and a FIN seen from each side.
        init(rst: Bool, finLow: Bool, finHigh: Bool) {
            self = []
            if rst { insert(.rst) }
            if finLow { insert(.finLow) }
            if finHigh { insert(.finHigh) }
        }

        /// A RST either way, or a FIN both ways.
        var closed: Bool { contains(.rst) || contains([.finLow, .finHigh]) }
    }

    /// What the decisions read of a kernel entry: packets to see a change,
    /// bytes for the accounting, the last packet and the close flags for the
    /// end timeouts; read from a flow's slot without converting its totals.
    struct Summary {
        var packets: UInt64
        var bytes: UInt64
        /// The last packet either way, wall clock; 0 before any.
        var lastSeenNs: UInt64
        var close: CloseSignals

        init(packets: UInt64, bytes: UInt64, lastSeenNs: UInt64, close: CloseSignals) {
            self.packets = packets
            self.bytes = bytes
            self.lastSeenNs = lastSeenNs
            self.close = close
        }

        init(_ flow: KernelFlow) {
            self.init(flow.totals)
        }

        init(_ t: Totals) {
            self.init(packets: t.low.packets.addingSaturated(t.high.packets), bytes: t.low.bytes.addingSaturated(t.high.bytes),
                      lastSeenNs: max(t.low.lastSeenNs, t.high.lastSeenNs), close: CloseSignals(t))
        }
    }

    /// What the tracker holds per open flow: fixed-size, without references,
    /// 104 bytes a slot (`MemoryLayout<Slot>.stride`, checked by
    /// MemoryPerFlowTests). The kernel's totals are kept only as far as the
    /// decisions read them: packets to see a change, bytes for the
    /// accounting, the last packet and the close flags for the end timeouts.
    /// Ring-buffer totals, which only flows the kernel could not insert (or
    /// whose slot stayed locked past the program's spin bound) have, live in
    /// ``overflowStats``.
    struct Slot {
        var key: FlowKey
        var id: UInt64
        var kernelPackets: UInt64 = 0
        var kernelBytes: UInt64 = 0
        /// The kernel's last packet either way; 0 before any.
        var kernelLastSeenNs: UInt64 = 0
        var emittedPackets: UInt64 = 0
        var windowStartNs: UInt64
        var ifindex: UInt32
        /// 1 + the position in ``staged`` of the totals this poll's read
        /// staged; 0 when none did.
        var staged: UInt32 = 0
        /// The kernel slot that holds the flow's totals, read when a record
        /// needs them (``Slot/noKernelSlot`` when the walk gave none).
        var kernelSlot: UInt32 = Slot.noKernelSlot
        var initiatorIsLow: Bool
        var inKernel = false
        /// The flow has ring-buffer totals in ``overflowStats``.
        var hasOverflow = false
        var kernelClose: CloseSignals = []

        init(key: FlowKey, id: UInt64, windowStartNs: UInt64, ifindex: UInt32, initiatorIsLow: Bool) {
            self.key = key
            self.id = id
            self.windowStartNs = windowStartNs
            self.ifindex = ifindex
            self.initiatorIsLow = initiatorIsLow
        }

        static let noKernelSlot = UInt32.max

        /// Takes what the decisions need from a read of the flow's kernel entry.
        mutating func summarize(_ flow: KernelFlow) {
            summarize(Summary(flow))
        }

        mutating func summarize(_ summary: Summary) {
            kernelPackets = summary.packets
            kernelBytes = summary.bytes
            kernelLastSeenNs = summary.lastSeenNs
            kernelClose = summary.close
            inKernel = true
        }
    }

    /// The open flows by key, for the tests and the final drain.
    struct Entries {
        fileprivate let tracker: KernelFlowTracker
        var count: Int { tracker.slots.count }
        var isEmpty: Bool { tracker.slots.isEmpty }
        var keys: [FlowKey] { (0..<tracker.slots.count).map { tracker.slots[$0].key } }
        subscript(key: FlowKey) -> Entry? { tracker.position(of: key).map { tracker.entry(at: $0) } }
    }

    let configuration: FlowTableConfiguration
    var interfaceNames: [UInt32: String] = [:] {
        didSet { interfaceList = interfaceNames.sorted { $0.key < $1.key }.map { ($0.key, InterfaceName(local: $0.value)) } }
    }
    /// The same, searched without hashing: a sensor watches a few interfaces.
    private var interfaceList: [(index: UInt32, name: InterfaceName)] = []

    private func interface(_ index: UInt32) -> InterfaceName {
        interfaceList.first { $0.index == index }?.name ?? .none
    }
    /// Open flows, densely packed; ``index`` finds a flow's slot by key.
    private var slots = ChunkedArray<Slot>()
    private var index = SlotIndex()
    /// Per kernel slot, where its flow was last found in ``slots`` (−1:
    /// never): a hint checked against the key, so the walk skips the hash
    /// of a key for every flow of every poll. A removal moves one flow, whose
    /// hint then misses once and is looked up again.
    private var kernelSlotHints: [Int32] = []
    private var overflowStats: [FlowKey: Totals] = [:]
    /// Full kernel totals of the flows this poll's reads found changed,
    /// each found through its slot's `staged`; emptied by ``checkpoint``,
    /// so only a poll's own reads are ever held.
    private var staged = ChunkedArray<Totals>()
    private var nextID: UInt64 = 1
    private(set) var flowsStarted: UInt64 = 0
    private(set) var flowsEnded: UInt64 = 0
    /// Packets and bytes of flows already ended (their entries are gone).
    private(set) var endedPackets: UInt64 = 0
    private(set) var endedBytes: UInt64 = 0
    /// Ring-buffer packets merged so far.
    private(set) var overflowPackets: UInt64 = 0
    /// Ring-buffer packets of new flows refused because the tracker held
    /// `configuration.maxFlows` flows (`--max-flows`): counted as lost.
    private(set) var overflowPacketsNotTracked: UInt64 = 0

    init(configuration: FlowTableConfiguration) {
        self.configuration = configuration
    }

    /// The open flows.
    var entries: Entries { Entries(tracker: self) }

    private func entry(at position: Int) -> Entry {
        let s = slots[position]
        let o = overflow(of: s)
        return Entry(id: s.id, initiatorIsLow: s.initiatorIsLow, ifindex: s.ifindex, inKernel: s.inKernel,
                     packets: packets(of: s), bytes: s.kernelBytes.addingSaturated(o.low.bytes).addingSaturated(o.high.bytes),
                     lastSeenNs: max(s.kernelLastSeenNs, o.low.lastSeenNs, o.high.lastSeenNs),
                     emittedPackets: s.emittedPackets, windowStartNs: s.windowStartNs)
    }

    /// A flow's ring-buffer totals; empty for the many that have none.
    private func overflow(of s: Slot) -> Totals {
        s.hasOverflow ? overflowStats[s.key] ?? Totals() : Totals()
    }

    /// Packets of a flow so far, kernel and ring buffer.
    private func packets(of s: Slot) -> UInt64 {
        guard s.hasOverflow, let o = overflowStats[s.key] else { return s.kernelPackets }
        return s.kernelPackets.addingSaturated(o.low.packets).addingSaturated(o.high.packets)
    }

    /// Records a flow the map walk found. `convert` builds its totals only
    /// when the entry's packet count changed since the last read (most flows
    /// on a busy host are quiet in any one poll), so an unchanged entry costs
    /// one index lookup; a changed one stages its totals for this poll's record.
    mutating func observe(_ key: FlowKey, kernelPackets: UInt64, _ convert: () -> KernelFlow) {
        if let position = position(of: key) {
            let s = slots[position]
            if s.inKernel && s.kernelPackets == kernelPackets { return }
            update(convert(), at: position, staging: true)
            return
        }
        insert(convert(), staging: true)
    }

    /// Records the flow the walk found in kernel slot `kernelSlot`: where it
    /// finds it poll after poll, and where its totals stay. Nothing is
    /// staged: a changed flow takes only its `summary`, and the checkpoint
    /// reads its totals from the slot when it builds the record, so a poll
    /// holds no second copy of every changed flow's totals. `convert` is
    /// called for a new flow only.
    mutating func observe(_ key: FlowKey, kernelSlot: UInt32, kernelPackets: UInt64, summary: () -> Summary,
                          convert: () -> KernelFlow) {
        if let position = position(of: key, hint: kernelSlot) {
            var s = slots[position]
            if s.inKernel && s.kernelPackets == kernelPackets && s.kernelSlot == kernelSlot { return }
            // Rare: a flow opened from the ring buffer meets its kernel entry.
            if !s.inKernel, s.emittedPackets == 0 { Self.takeInitiator(of: convert(), into: &s) }
            s.summarize(summary())
            s.kernelSlot = kernelSlot
            slots[position] = s
            return
        }
        insert(convert(), staging: false, kernelSlot: kernelSlot)
    }

    /// Records a read of a flow's kernel entry and stages its totals, changed or not.
    mutating func observe(_ flow: KernelFlow) {
        if let position = position(of: flow.key) {
            update(flow, at: position, staging: true)
            return
        }
        insert(flow, staging: true)
    }

    /// Opens a flow of the map if it is new, staging nothing: for the final
    /// drain, which ends every flow with the totals it takes next.
    mutating func track(_ flow: KernelFlow) {
        if let position = position(of: flow.key) {
            update(flow, at: position, staging: false)
            return
        }
        insert(flow, staging: false)
    }

    private mutating func update(_ flow: KernelFlow, at position: Int, staging: Bool) {
        var s = slots[position]
        Self.takeInitiator(of: flow, into: &s)
        s.summarize(flow)
        if staging { stage(flow, in: &s) }
        slots[position] = s
    }

    /// A flow first met in the ring buffer (its kernel slot locked past the
    /// spin bound, or the map full, at that packet) took that packet's
    /// sender as its initiator: under a download's load that can be the
    /// server's data, while the kernel's entry holds the client's SYN. When
    /// the kernel's entry is first read and nothing was reported yet,
    /// whichever saw the earlier packet decides.
    private static func takeInitiator(of flow: KernelFlow, into s: inout Slot) {
        guard !s.inKernel, s.emittedPackets == 0, firstPacketNs(of: flow) <= s.windowStartNs else { return }
        s.initiatorIsLow = flow.initiatorIsLow
    }

    /// The flow's first packet either way in the kernel's entry; `.max` before any.
    private static func firstPacketNs(of flow: KernelFlow) -> UInt64 {
        min(flow.low.packets > 0 ? flow.low.firstSeenNs : .max, flow.high.packets > 0 ? flow.high.firstSeenNs : .max)
    }

    private mutating func insert(_ flow: KernelFlow, staging: Bool, kernelSlot: UInt32 = Slot.noKernelSlot) {
        let first = Self.firstPacketNs(of: flow)
        var s = Slot(key: flow.key, id: takeID(), windowStartNs: first == .max ? 0 : first, ifindex: flow.ifindex,
                     initiatorIsLow: flow.initiatorIsLow)
        s.summarize(flow)
        s.kernelSlot = kernelSlot
        if staging { stage(flow, in: &s) }
        append(s)
    }

    /// Keeps a read's totals until the checkpoint; a second read of the
    /// same flow in one poll replaces the first.
    private mutating func stage(_ flow: KernelFlow, in s: inout Slot) {
        let totals = Totals(low: flow.low, high: flow.high)
        if s.staged > 0 {
            staged[Int(s.staged) - 1] = totals
            return
        }
        staged.append(totals)
        s.staged = UInt32(staged.count)
    }

    /// The slot of the flow with this key, if it is open.
    private func position(of key: FlowKey) -> Int? {
        index.find(hash: key.hashValue) { slots[$0].key == key }
    }

    /// The slot of the flow with this key, tried first where the flow in
    /// `kernelSlot` was found last time; the hint follows the answer.
    private mutating func position(of key: FlowKey, hint kernelSlot: UInt32) -> Int? {
        let n = Int(kernelSlot)
        if n < kernelSlotHints.count {
            let hinted = Int(kernelSlotHints[n])
            if hinted >= 0 && hinted < slots.count && slots[hinted].key == key { return hinted }
        } else {
            kernelSlotHints.append(contentsOf: repeatElement(-1, count: n + 1 - kernelSlotHints.count))
        }
        let found = position(of: key)
        // A new flow is appended: its slot will be the next one.
        kernelSlotHints[n] = Int32(truncatingIfNeeded: found ?? slots.count)
        return found
    }

    private mutating func append(_ slot: Slot) {
        // A copy of `slots` for the index's rehashing, gone before `slots`
        // changes (else the append would copy a chunk).
        do {
            let slots = self.slots
            index.insert(slot: slots.count, hash: slot.key.hashValue) { slots[$0].key.hashValue }
        }
        slots.append(slot)
    }

    /// Frees a flow's slot; the last slot moves into it, and its index entry follows.
    private mutating func removeSlot(at position: Int) {
        do {
            let slots = self.slots
            index.remove(slot: position, hash: slots[position].key.hashValue) { slots[$0].key.hashValue }
        }
        let last = slots.count - 1
        if slots.removeBySwappingLast(at: position) {
            index.move(from: last, to: position, hash: slots[position].key.hashValue)
        }
    }

    /// Adds a packet the kernel sent to the ring buffer: its flow could not
    /// be inserted, or its slot stayed locked past the spin bound. A new flow is taken only
    /// while fewer than `configuration.maxFlows` flows are open: flows of
    /// the kernel map are bounded by its size, ring-buffer flows by this.
    mutating func observe(_ event: KernelEvent) {
        if position(of: event.key) == nil {
            guard slots.count < configuration.maxFlows else {
                overflowPacketsNotTracked += 1
                return
            }
            // As in the kernel: the sender opened the flow, unless a SYN-ACK came first.
            let replyFirst = event.packet.tcpFlags.contains([.syn, .ack])
            append(Slot(key: event.key, id: takeID(), windowStartNs: event.packet.timestampNs,
                        ifindex: event.packet.interfaceIndex, initiatorIsLow: event.senderIsLow != replyFirst))
        }
        overflowPackets += 1
        let position = position(of: event.key)!
        if !slots[position].hasOverflow {
            var s = slots[position]
            s.hasOverflow = true
            slots[position] = s
        }
        if event.senderIsLow {
            overflowStats[event.key, default: Totals()].low.add(event.packet)
        } else {
            overflowStats[event.key, default: Totals()].high.add(event.packet)
        }
    }

    private mutating func takeID() -> UInt64 {
        defer { nextID += 1 }
        flowsStarted += 1
        return nextID
    }

    /// Flows whose idle or TCP-close timeout has passed at `nowNs`, and
    /// whether each still has a kernel entry to take.
    func due(at nowNs: UInt64) -> [(key: FlowKey, reason: FlowEndReason, inKernel: Bool)] {
        var out: [(FlowKey, FlowEndReason, Bool)] = []
        for position in 0..<slots.count {
            let s = slots[position]
            var last = s.kernelLastSeenNs, close = s.kernelClose
            if s.hasOverflow, let o = overflowStats[s.key] {
                last = max(last, o.low.lastSeenNs, o.high.lastSeenNs)
                close.formUnion(CloseSignals(o))
            }
            let idle = nowNs >= last ? nowNs - last : 0
            let closed = s.key.ipProtocol == IPProtocol.tcp && close.closed
            if let reason = configuration.endReason(idleNs: idle, tcpClosed: closed) {
                out.append((s.key, reason, s.inKernel))
            }
        }
        return out
    }

    /// Ends a flow and returns its last record. Its kernel totals are
    /// `final` (from lookup-and-delete), else those this poll's read
    /// staged; a flow only ever seen in the ring buffer has none, its
    /// record is its ring-buffer totals.
    ///
    /// A kernel flow with neither (its entry vanished without the drainer
    /// taking it, which nothing in FlowForest does) is counted as ended with
    /// the totals it was last read with, but has no record: its full totals
    /// were not kept, and a record with partial ones would be scored as a
    /// flow. The ledger forgets it once it is idle long enough.
    mutating func end(_ key: FlowKey, final: KernelFlow?, reason: FlowEndReason) -> FlowRecord? {
        guard let position = position(of: key) else { return nil }
        var s = slots[position]
        let kernel = final.map { Totals(low: $0.low, high: $0.high) } ?? knownTotals(of: s)
        if let final { s.summarize(final) }
        let record = kernel.map { makeRecord(s, kernel: $0, state: .ended, reason: reason) }
        let o = overflow(of: s)
        overflowStats.removeValue(forKey: key)
        removeSlot(at: position)
        flowsEnded += 1
        // Kernel records are read, not trusted: sums saturate rather than trap.
        endedPackets = endedPackets.addingSaturated(s.kernelPackets).addingSaturated(o.low.packets).addingSaturated(o.high.packets)
        endedBytes = endedBytes.addingSaturated(s.kernelBytes).addingSaturated(o.low.bytes).addingSaturated(o.high.bytes)
        return record
    }

    /// Appends interim records for flows past their active timeout, and
    /// active records for every other flow that changed since its last
    /// record; then drops what this poll staged. Flows due a record are
    /// counted first, so `records` grows once, to its size: the poll's ended
    /// records go in first, and the array is never copied to add these.
    ///
    /// A flow due a record whose totals no read staged (every flow the walk
    /// found in a kernel slot; one quiet in the walk but past its active
    /// timeout; new packets through the ring buffer only) has its entry read
    /// through `read` (its totals, both directions), given its kernel slot
    /// when the walk found one; one whose entry is gone gets no record this time.
    mutating func checkpoint(at nowNs: UInt64, appendingTo records: inout [FlowRecord],
                             reading read: (FlowKey, _ kernelSlot: UInt32?) -> Totals?) {
        var due = 0
        for position in 0..<slots.count where recordDue(slots[position], nowNs: nowNs) != nil { due += 1 }
        records.reserveCapacity(records.count + due)
        for position in 0..<slots.count {
            var s = slots[position]
            guard let state = recordDue(s, nowNs: nowNs) else {
                if s.staged > 0 {
                    s.staged = 0
                    slots[position] = s
                }
                continue
            }
            let kernel = knownTotals(of: s) ?? reread(&s, read)
            if let kernel {
                records.append(makeRecord(s, kernel: kernel, state: state, reason: nil))
                if state == .interim { s.windowStartNs = nowNs }
                s.emittedPackets = packets(of: s)
            }
            s.staged = 0
            slots[position] = s
        }
        staged.removeAll()
    }

    /// The kernel totals of a flow without reading its entry: those this
    /// poll's read staged, none (empty) for a flow only ever seen in the
    /// ring buffer, else unknown.
    private func knownTotals(of s: Slot) -> Totals? {
        if s.staged > 0 { return staged[Int(s.staged) - 1] }
        return s.inKernel ? nil : Totals()
    }

    /// A kernel flow's totals read from its entry now, its summary updated to match.
    private func reread(_ s: inout Slot, _ read: (FlowKey, UInt32?) -> Totals?) -> Totals? {
        guard let totals = read(s.key, s.kernelSlot == Slot.noKernelSlot ? nil : s.kernelSlot) else { return nil }
        s.summarize(Summary(totals))
        return totals
    }

    /// The record a flow is due at `nowNs`: interim past its active
    /// timeout, active when it has packets since its last record, else none.
    private func recordDue(_ s: Slot, nowNs: UInt64) -> FlowState? {
        if configuration.checkpointDue(windowStartNs: s.windowStartNs, nowNs: nowNs) { return .interim }
        return packets(of: s) != s.emittedPackets ? .active : nil
    }

    /// Packets and bytes in every flow so far, ended or open.
    var accounted: (packets: UInt64, bytes: UInt64) {
        var packets = endedPackets, bytes = endedBytes
        for position in 0..<slots.count {
            let s = slots[position]
            packets = packets.addingSaturated(s.kernelPackets)
            bytes = bytes.addingSaturated(s.kernelBytes)
        }
        for o in overflowStats.values {
            packets = packets.addingSaturated(o.low.packets).addingSaturated(o.high.packets)
            bytes = bytes.addingSaturated(o.low.bytes).addingSaturated(o.high.bytes)
        }
        return (packets, bytes)
    }

    /// A flow's record: kernel and ring-buffer totals merged per direction,
    /// oriented by the initiator.
    private func makeRecord(_ s: Slot, kernel: Totals, state: FlowState, reason: FlowEndReason?) -> FlowRecord {
        // Most flows have no ring-buffer part: their kernel totals are the record's as they are.
        var low = kernel.low, high = kernel.high
        if s.hasOverflow {
            let o = overflow(of: s)
            low = DirectionStats.merged(kernel.low, o.low)
            high = DirectionStats.merged(kernel.high, o.high)
        }
        let key = s.key
        let (src, dst, sport, dport, fwd, rev) = s.initiatorIsLow
            ? (key.lowAddress, key.highAddress, key.lowPort, key.highPort, low, high)
            : (key.highAddress, key.lowAddress, key.highPort, key.lowPort, high, low)
        return FlowRecord(
            id: s.id, sourceAddress: src, destinationAddress: dst, sourcePort: sport, destinationPort: dport,
            ipProtocol: key.ipProtocol, vlan: key.vlan, interfaceIndex: s.ifindex,
            interface: interface(s.ifindex), forward: fwd, reverse: rev, state: state, endReason: reason)
    }
}
