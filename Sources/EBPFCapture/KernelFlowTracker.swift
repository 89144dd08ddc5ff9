import FlowForestCore

/// Turns successive reads of the kernel flow map, plus ring-buffer packets,
/// into ``FlowRecord``s: active records for flows that changed, interim
/// records at the active timeout, ended records on idle or TCP close.
///
/// Pure bookkeeping with no I/O: the drain loop decides *when* to read and
/// performs the final lookup-and-delete of flows this tracker reports due.
struct KernelFlowTracker {
    /// One flow as the tracker's callers see it: kernel totals and
    /// ring-buffer totals side by side. Built on read from a ``Slot`` and,
    /// for the few flows that have any, their ring-buffer totals.
    struct Entry {
        var id: UInt64
        var initiatorIsLow: Bool
        var ifindex: UInt32
        var kernelLow = DirectionStats()
        var kernelHigh = DirectionStats()
        /// Packets that reached user space through the ring buffer.
        var overflowLow = DirectionStats()
        var overflowHigh = DirectionStats()
        var inKernel: Bool
        var emittedPackets: UInt64 = 0
        var windowStartNs: UInt64

        var low: DirectionStats { DirectionStats.merged(kernelLow, overflowLow) }
        var high: DirectionStats { DirectionStats.merged(kernelHigh, overflowHigh) }
        var packets: UInt64 { kernelLow.packets + kernelHigh.packets + overflowLow.packets + overflowHigh.packets }
        var lastSeenNs: UInt64 {
            max(kernelLow.lastSeenNs, kernelHigh.lastSeenNs, overflowLow.lastSeenNs, overflowHigh.lastSeenNs)
        }
    }

    /// What the tracker holds per open flow, fixed-size and without
    /// references: ring-buffer totals, which only flows the kernel could
    /// not insert have, live in ``overflowStats`` instead of two mostly
    /// zero `DirectionStats` in every slot.
    struct Slot {
        var key: FlowKey
        var id: UInt64
        var kernelLow: DirectionStats
        var kernelHigh: DirectionStats
        var emittedPackets: UInt64 = 0
        var windowStartNs: UInt64
        var ifindex: UInt32
        var initiatorIsLow: Bool
        var inKernel: Bool
        /// The flow has ring-buffer totals in ``overflowStats``.
        var hasOverflow = false

        var kernelPackets: UInt64 { kernelLow.packets + kernelHigh.packets }
    }

    /// Ring-buffer totals of one flow, per direction.
    struct OverflowStats {
        var low = DirectionStats()
        var high = DirectionStats()
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
    var interfaceNames: [UInt32: String] = [:]
    /// Open flows, densely packed; ``index`` finds a flow's slot by key.
    private var slots = ChunkedArray<Slot>()
    private var index = SlotIndex()
    private var overflowStats: [FlowKey: OverflowStats] = [:]
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

    /// The flow in slot `position`, with its ring-buffer totals if it has any.
    private func entry(at position: Int) -> Entry {
        let s = slots[position]
        let o = s.hasOverflow ? overflowStats[s.key] ?? OverflowStats() : OverflowStats()
        return Entry(id: s.id, initiatorIsLow: s.initiatorIsLow, ifindex: s.ifindex, kernelLow: s.kernelLow,
                     kernelHigh: s.kernelHigh, overflowLow: o.low, overflowHigh: o.high, inKernel: s.inKernel,
                     emittedPackets: s.emittedPackets, windowStartNs: s.windowStartNs)
    }

    /// Records the latest kernel totals of a flow. `convert` builds them
    /// only when the entry's packet count changed since the last read (most
    /// flows on a busy host are quiet in any one poll), so an unchanged entry
    /// costs one dictionary lookup.
    mutating func observe(_ key: FlowKey, kernelPackets: UInt64, _ convert: () -> KernelFlow) {
        if let position = position(of: key) {
            let s = slots[position]
            if s.inKernel && s.kernelPackets == kernelPackets { return }
            setKernel(convert(), at: position)
            return
        }
        insert(convert())
    }

    /// Records the latest kernel totals of a flow.
    mutating func observe(_ flow: KernelFlow) {
        if let position = position(of: flow.key) {
            setKernel(flow, at: position)
            return
        }
        insert(flow)
    }

    private mutating func setKernel(_ flow: KernelFlow, at position: Int) {
        var s = slots[position]
        s.kernelLow = flow.low
        s.kernelHigh = flow.high
        s.inKernel = true
        slots[position] = s
    }

    private mutating func insert(_ flow: KernelFlow) {
        let first = min(flow.low.packets > 0 ? flow.low.firstSeenNs : .max, flow.high.packets > 0 ? flow.high.firstSeenNs : .max)
        append(Slot(key: flow.key, id: takeID(), kernelLow: flow.low, kernelHigh: flow.high,
                    windowStartNs: first == .max ? 0 : first, ifindex: flow.ifindex,
                    initiatorIsLow: flow.initiatorIsLow, inKernel: true))
    }

