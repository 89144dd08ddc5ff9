/// Timeouts and limits of a ``FlowTable``.
public struct FlowTableConfiguration: Sendable, Hashable {
    /// A flow with no packet for this long ends (default 15 s).
    public var idleTimeoutNs: UInt64 = 15_000_000_000
    /// An open flow emits an interim record this often (default 60 s).
    public var activeTimeoutNs: UInt64 = 60_000_000_000
    /// After a RST, or FIN both ways, a TCP flow ends once idle this long
    /// (default 1 s), so the final ACK is still counted.
    public var tcpCloseTimeoutNs: UInt64 = 1_000_000_000
    /// Flows held at most; packets of new flows beyond it are counted as
    /// ``CaptureStatistics/tableFull`` losses.
    public var maxFlows: Int = 1_000_000

    public init() {}

    public init(idleTimeoutNs: UInt64, activeTimeoutNs: UInt64, tcpCloseTimeoutNs: UInt64 = 1_000_000_000, maxFlows: Int = 1_000_000) {
        self.idleTimeoutNs = idleTimeoutNs
        self.activeTimeoutNs = activeTimeoutNs
        self.tcpCloseTimeoutNs = tcpCloseTimeoutNs
        self.maxFlows = maxFlows
    }

    /// Whether a flow without packets for `idleNs` has ended, and why. Every
    /// capture path decides with this, so they agree: a closed TCP flow
    /// (RST, or FIN both ways) ends after the close timeout and is reported
    /// as closed even when it is past the idle timeout too.
    public func endReason(idleNs: UInt64, tcpClosed: Bool) -> FlowEndReason? {
        if tcpClosed && idleNs >= tcpCloseTimeoutNs { return .tcpClose }
        return idleNs >= idleTimeoutNs ? .idle : nil
    }

    /// The longest an open flow goes without a record from a source with
    /// these timeouts, give or take a poll: an interim record comes every
    /// active timeout, the ended one an idle timeout after its last packet.
    public var longestSilenceNs: UInt64 { min(activeTimeoutNs, idleTimeoutNs) }

    /// Whether an open flow whose active window began at `windowStartNs` is
    /// due for an interim record.
    public func checkpointDue(windowStartNs: UInt64, nowNs: UInt64) -> Bool {
        nowNs > windowStartNs && nowNs - windowStartNs >= activeTimeoutNs
    }
}

/// Merges packets into bidirectional flows and decides when flows end: the
/// user-space twin of the kernel flow map, used by the libpcap path and by
/// remote ingest.
///
/// A value type with no clock of its own: callers add packets and call
/// ``advance(to:)`` with the current time (packet time for files), so the
/// same input always yields the same records. Packets whose times someone
/// else chose (remote ingest) are added with their arrival time as well:
/// such a flow also ends when it has been idle by that clock, so no packet
/// time can hold it open.
public struct FlowTable: Sendable {
    struct Entry: Sendable {
        var record: FlowRecord
        /// True when the initiator is the key's low endpoint.
        var initiatorIsLow: Bool
        /// Start of the current active-timeout window.
        var windowStartNs: UInt64
        var dirty: Bool
        /// When the latest packet arrived, by the caller's clock; nil for
        /// packets added by packet time alone.
        var arrivedNs: UInt64?
        /// Idle by ``arrivedNs`` alone: the flow is an exporter's records,
        /// whose times are the exporter's clock and already past its own
        /// timeouts when they arrive.
        var idleByArrival = false
        /// A record of it went out: its directions are fixed from then on,
        /// since a swap would turn the totals already handed on (to the
        /// ledger, to an IPFIX export) into a fall, read as a restart.
        var emitted = false
    }

    public let configuration: FlowTableConfiguration
    private var entries: [FlowKey: Entry] = [:]
    private var dirtyKeys: [FlowKey] = []
    private var nextID: UInt64
    /// The bits of ``nextID`` that count (all of them unless `idBits` was set).
    private let idMask: UInt64
    public private(set) var statistics = CaptureStatistics()

