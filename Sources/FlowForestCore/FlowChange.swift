/// One record as the ``FlowLedger`` saw it: the record, what it adds since
/// the flow's previous record, and the flow's state before it.
public struct FlowChange: Sendable {
    public var record: FlowRecord
    /// What the record adds since the flow's previous record (all of its
    /// totals for a flow's first record).
    public var delta: FlowDelta
    /// The flow's ledger entry before this record; nil for its first record.
    public var previous: FlowLedger.Entry?
    /// False when the ledger was full and did not take this new flow:
    /// nothing remembers the flow between its records, so ``delta`` is zero
    /// until its ended record, which brings all of its totals.
    public var tracked: Bool

    public init(record: FlowRecord, delta: FlowDelta, previous: FlowLedger.Entry?, tracked: Bool) {
        self.record = record
        self.delta = delta
        self.previous = previous
        self.tracked = tracked
    }

    /// True for the first record of a flow the ledger did not know.
    public var isNew: Bool { previous == nil }
}