    /// The slot of the flow with this key, if it is open.
    private func position(of key: FlowKey) -> Int? {
        index.find(hash: key.hashValue) { slots[$0].key == key }
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

    /// Adds a packet the kernel could not insert. A new flow is taken only
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
            append(Slot(key: event.key, id: takeID(), kernelLow: DirectionStats(), kernelHigh: DirectionStats(),
                        windowStartNs: event.packet.timestampNs, ifindex: event.packet.interfaceIndex,
                        initiatorIsLow: event.senderIsLow != replyFirst, inKernel: false))
        }
        overflowPackets += 1
        let position = position(of: event.key)!
        if !slots[position].hasOverflow {
            var s = slots[position]
            s.hasOverflow = true
            slots[position] = s
        }
        if event.senderIsLow {
            overflowStats[event.key, default: OverflowStats()].low.add(event.packet)
        } else {
            overflowStats[event.key, default: OverflowStats()].high.add(event.packet)
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
            let e = slots[position].hasOverflow ? entry(at: position) : nil
            let s = slots[position]
            let last = e?.lastSeenNs ?? max(s.kernelLow.lastSeenNs, s.kernelHigh.lastSeenNs)
            let idle = nowNs >= last ? nowNs - last : 0
            var closed = false
            if idle >= configuration.tcpCloseTimeoutNs && s.key.ipProtocol == IPProtocol.tcp {
                let low = e?.low ?? s.kernelLow, high = e?.high ?? s.kernelHigh
                closed = low.rstCount + high.rstCount > 0 || (low.finCount > 0 && high.finCount > 0)
            }
            if let reason = configuration.endReason(idleNs: idle, tcpClosed: closed) {
                out.append((s.key, reason, s.inKernel))
            }
        }
        return out
    }

    /// Ends a flow with its final kernel totals (from lookup-and-delete;
    /// `nil` when it had no kernel entry) and returns its last record.
    mutating func end(_ key: FlowKey, final: KernelFlow?, reason: FlowEndReason) -> FlowRecord? {
        guard let position = position(of: key) else { return nil }
        var e = entry(at: position)
        overflowStats.removeValue(forKey: key)
        removeSlot(at: position)
        if let final {
            e.kernelLow = final.low
            e.kernelHigh = final.high
        }
        flowsEnded += 1
        endedPackets += e.packets
        let record = makeRecord(key, e, state: .ended, reason: reason)
        endedBytes += record.bytes
        return record
    }

    /// Interim records for flows past their active timeout, and active
    /// records for every other flow that changed since its last record.
    /// Flows due a record are counted first, so the array is allocated once
    /// at its size: as large as the open flows only when every flow changed.
    mutating func checkpoint(at nowNs: UInt64) -> [FlowRecord] {
        var due = 0
        for position in 0..<slots.count where recordDue(at: position, nowNs: nowNs) != nil { due += 1 }
        var out: [FlowRecord] = []
        out.reserveCapacity(due)
        for position in 0..<slots.count {
            guard let state = recordDue(at: position, nowNs: nowNs) else { continue }
            let e = entry(at: position)
            out.append(makeRecord(slots[position].key, e, state: state, reason: nil))
            var s = slots[position]
            if state == .interim { s.windowStartNs = nowNs }
            s.emittedPackets = e.packets
            slots[position] = s
        }
        return out
    }

    /// The record a flow is due at `nowNs`: interim past its active
    /// timeout, active when it has packets since its last record, else none.
    private func recordDue(at position: Int, nowNs: UInt64) -> FlowState? {
        let s = slots[position]
        if configuration.checkpointDue(windowStartNs: s.windowStartNs, nowNs: nowNs) { return .interim }
        var packets = s.kernelPackets
        if s.hasOverflow, let o = overflowStats[s.key] { packets += o.low.packets + o.high.packets }
        return packets != s.emittedPackets ? .active : nil
    }

    /// Packets and bytes in every flow so far, ended or open.
    var accounted: (packets: UInt64, bytes: UInt64) {
        var packets = endedPackets, bytes = endedBytes
        for position in 0..<slots.count {
            let s = slots[position]
            packets += s.kernelPackets
            bytes += s.kernelLow.bytes + s.kernelHigh.bytes
        }
        for o in overflowStats.values {
            packets += o.low.packets + o.high.packets
            bytes += o.low.bytes + o.high.bytes
        }
        return (packets, bytes)
    }

    private func makeRecord(_ key: FlowKey, _ e: Entry, state: FlowState, reason: FlowEndReason?) -> FlowRecord {
        let (src, dst, sport, dport, fwd, rev) = e.initiatorIsLow
            ? (key.lowAddress, key.highAddress, key.lowPort, key.highPort, e.low, e.high)
            : (key.highAddress, key.lowAddress, key.highPort, key.lowPort, e.high, e.low)
        return FlowRecord(
            id: e.id, sourceAddress: src, destinationAddress: dst, sourcePort: sport, destinationPort: dport,
            ipProtocol: key.ipProtocol, vlan: key.vlan, interfaceIndex: e.ifindex,
            interfaceName: interfaceNames[e.ifindex], forward: fwd, reverse: rev, state: state, endReason: reason)
    }
}
