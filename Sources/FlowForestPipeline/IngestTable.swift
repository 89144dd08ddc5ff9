public import CoreMetrics
public import FlowForestCore

/// The flow table behind remote ingest: packets posted by agents become
/// flows here, and the server advances it once a second into the same
/// pipeline as local capture (mode `ingest`).
///
/// Ingested packets carry times their senders chose, so the table runs by
/// the server's clock as well: a flow ends once idle by packet time or by
/// arrival, whichever is longer, so no timestamp can hold it open; and it
/// holds at most `maxFlows` flows (`--max-flows`), counting the packets of
/// flows it had no room for in `flowforest_ingest_table_full_packets_total`.
public actor IngestTable {
    private var table: FlowTable
    /// Records the latest ``advance()`` handed out that the store keeps
    /// (interim and ended): until the next one they may not be queued yet.
    private var handedOut = 0
    private let clock: @Sendable () -> UInt64
    private let tableFull: Counter

    /// What one request did to the table.
    public struct Added: Sendable {
        /// Flows the request started.
        public var flowsStarted: UInt64
        /// Packets refused because the table was full.
        public var refused: UInt64
        /// Flows open afterwards.
        public var activeFlows: Int
    }

    /// - Parameter clock: the server's clock in ns since the epoch.
    public init(configuration: FlowTableConfiguration, metricsFactory: any MetricsFactory,
                clock: @escaping @Sendable () -> UInt64 = WallClock.nowNs) {
        // Ingest ids start at 2^62 so they never meet capture ids.
        table = FlowTable(configuration: configuration, firstID: 1 << 62)
        self.clock = clock
        tableFull = Counter(label: "flowforest_ingest_table_full_packets_total", factory: metricsFactory)
        tableFull.increment(by: 0)
    }

    /// Adds every packet if the store queue has room for what the table
    /// will owe it afterwards: a record for each flow then open (its end, at
    /// least), for each flow these packets may open, and for the records of
    /// the latest advance, which may not be queued yet. `storeRoom` is the
    /// queue's free rows. Nil, adding nothing, when it has not: accepted
    /// packets are then never dropped for want of room when their flows end
    /// together.
    public func add(_ packets: [PacketSummary], storeRoom: () -> Int) -> Added? {
        guard storeRoom() >= table.activeCount + handedOut + packets.count else { return nil }
        return add(packets)
    }

    /// Adds every packet (the request is already fully validated), stamped
    /// with its arrival by the server clock.
    public func add(_ packets: [PacketSummary]) -> Added {
        let before = table.statistics
        let now = clock()
        for p in packets { table.add(p, arrivedNs: now) }
        let after = table.statistics
        let refused = after.tableFull - before.tableFull
        if refused > 0 { tableFull.increment(by: Int64(refused)) }
        return Added(flowsStarted: after.flowsStarted - before.flowsStarted, refused: refused, activeFlows: table.activeCount)
    }

    /// Ends and checkpoints flows as of the server clock now.
    public func advance() -> FlowBatch {
        let now = clock()
        let records = table.advance(to: now)
        handedOut = records.reduce(0) { $0 + ($1.state == .active ? 0 : 1) }
        return FlowBatch(timeNs: now, records: records, statistics: table.statistics, activeFlows: table.activeCount, reporting: .delayed)
    }

    /// Ends every open flow (at shutdown).
    public func flush() -> FlowBatch {
        let records = table.flush()
        return FlowBatch(timeNs: clock(), records: records, statistics: table.statistics, activeFlows: 0, reporting: .delayed)
    }

    /// Flows open now.
    public var activeCount: Int { table.activeCount }
}
