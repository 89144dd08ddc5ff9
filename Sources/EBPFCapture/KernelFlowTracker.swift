import FlowForestCore

/// Turns successive reads of the kernel flow map, plus ring-buffer packets,
/// into ``FlowRecord``s: active records for flows that changed, interim
/// records at the active timeout, ended records on idle or TCP close.
///
/// Pure bookkeeping with no I/O: the drain loop decides *when* to read and
/// performs the final lookup-and-delete of flows this tracker reports due.
struct KernelFlowTracker {
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

    let configuration: FlowTableConfiguration
    var interfaceNames: [UInt32: String] = [:]
    private(set) var entries: [FlowKey: Entry] = [:]
    private var nextID: UInt64 = 1
    private(set) var flowsStarted: UInt64 = 0
    private(set) var flowsEnded: UInt64 = 0
    /// Packets and bytes of flows already ended (their entries are gone).
    private(set) var endedPackets: UInt64 = 0
    private(set) var endedBytes: UInt64 = 0
    /// Ring-buffer packets merged so far.
    private(set) var overflowPackets: UInt64 = 0

    init(configuration: FlowTableConfiguration) {
        self.configuration = configuration
    }

    /// Records the latest kernel totals of a flow. `convert` builds them
    /// only when the entry's packet count changed since the last read (most
    /// flows on a busy host are quiet in any one poll), so an unchanged entry
    /// costs one dictionary lookup.
    mutating func observe(_ key: FlowKey, kernelPackets: UInt64, _ convert: () -> KernelFlow) {
        if let index = entries.index(forKey: key) {
            let known = entries.values[index].kernelLow.packets + entries.values[index].kernelHigh.packets
            if entries.values[index].inKernel && known == kernelPackets { return }
            let flow = convert()
            entries.values[index].kernelLow = flow.low
            entries.values[index].kernelHigh = flow.high
            entries.values[index].inKernel = true
            return
        }
        insert(convert())
    }

    /// Records the latest kernel totals of a flow.
    mutating func observe(_ flow: KernelFlow) {
        if let index = entries.index(forKey: flow.key) {
            entries.values[index].kernelLow = flow.low
            entries.values[index].kernelHigh = flow.high
            entries.values[index].inKernel = true
            return
        }
        insert(flow)
    }

    private mutating func insert(_ flow: KernelFlow) {
        let first = min(flow.low.packets > 0 ? flow.low.firstSeenNs : .max, flow.high.packets > 0 ? flow.high.firstSeenNs : .max)
        entries[flow.key] = Entry(
            id: takeID(), initiatorIsLow: flow.initiatorIsLow, ifindex: flow.ifindex,
            kernelLow: flow.low, kernelHigh: flow.high, inKernel: true, windowStartNs: first == .max ? 0 : first)
    }

    /// Adds a packet the kernel could not insert.
    mutating func observe(_ event: KernelEvent) {
        overflowPackets += 1
        if entries[event.key] == nil {
            // As in the kernel: the sender opened the flow, unless a SYN-ACK came first.
            let replyFirst = event.packet.tcpFlags.contains([.syn, .ack])
            entries[event.key] = Entry(
                id: takeID(), initiatorIsLow: event.senderIsLow != replyFirst, ifindex: event.packet.interfaceIndex,
                inKernel: false, windowStartNs: event.packet.timestampNs)
        }
        if event.senderIsLow {
            entries[event.key]!.overflowLow.add(event.packet)
        } else {
            entries[event.key]!.overflowHigh.add(event.packet)
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
        for (key, e) in entries {
            let last = e.lastSeenNs
            let idle = nowNs >= last ? nowNs - last : 0
            var closed = false
            if idle >= configuration.tcpCloseTimeoutNs && key.ipProtocol == IPProtocol.tcp {
                let low = e.kernelLow, high = e.kernelHigh, ol = e.overflowLow, oh = e.overflowHigh
                let rst = low.rstCount + high.rstCount + ol.rstCount + oh.rstCount
                closed = rst > 0 || ((low.finCount + ol.finCount) > 0 && (high.finCount + oh.finCount) > 0)
            }
            if let reason = configuration.endReason(idleNs: idle, tcpClosed: closed) {
                out.append((key, reason, e.inKernel))
            }
        }
        return out
    }

    /// Ends a flow with its final kernel totals (from lookup-and-delete;
    /// `nil` when it had no kernel entry) and returns its last record.
    mutating func end(_ key: FlowKey, final: KernelFlow?, reason: FlowEndReason) -> FlowRecord? {
        guard var e = entries.removeValue(forKey: key) else { return nil }
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

    /// Interim records for flows past their active timeout, then active
    /// records for every other flow that changed since its last record.
    mutating func checkpoint(at nowNs: UInt64) -> [FlowRecord] {
        var out: [FlowRecord] = []
        out.reserveCapacity(entries.count)
        var index = entries.startIndex
        while index != entries.endIndex {
            defer { entries.formIndex(after: &index) }
            let e = entries.values[index]
            let packets = e.packets
            if configuration.checkpointDue(windowStartNs: e.windowStartNs, nowNs: nowNs) {
                out.append(makeRecord(entries.keys[index], e, state: .interim, reason: nil))
                entries.values[index].windowStartNs = nowNs
                entries.values[index].emittedPackets = packets
            } else if packets != e.emittedPackets {
                out.append(makeRecord(entries.keys[index], e, state: .active, reason: nil))
                entries.values[index].emittedPackets = packets
            }
        }
        return out
    }

    /// Packets and bytes in every flow so far, ended or open.
    var accounted: (packets: UInt64, bytes: UInt64) {
        var packets = endedPackets, bytes = endedBytes
        for e in entries.values {
            packets += e.packets
            bytes += e.kernelLow.bytes + e.kernelHigh.bytes + e.overflowLow.bytes + e.overflowHigh.bytes
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