    /// - Parameters:
    ///   - firstID: the id given to the first flow; later flows count up.
    ///   - idBits: when set, only the low `idBits` bits of the id count,
    ///     wrapping within them: a table whose ids are one block of a range
    ///     shared with other tables (an exporter's) never runs into the next
    ///     block, however many flows it makes.
    public init(configuration: FlowTableConfiguration = FlowTableConfiguration(), firstID: UInt64 = 1, idBits: Int? = nil) {
        precondition(idBits.map { (1...63).contains($0) } ?? true, "idBits must be between 1 and 63")
        self.configuration = configuration
        self.nextID = firstID
        self.idMask = idBits.map { (1 << UInt64($0)) - 1 } ?? .max
    }

    /// The id for a new flow.
    private mutating func takeID() -> UInt64 {
        let id = nextID
        nextID = (nextID & ~idMask) | ((nextID &+ 1) & idMask)
        return id
    }

    /// Flows currently open.
    public var activeCount: Int { entries.count }

    /// Counts a frame that was not IP (the caller parsed it).
    public mutating func countNotIP() { statistics.packetsSeen += 1; statistics.notIP += 1 }
    /// Counts a frame whose headers were truncated or inconsistent.
    public mutating func countMalformed() { statistics.packetsSeen += 1; statistics.malformed += 1 }
    /// Records losses reported by the capture layer (e.g. `pcap_stats`).
    public mutating func setCaptureDrops(_ drops: UInt64, interfaceDrops: UInt64) {
        statistics.captureDrops = drops
        statistics.interfaceDrops = interfaceDrops
    }

    /// Adds one parsed packet to its flow, creating the flow if needed.
    /// - Parameter arrivedNs: when the packet arrived by the clock
    ///   ``advance(to:)`` is called with, for packets stamped by someone
    ///   else: the flow then ends once idle by either clock, and its active
    ///   window starts no later than the arrival.
    public mutating func add(_ packet: PacketSummary, arrivedNs: UInt64? = nil) {
        statistics.packetsSeen += 1
        let (key, senderIsLow) = FlowKey.of(packet)
        if let index = entries.index(forKey: key) {
            if entries.values[index].take(packet, senderIsLow: senderIsLow, arrivedNs: arrivedNs) { dirtyKeys.append(key) }
        } else {
            guard entries.count < configuration.maxFlows else {
                statistics.tableFull += 1
                return
            }
            // A SYN-ACK seen first means we missed the SYN: the receiver opened it.
            let replyFirst = packet.tcpFlags.contains([.syn, .ack])
            let (src, dst, sport, dport) = replyFirst
                ? (packet.destination, packet.source, packet.destinationPort, packet.sourcePort)
                : (packet.source, packet.destination, packet.sourcePort, packet.destinationPort)
            let record = FlowRecord(
                id: takeID(), sourceAddress: src, destinationAddress: dst,
                sourcePort: sport, destinationPort: dport, ipProtocol: packet.ipProtocol,
                vlan: packet.vlan, interfaceIndex: packet.interfaceIndex)
            var entry = Entry(record: record, initiatorIsLow: senderIsLow != replyFirst,
                              windowStartNs: min(packet.timestampNs, arrivedNs ?? .max), dirty: true, arrivedNs: arrivedNs)
            entry.add(packet, senderIsLow: senderIsLow)
            entries[key] = entry
            dirtyKeys.append(key)
            statistics.flowsStarted += 1
        }
        statistics.packetsAccounted += 1
        statistics.bytesAccounted += UInt64(packet.ipLength)
    }

