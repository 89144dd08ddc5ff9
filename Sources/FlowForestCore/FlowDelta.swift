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
        self.init(Self.totals(of: record), since: previous.map(Self.totals(of:)))
    }

    /// `totals` minus `previous` (running totals as ``totals(of:)`` gives
    /// them), field by field, never wrapping.
    public init(_ totals: FlowDelta, since previous: FlowDelta?) {
        func delta(_ new: UInt64, _ old: UInt64?) -> UInt64 {
            guard let old, new >= old else { return new }
            return new - old
        }
        forwardPackets = delta(totals.forwardPackets, previous?.forwardPackets)
        reversePackets = delta(totals.reversePackets, previous?.reversePackets)
        forwardBytes = delta(totals.forwardBytes, previous?.forwardBytes)
        reverseBytes = delta(totals.reverseBytes, previous?.reverseBytes)
        forwardSyn = delta(totals.forwardSyn, previous?.forwardSyn)
        reverseSynAck = delta(totals.reverseSynAck, previous?.reverseSynAck)
    }

    /// A record's running totals in a delta's fields: its delta since nothing.
    public static func totals(of record: FlowRecord) -> FlowDelta {
        totals(forward: record.forward, reverse: record.reverse)
    }

    static func totals(forward: DirectionStats, reverse: DirectionStats) -> FlowDelta {
        var t = FlowDelta()
        t.forwardPackets = forward.packets
        t.reversePackets = reverse.packets
        t.forwardBytes = forward.bytes
        t.reverseBytes = reverse.bytes
        t.forwardSyn = UInt64(forward.synCount)
        t.reverseSynAck = UInt64(reverse.synAckCount)
        return t
    }

    /// Both deltas together, field by field, saturating (collected counts can be anything).
    public func adding(_ other: FlowDelta) -> FlowDelta {
        var sum = self
        sum.forwardPackets = forwardPackets.addingSaturated(other.forwardPackets)
        sum.reversePackets = reversePackets.addingSaturated(other.reversePackets)
        sum.forwardBytes = forwardBytes.addingSaturated(other.forwardBytes)
        sum.reverseBytes = reverseBytes.addingSaturated(other.reverseBytes)
        sum.forwardSyn = forwardSyn.addingSaturated(other.forwardSyn)
        sum.reverseSynAck = reverseSynAck.addingSaturated(other.reverseSynAck)
        return sum
    }

    public var packets: UInt64 { forwardPackets.addingSaturated(reversePackets) }
    public var bytes: UInt64 { forwardBytes.addingSaturated(reverseBytes) }
}
