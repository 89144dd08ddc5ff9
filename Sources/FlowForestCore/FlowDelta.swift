/// What one record of a flow adds to it since the flow's previous record:
/// sources report running totals, and counters and rates need increments.
///
/// The one place FlowForest turns cumulative totals into deltas;
/// ``FlowLedger`` computes it for every record that passes through it.
public struct FlowDelta: Sendable, Hashable {
    public var forwardPackets: UInt64 = 0
    public var reversePackets: UInt64 = 0
    public var forwardBytes: UInt64 = 0
    public var reverseBytes: UInt64 = 0
    /// SYNs sent by the initiator, SYN-ACKs sent by the responder.
    public var forwardSyn: UInt64 = 0
    public var reverseSynAck: UInt64 = 0

    /// No traffic.
    public static let zero = FlowDelta()

    public init() {}

    /// The record's totals minus those of `previous` (the same flow's
    /// previous record), or all of them when there is none. A total below
    /// the previous one means the flow's counters restarted (a reused id),
    /// so the delta is then the new total: a delta never wraps.
    public init(_ record: FlowRecord, since previous: FlowRecord?) {
        func delta<T: BinaryInteger>(_ new: T, _ old: T?) -> UInt64 {
            guard let old, new >= old else { return UInt64(new) }
            return UInt64(new - old)
        }
        forwardPackets = delta(record.forward.packets, previous?.forward.packets)
        reversePackets = delta(record.reverse.packets, previous?.reverse.packets)
        forwardBytes = delta(record.forward.bytes, previous?.forward.bytes)
        reverseBytes = delta(record.reverse.bytes, previous?.reverse.bytes)
        forwardSyn = delta(record.forward.synCount, previous?.forward.synCount)
        reverseSynAck = delta(record.reverse.synAckCount, previous?.reverse.synAckCount)
    }

    public var packets: UInt64 { forwardPackets.addingSaturated(reversePackets) }
    public var bytes: UInt64 { forwardBytes.addingSaturated(reverseBytes) }
}