    /// Adds one direction of a flow as an exporter reported it (NetFlow or
    /// IPFIX), merging it with the other direction by the same key as
    /// packets. The initiator is the sender of the earlier first packet (on a
    /// tie, the side talking to the lower port), so a reply that arrives in
    /// an earlier export than its request still ends up as the reverse side.
    /// With `allowNew` false a new flow is refused and counted as
    /// ``CaptureStatistics/tableFull`` (a limit shared by several tables).
    /// With `arrivedNs` (the collector's clock) the flow ends once no record
    /// of it has arrived for the timeout, whatever the exporter's clock said:
    /// an exporter whose clock is behind does not see its flows split.
    public mutating func add(_ flow: UniflowSummary, allowNew: Bool = true, arrivedNs: UInt64? = nil) {
        guard flow.packets > 0 else { return }
        statistics.packetsSeen = statistics.packetsSeen.addingSaturated(flow.packets)
        let (key, senderIsLow) = flow.key
        if let index = entries.index(forKey: key) {
            entries.values[index].add(flow, senderIsLow: senderIsLow)
            if let arrivedNs { entries.values[index].arrivedNs = arrivedNs }
            if !entries.values[index].dirty {
                entries.values[index].dirty = true
                dirtyKeys.append(key)
            }
        } else {
            guard allowNew, entries.count < configuration.maxFlows else {
                statistics.tableFull = statistics.tableFull.addingSaturated(flow.packets)
                return
            }
            let record = FlowRecord(
                id: takeID(), sourceAddress: flow.source, destinationAddress: flow.destination,
                sourcePort: flow.sourcePort, destinationPort: flow.destinationPort, ipProtocol: flow.ipProtocol,
                vlan: flow.vlan, interfaceIndex: flow.interfaceIndex, interface: flow.interface)
            var entry = Entry(record: record, initiatorIsLow: senderIsLow, windowStartNs: arrivedNs ?? flow.firstSeenNs,
                              dirty: true, arrivedNs: arrivedNs, idleByArrival: arrivedNs != nil)
            entry.add(flow, senderIsLow: senderIsLow)
            entries[key] = entry
            dirtyKeys.append(key)
            statistics.flowsStarted += 1
        }
        statistics.packetsAccounted = statistics.packetsAccounted.addingSaturated(flow.packets)
        statistics.bytesAccounted = statistics.bytesAccounted.addingSaturated(flow.bytes)
    }

    /// Ends idle and closed flows, checkpoints flows past their active
    /// timeout, and returns those records plus an `active` snapshot of every
    /// other flow that changed since the last call.
    public mutating func advance(to nowNs: UInt64) -> [FlowRecord] {
        var out: [FlowRecord] = []
        var ended: [FlowKey] = []
        let cfg = configuration
        // Walk by index rather than `entries.indices`: that collection would
        // hold a second reference to the storage and make every in-place
        // checkpoint below copy the whole table.
        var index = entries.startIndex
        while index != entries.endIndex {
            defer { entries.formIndex(after: &index) }
            // An arrival after now means the clock stepped back: the flow's
            // idle time counts from now, so it waits out no more than the timeout.
            if entries.values[index].idleByArrival, let arrived = entries.values[index].arrivedNs, arrived > nowNs {
                entries.values[index].arrivedNs = nowNs
            }
            // Likewise a flow stamped ahead of the clock with no arrival time (a
            // capture file's record stamped years ahead, then the file's own
            // times): it idles from now rather than stay until the file ends.
            if entries.values[index].arrivedNs == nil, entries.values[index].record.lastSeenNs > nowNs {
                entries.values[index].arrivedNs = nowNs
            }
            // And its active window, begun at that stamp, runs from now: it
            // would otherwise give the flow no interim record until the clock
            // reached the stamp, however long the flow lasts.
            if entries.values[index].windowStartNs > nowNs { entries.values[index].windowStartNs = nowNs }
            let entry = entries.values[index]
            if let reason = cfg.endReason(idleNs: entry.idleNs(at: nowNs), tcpClosed: entry.record.tcpClosed) {
                ended.append(entries.keys[index])
                var record = entry.record
                record.state = .ended
                record.endReason = reason
                out.append(record)
            } else if cfg.checkpointDue(windowStartNs: entry.windowStartNs, nowNs: nowNs) {
                var record = entry.record
                record.state = .interim
                out.append(record)
                entries.values[index].windowStartNs = nowNs
                entries.values[index].dirty = false
                entries.values[index].emitted = true
            }
        }
        for key in ended { entries.removeValue(forKey: key) }
        statistics.flowsEnded += UInt64(ended.count)
        for key in dirtyKeys {
            guard let index = entries.index(forKey: key), entries.values[index].dirty else { continue }
            entries.values[index].dirty = false
            entries.values[index].emitted = true
            out.append(entries.values[index].record)
        }
        dirtyKeys.removeAll(keepingCapacity: true)
        return out
    }

