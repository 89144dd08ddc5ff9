public import FlowForestCore

/// What one export of a flow carries: the counts since the flow's previous
/// export in each direction, so a collector's sums over a run equal
/// FlowForest's totals exactly.
public struct ExportRecord: Sendable, Equatable {
    /// One direction's share of an export.
    public struct Direction: Sendable, Equatable {
        public var packets: UInt64
        public var bytes: UInt64
        public var startMs: UInt64
        public var endMs: UInt64
        /// TCP flags seen in this direction so far (IPFIX tcpControlBits).
        public var flags: UInt16
        /// ICMP type and code of this direction, type in the high byte.
        public var icmpTypeCode: UInt16
    }

    public var flow: FlowRecord
    public var forward: Direction
    public var reverse: Direction
    public var endReason: IPFIXEndReason
}

/// Turns the flow records a source reports (cumulative totals, reported
/// again each time a flow changes) into deltas: one export at each active
/// timeout (interim) and one at the end. Active records in between are
/// progress reports, not exports.
///
/// It remembers the totals already exported of flows that had an interim
/// export and have not ended: at most one entry per open flow.
public struct DeltaTracker: Sendable {
    private var exported: [UInt64: (forward: (UInt64, UInt64), reverse: (UInt64, UInt64))] = [:]

    public init() {}

    /// Flows with an interim export whose end is still to come.
    public var openFlows: Int { exported.count }

    /// The export a record calls for, if any.
    public mutating func export(_ record: FlowRecord) -> ExportRecord? {
        let reason: IPFIXEndReason
        switch (record.state, record.endReason) {
        case (.active, _): return nil
        case (.interim, _): reason = .activeTimeout
        case (.ended, .idle?): reason = .idleTimeout
        case (.ended, .tcpClose?): reason = .endOfFlow
        case (.ended, _): reason = .forcedEnd
        }
        let before = exported[record.id] ?? ((0, 0), (0, 0))
        if record.state == .ended {
            exported[record.id] = nil
        } else {
            exported[record.id] = ((record.forward.packets, record.forward.bytes), (record.reverse.packets, record.reverse.bytes))
        }
        func direction(_ d: DirectionStats, since: (UInt64, UInt64)) -> ExportRecord.Direction {
            ExportRecord.Direction(
                // A total below what was exported (a flow id a source reused) starts afresh, never a wrapped delta.
                packets: d.packets >= since.0 ? d.packets - since.0 : d.packets,
                bytes: d.bytes >= since.1 ? d.bytes - since.1 : d.bytes,
                startMs: d.firstSeenNs / 1_000_000, endMs: d.lastSeenNs / 1_000_000,
                flags: UInt16(d.flags.rawValue), icmpTypeCode: UInt16(d.icmpType) << 8 | UInt16(d.icmpCode))
        }
        let out = ExportRecord(flow: record, forward: direction(record.forward, since: before.forward),
                               reverse: direction(record.reverse, since: before.reverse), endReason: reason)
        return out.forward.packets == 0 && out.reverse.packets == 0 ? nil : out
    }
}
