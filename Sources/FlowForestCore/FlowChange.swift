/// One record as the ``FlowLedger`` saw it: the record, what it adds since
/// the flow's previous record, and whether it is the flow's first.
public struct FlowChange: Sendable {
    /// The batch's records, shared (an array is copied only when written to):
    /// a change names its record by position rather than holding a
    /// 312-byte copy of it beside the batch's.
    @usableFromInline let records: [FlowRecord]
    @usableFromInline let position: Int
    /// What the record adds since the flow's previous record (all of its
    /// totals for a flow's first record).
    public var delta: FlowDelta
    /// False when the ledger was full and did not take this new flow:
    /// nothing remembers the flow between its records, so ``delta`` is zero
    /// until its ended record, which brings all of its totals.
    public var tracked: Bool
    /// True for the first record of a flow the ledger did not know.
    ///
    /// The flow's previous entry itself is not carried: its readers need
    /// only this and ``delta``, and in a poll where every open flow changed
    /// a copy per change would cost some 340 bytes per flow.
    public var isNew: Bool
    /// For a later record of a flow whose source reports late
    /// (``FlowReporting/delayed``): the flow's last packet before this record,
    /// after which ``delta``'s packets passed. 0 for a first record and for
    /// sources that report within a poll, whose new packets passed since it.
    public var spreadFromNs: UInt64

    /// The record this change is about, read in place: a reader of a few
    /// of its fields loads only those. Passed whole as an argument to a
    /// function that is not inlined, it is copied (312 bytes) all the same.
    @inlinable public var record: FlowRecord {
        _read { yield records[position] }
    }

    public init(record: FlowRecord, delta: FlowDelta, isNew: Bool, tracked: Bool, spreadFromNs: UInt64 = 0) {
        self.init(records: [record], position: 0, delta: delta, isNew: isNew, tracked: tracked, spreadFromNs: spreadFromNs)
    }

    /// The change that `records[position]` made, sharing `records`.
    public init(records: [FlowRecord], position: Int, delta: FlowDelta, isNew: Bool, tracked: Bool, spreadFromNs: UInt64 = 0) {
        self.records = records
        self.position = position
        self.delta = delta
        self.isNew = isNew
        self.tracked = tracked
        self.spreadFromNs = spreadFromNs
    }
}