    /// Ends every open flow (at shutdown or the end of a file).
    public mutating func flush() -> [FlowRecord] {
        var out: [FlowRecord] = []
        out.reserveCapacity(entries.count)
        for entry in entries.values {
            var record = entry.record
            record.state = .ended
            record.endReason = .shutdown
            out.append(record)
        }
        statistics.flowsEnded += UInt64(entries.count)
        entries.removeAll()
        dirtyKeys.removeAll()
        return out
    }
}

extension FlowTable.Entry {
    /// Time since the flow's latest packet: by packet time, or by arrival
    /// when that is longer (packets stamped ahead of the clock).
    func idleNs(at nowNs: UInt64) -> UInt64 {
        if idleByArrival, let arrivedNs { return nowNs >= arrivedNs ? nowNs - arrivedNs : 0 }
        let last = record.lastSeenNs
        let byPacket = nowNs >= last ? nowNs - last : 0
        guard let arrivedNs else { return byPacket }
        return max(byPacket, nowNs >= arrivedNs ? nowNs - arrivedNs : 0)
    }

    /// Adds a packet and marks the entry dirty, in one access to the
    /// table's storage: reading `dirty` through the dictionary's getter
    /// copied the whole entry, per packet. Returns whether it was clean.
    mutating func take(_ packet: PacketSummary, senderIsLow: Bool, arrivedNs: UInt64?) -> Bool {
        add(packet, senderIsLow: senderIsLow)
        self.arrivedNs = arrivedNs
        guard !dirty else { return false }
        dirty = true
        return true
    }

    mutating func add(_ packet: PacketSummary, senderIsLow: Bool) {
        if senderIsLow == initiatorIsLow {
            record.forward.add(packet)
        } else {
            record.reverse.add(packet)
        }
    }
}

extension FlowTable.Entry {
    mutating func add(_ flow: UniflowSummary, senderIsLow: Bool) {
        let fromInitiator = senderIsLow == initiatorIsLow
        if !fromInitiator && !emitted && record.reverse.packets == 0 && sentFirst(flow) {
            swapDirections()
            // A flow is where its initiator's packets were seen, as when the records come in order.
            record.interfaceIndex = flow.interfaceIndex
            record.interface = flow.interface
        }
        if senderIsLow == initiatorIsLow {
            record.forward.add(flow, responder: false)
        } else {
            record.reverse.add(flow, responder: true)
        }
    }

    /// Whether `flow`, from the current responder, started before the
    /// initiator's side: its sender is then the real initiator.
    private func sentFirst(_ flow: UniflowSummary) -> Bool {
        let initiatorFirst = record.forward.firstSeenNs
        if flow.firstSeenNs != initiatorFirst { return flow.firstSeenNs < initiatorFirst }
        return flow.destinationPort < flow.sourcePort
    }

    /// Makes the responder the initiator (only while the reverse side is
    /// empty); a SYN-ACK counted on the old initiator's side becomes a SYN-ACK
    /// of the new responder.
    private mutating func swapDirections() {
        initiatorIsLow.toggle()
        var old = record
        swap(&old.sourceAddress, &old.destinationAddress)
        swap(&old.sourcePort, &old.destinationPort)
        let (forward, reverse) = (old.reverse, old.forward)
        old.forward = forward
        old.reverse = reverse
        if old.reverse.flags.contains([.syn, .ack]) {
            old.reverse.synAckCount &+= old.reverse.synCount
            old.reverse.synCount = 0
        }
        record = old
    }
}
