/// Cumulative packet accounting of one capture source. Every packet the
/// source saw ends in exactly one of: accounted to a flow, folded into an
/// overflow aggregate, not IP, malformed, a forwarded packet's second
/// sight, or one of the loss counters, so `packetsSeen` is fully explained.
public struct CaptureStatistics: Sendable, Hashable, Codable {
    /// Packets the hook or libpcap handed to FlowForest.
    public var packetsSeen: UInt64 = 0
    /// Packets counted into a flow record.
    public var packetsAccounted: UInt64 = 0
    /// Bytes (IP layer) counted into flow records.
    public var bytesAccounted: UInt64 = 0
    /// Non-IP frames (ARP, LLDP, ...): seen, not a flow.
    public var notIP: UInt64 = 0
    /// Truncated or inconsistent headers: counted, never attributed to a flow.
    public var malformed: UInt64 = 0
    /// Packets lost because the flow table or kernel map was full (in eBPF
    /// mode: a packet sent to the ring buffer, its flow not inserted or its
    /// slot locked past the spin bound, found that full too).
    public var tableFull: UInt64 = 0
    /// Packets dropped before FlowForest saw them (libpcap `ps_drop`).
    public var captureDrops: UInt64 = 0
    /// Packets the interface dropped (libpcap `ps_ifdrop`).
    public var interfaceDrops: UInt64 = 0
    /// Collection only: flow records exporters sent that never arrived, by
    /// the gaps in their sequence numbers (records, not packets; NetFlow v9
    /// numbers datagrams, so there one missing datagram counts one).
    public var missingRecords: UInt64 = 0
    /// eBPF only: packets delivered through the ring buffer because their flow
    /// could not be inserted, or its slot stayed locked past the program's
    /// spin bound (not a loss; merged by the drainer).
    public var ringBufferPackets: UInt64 = 0
    /// eBPF only: of the ring buffer's packets (and of `tableFull` with it
    /// full), those sent because their flow's slot stayed locked by another
    /// CPU past the spin bound, not because an insert failed.
    public var ringBufferSlotLocked: UInt64 = 0
    /// eBPF only: packets (and their IP bytes) not admitted as flows and
    /// folded into overflow aggregates, as drained so far.
    public var packetsAggregated: UInt64 = 0
    public var bytesAggregated: UInt64 = 0
    /// eBPF only: packets seen leaving a watched interface after they were
    /// counted entering another one (forwarded by this host): counted once.
    public var forwardedSeen: UInt64 = 0
    /// Flows started and ended so far.
    public var flowsStarted: UInt64 = 0
    public var flowsEnded: UInt64 = 0

    public init() {}

    /// Packets explained by everything but flow records: aggregates, not IP,
    /// malformed, forwarded second sights and losses. With the packets in
    /// flow records it adds up to ``packetsSeen``.
    public var packetsOutsideFlows: UInt64 {
        packetsAggregated &+ notIP &+ malformed &+ forwardedSeen &+ tableFull
    }

    /// Adds every counter of `other` (saturating: a hostile exporter's
    /// counts can reach 2^64 - 1, and a wrapped sum would read as a source
    /// that restarted): statistics of several tables or sources read as one.
    public static func += (lhs: inout CaptureStatistics, rhs: CaptureStatistics) {
        lhs.packetsSeen = lhs.packetsSeen.addingSaturated(rhs.packetsSeen)
        lhs.packetsAccounted = lhs.packetsAccounted.addingSaturated(rhs.packetsAccounted)
        lhs.bytesAccounted = lhs.bytesAccounted.addingSaturated(rhs.bytesAccounted)
        lhs.notIP = lhs.notIP.addingSaturated(rhs.notIP)
        lhs.malformed = lhs.malformed.addingSaturated(rhs.malformed)
        lhs.tableFull = lhs.tableFull.addingSaturated(rhs.tableFull)
        lhs.captureDrops = lhs.captureDrops.addingSaturated(rhs.captureDrops)
        lhs.interfaceDrops = lhs.interfaceDrops.addingSaturated(rhs.interfaceDrops)
        lhs.missingRecords = lhs.missingRecords.addingSaturated(rhs.missingRecords)
        lhs.ringBufferPackets = lhs.ringBufferPackets.addingSaturated(rhs.ringBufferPackets)
        lhs.ringBufferSlotLocked = lhs.ringBufferSlotLocked.addingSaturated(rhs.ringBufferSlotLocked)
        lhs.packetsAggregated = lhs.packetsAggregated.addingSaturated(rhs.packetsAggregated)
        lhs.bytesAggregated = lhs.bytesAggregated.addingSaturated(rhs.bytesAggregated)
        lhs.forwardedSeen = lhs.forwardedSeen.addingSaturated(rhs.forwardedSeen)
        lhs.flowsStarted = lhs.flowsStarted.addingSaturated(rhs.flowsStarted)
        lhs.flowsEnded = lhs.flowsEnded.addingSaturated(rhs.flowsEnded)
    }

    enum CodingKeys: String, CodingKey {
        case packetsSeen = "packets_seen"
        case packetsAccounted = "packets_accounted"
        case bytesAccounted = "bytes_accounted"
        case notIP = "not_ip"
        case malformed
        case tableFull = "table_full"
        case captureDrops = "capture_drops"
        case interfaceDrops = "interface_drops"
        case missingRecords = "missing_records"
        case ringBufferPackets = "ring_buffer_packets"
        case ringBufferSlotLocked = "ring_buffer_slot_locked"
        case packetsAggregated = "packets_aggregated"
        case bytesAggregated = "bytes_aggregated"
        case forwardedSeen = "forwarded_seen"
        case flowsStarted = "flows_started"
        case flowsEnded = "flows_ended"
    }
}
