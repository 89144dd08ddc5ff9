public import CoreMetrics
public import FlowForestCore
public import Logging
public import ServiceLifecycle
import Synchronization

/// Limits and timing of the ``StoreWriter``.
public struct StoreWriterConfiguration: Sendable, Hashable {
    /// Records held while the database is slow or down; beyond it new flow
    /// records are dropped (and counted) and new anomalies refused.
    public var maxPendingFlows = 200_000
    public var maxPendingAnomalies = 100_000
    /// Incident changes held; beyond it new changes are refused (and counted).
    public var maxPendingIncidents = 50_000
    /// Rows per write.
    public var batchSize = 1000
    /// How long a write waits for more rows to batch, when fewer than
    /// `batchSize` rows wait; a backlog is written without pause.
    public var flushInterval: Duration = .milliseconds(200)
    /// Delay before retrying after a failure, doubled up to `maxRetryDelay`.
    public var retryDelay: Duration = .milliseconds(250)
    public var maxRetryDelay: Duration = .seconds(5)
    /// Flow records older than this are deleted (0 keeps them forever).
    public var flowRetention: Duration = .seconds(86_400)
    public var retentionInterval: Duration = .seconds(60)
    /// At shutdown, how long pending rows may keep being written (or
    /// retried) before the rest are counted lost: below systemd's
    /// TimeoutStopSec (30 s) with room for the flows flushed before it, so
    /// the process ends on its own terms.
    public var shutdownGrace: Duration = .seconds(15)

    public init() {}
}

/// Writes anomalies and flow records in batches from a bounded queue.
///
/// Enqueueing never blocks the caller (capture, detection, ingest); the
/// writer retries through a database outage, counting each failure in
/// `flowforest_store_errors_total`, and only drops flow records when the
/// queue is full (counted in `flowforest_store_dropped_total`). An anomaly
/// accepted by ``enqueue(anomalies:)`` stays queued until written, and
/// graceful shutdown flushes the queue. Written anomalies, with their ids,
/// go out on ``storedAnomalies`` for whoever serves them live.
public final class StoreWriter: Service, Sendable {
    struct Queue {
        var anomalies = RowQueue<PendingAnomaly>()
        /// Flow records, each segment labelled with its sensor.
        var flows = RowQueue<FlowRecord>()
        var incidents = RowQueue<IncidentUpdate>()
    }

    public let store: Store
    public let configuration: StoreWriterConfiguration
    private let logger: Logger
    private let queue = Mutex(Queue())
    private let wake: AsyncStream<Void>.Continuation
    private let wakeStream: AsyncStream<Void>
    private let stored: AsyncStream<[Anomaly]>.Continuation

    /// Each batch of anomalies once written, ids set, in the order written.
    /// One consumer (the server's event hub) reads it; while it is behind,
    /// the newest ``storedBuffer`` batches wait and older ones are dropped,
    /// counted in `flowforest_live_anomalies_dropped_total` (they are stored;
    /// only their live event is lost).
    public let storedAnomalies: AsyncStream<[Anomaly]>
    /// Batches of up to the writer's batch size (1,000 by default) each.
    public static let storedBuffer = 64
    /// Each batch of incident changes once written, ids and anomaly ids set.
    public let storedIncidents: IncidentFeed

    private let writes: (anomalies: Counter, flows: Counter, incidents: Counter)
    private let errors: Counter
    private let dropped: (anomalies: Counter, flows: Counter, incidents: Counter)
    private let liveDropped: Counter
    private let pendingGauge: (anomalies: Gauge, flows: Gauge, incidents: Gauge)
    private let retention: Counter
    private let retentionErrors: Counter
    private let errorTotal = Atomic<Int64>(0)
    /// The last write's outcome: the error of the last write when it failed
    /// (nil once a later one succeeded), and when a write last succeeded.
    /// One lock, so health never reads a success from before a failure.
    private let outcome = Mutex<(failure: String?, lastSuccess: ContinuousClock.Instant?)>((nil, nil))

    /// The error of the last write when it failed, nil once a later write
    /// succeeded (or before any failed): health reports the store degraded
    /// while this is set.
    public var failure: String? { outcome.withLock { $0.failure } }

    /// Whether a write succeeded within `interval` (and none failed since):
    /// the database answered just now, so health need not ask it again
    /// behind the writer's queue of inserts.
    public func wroteSuccessfully(within interval: Duration) -> Bool {
        let (failure, last) = outcome.withLock { ($0.failure, $0.lastSuccess) }
        guard failure == nil, let last else { return false }
        return ContinuousClock.now - last < interval
    }

    /// Failed writes so far (each retry that failed counts once).
    public var errorCount: Int64 { errorTotal.load(ordering: .relaxed) }

    public init(store: Store, configuration: StoreWriterConfiguration = .init(), logger: Logger, metricsFactory: any MetricsFactory) {
        self.store = store
        self.configuration = configuration
        self.logger = logger
        (storedAnomalies, stored) = AsyncStream.makeStream(of: [Anomaly].self, bufferingPolicy: .bufferingNewest(Self.storedBuffer))
        (wakeStream, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        let f = metricsFactory
        storedIncidents = IncidentFeed(metricsFactory: f)
        func perTable(_ make: (String) -> Counter) -> (Counter, Counter, Counter) { (make("anomalies"), make("flows"), make("incidents")) }
        writes = perTable { Counter(label: "flowforest_store_rows_written_total", dimensions: [("table", $0)], factory: f) }
        errors = Counter(label: "flowforest_store_errors_total", dimensions: [("operation", "write")], factory: f)
        dropped = perTable { Counter(label: "flowforest_store_dropped_total", dimensions: [("table", $0)], factory: f) }
        liveDropped = Counter(label: "flowforest_live_anomalies_dropped_total", factory: f)
        liveDropped.increment(by: 0)
        pendingGauge = (Gauge(label: "flowforest_store_pending_rows", dimensions: [("table", "anomalies")], factory: f),
                        Gauge(label: "flowforest_store_pending_rows", dimensions: [("table", "flows")], factory: f),
                        Gauge(label: "flowforest_store_pending_rows", dimensions: [("table", "incidents")], factory: f))
        retention = Counter(label: "flowforest_store_flows_expired_total", dimensions: [], factory: f)
        retentionErrors = Counter(label: "flowforest_store_errors_total", dimensions: [("operation", "retention")], factory: f)
        pendingGauge.anomalies.record(0)
        pendingGauge.flows.record(0)
        pendingGauge.incidents.record(0)
        dropped.incidents.increment(by: 0)
        errors.increment(by: 0)
    }

    /// Queues anomalies; false (nothing queued) when the queue has no room for all of them.
    @discardableResult
    public func enqueue(anomalies: [Anomaly]) -> Bool {
        guard !anomalies.isEmpty else { return true }
        let accepted = queue.withLock { q -> Bool in
            guard q.anomalies.count + anomalies.count <= configuration.maxPendingAnomalies else { return false }
            q.anomalies.append(contentsOf: anomalies.map { PendingAnomaly(anomaly: $0) })
            return true
        }
        if accepted {
            wake.yield()
        } else {
            dropped.anomalies.increment(by: Int64(anomalies.count))
            logger.error("store queue full: anomalies dropped", metadata: ["count": "\(anomalies.count)"])
        }
        return accepted
    }

    /// Queues incident changes, in order; false (nothing queued) when the queue has no room for all of them.
    @discardableResult
    public func enqueue(incidents: [IncidentUpdate]) -> Bool {
        guard !incidents.isEmpty else { return true }
        let accepted = queue.withLock { q -> Bool in
            guard q.incidents.count + incidents.count <= configuration.maxPendingIncidents else { return false }
            q.incidents.append(contentsOf: incidents)
            return true
        }
        if accepted {
            wake.yield()
        } else {
            dropped.incidents.increment(by: Int64(incidents.count))
            logger.error("store queue full: incident changes dropped", metadata: ["count": "\(incidents.count)"])
        }
        return accepted
    }

    /// Queues flow records; those beyond the queue's room are dropped and counted.
    public func enqueue(flows: [FlowRecord], sensor: String) {
        guard !flows.isEmpty else { return }
        let lost = queue.withLock { q -> Int in
            let room = max(0, configuration.maxPendingFlows - q.flows.count)
            // The caller's array itself when it fits: a poll's records are held once.
            q.flows.append(contentsOf: room >= flows.count ? flows : Array(flows.prefix(room)), label: sensor)
            return flows.count - min(room, flows.count)
        }
        if lost > 0 { dropped.flows.increment(by: Int64(lost)) }
        wake.yield()
    }

    /// Room left for flow records: ingest refuses a request that would not fit.
    public var flowRoom: Int { queue.withLock { configuration.maxPendingFlows - $0.flows.count } }

    /// Rows waiting to be written.
    public var pending: (anomalies: Int, flows: Int) { queue.withLock { ($0.anomalies.count, $0.flows.count) } }

    /// Rows of every table waiting to be written.
    public var pendingTotal: Int { queue.withLock { $0.anomalies.count + $0.flows.count + $0.incidents.count } }

    /// Incident changes waiting to be written.
    public var pendingIncidents: Int { queue.withLock { $0.incidents.count } }

    /// Writes until graceful shutdown, then flushes what is left.
    public func run() async throws {
        var lastRetention = ContinuousClock.now
        await withGracefulShutdownHandler {
            var delay = configuration.retryDelay
            var iterator = wakeStream.makeAsyncIterator()
            while !Task.isCancelled && !Task.isShuttingDownGracefully {
                if await writeOnce() {
                    delay = configuration.retryDelay
                } else {
                    try? await Task.sleep(for: delay)
                    delay = min(delay * 2, configuration.maxRetryDelay)
                    continue
                }
                if configuration.flowRetention > .zero, ContinuousClock.now - lastRetention >= configuration.retentionInterval {
                    lastRetention = .now
                    await expireFlows()
                }
                if pendingTotal == 0 {
                    _ = await iterator.next()
                }
                // Let a burst accumulate into one batch; a backlog of a batch
                // or more is written batch after batch, or the writer's pace
                // (a batch per interval, 5,000 rows a second by default) would
                // cap how many flows a second the store keeps.
                if pendingTotal < configuration.batchSize && !Task.isShuttingDownGracefully {
                    try? await Task.sleep(for: configuration.flushInterval)
                }
            }
        } onGracefulShutdown: {
            self.wake.yield()
        }
        await flush(deadline: .now + configuration.shutdownGrace)
        stored.finish()
        storedIncidents.finish()
    }

    /// Writes everything pending, retrying until `deadline`; what is still
    /// pending then (the database was down, or too slow for the queue) is
    /// logged and counted as dropped. No write waits past the deadline: a
    /// database that hangs would otherwise hold each for the query timeout,
    /// and the service manager would kill the process before the loss is
    /// logged or counted. (A batch whose write was cut off may still commit
    /// on the server: then it is both stored and counted as dropped.)
    public func flush(deadline: ContinuousClock.Instant) async {
        var delay = configuration.retryDelay
        while pendingTotal > 0, ContinuousClock.now < deadline {
            if await Store.$deadline.withValue(deadline, operation: { await writeOnce() }) { continue }
            if ContinuousClock.now + delay > deadline { break }
            try? await Task.sleep(for: delay)
            delay = min(delay * 2, configuration.maxRetryDelay)
        }
        let left = queue.withLock { q -> (Int, Int, Int) in
            defer { q = Queue() }
            return (q.anomalies.count, q.flows.count, q.incidents.count)
        }
        if left.0 + left.1 + left.2 > 0 {
            dropped.anomalies.increment(by: Int64(left.0))
            dropped.flows.increment(by: Int64(left.1))
            dropped.incidents.increment(by: Int64(left.2))
            logger.error("rows not written by the shutdown deadline (database down or too slow); counted in flowforest_store_dropped_total",
                         metadata: ["anomalies": "\(left.0)", "flows": "\(left.1)", "incidents": "\(left.2)"])
        }
        updateGauges()
    }

    /// Writes one batch of anomalies, then one of flows. A failed batch stays
    /// at the head of its queue. Returns false after a failure.
    func writeOnce() async -> Bool {
        let anomalies = queue.withLock { $0.anomalies.prefix(configuration.batchSize) }
        if !anomalies.isEmpty {
            do {
                let ids = try await store.insertAnomalies(anomalies)
                queue.withLock { $0.anomalies.removeFirst(anomalies.count) }
                succeeded()
                writes.anomalies.increment(by: Int64(anomalies.count))
                let written = anomalies.map { p in
                    var a = p.anomaly
                    a.id = ids[p.uid]
                    return a
                }
                if case .dropped(let lost) = stored.yield(written) { liveDropped.increment(by: Int64(lost.count)) }
            } catch {
                failed(error, table: "anomalies", rows: anomalies.count)
                return false
            }
        }
        // After the anomalies, so an incident read back has its anomalies' ids.
        guard await writeIncidents() else { return false }
        let flows = queue.withLock { $0.flows.prefix(configuration.batchSize) { StoredFlow(sensor: $1, record: $0) } }
        if !flows.isEmpty {
            do {
                try await store.insertFlows(flows)
                queue.withLock { $0.flows.removeFirst(flows.count) }
                succeeded()
                writes.flows.increment(by: Int64(flows.count))
            } catch {
                failed(error, table: "flows", rows: flows.count)
                return false
            }
        }
        updateGauges()
        return true
    }

    /// Writes one batch of incident changes and publishes them as stored.
    private func writeIncidents() async -> Bool {
        let updates = queue.withLock { $0.incidents.prefix(configuration.batchSize) }
        guard !updates.isEmpty else { return true }
        do {
            let stored = try await store.upsertIncidents(updates.map(\.incident))
            queue.withLock { $0.incidents.removeFirst(updates.count) }
            succeeded()
            writes.incidents.increment(by: Int64(updates.count))
            storedIncidents.publish(updates.map { update in
                // Each change keeps its own snapshot; the store adds the ids.
                var incident = update.incident
                incident.id = stored[incident.uid]?.id
                incident.anomalyIDs = stored[incident.uid]?.anomalyIDs ?? []
                return IncidentUpdate(change: update.change, incident: incident)
            })
            return true
        } catch {
            failed(error, table: "incidents", rows: updates.count)
            return false
        }
    }

    private func succeeded() {
        outcome.withLock { $0 = (nil, .now) }
    }

    private func failed(_ error: any Error, table: String, rows: Int) {
        errors.increment()
        errorTotal.add(1, ordering: .relaxed)
        outcome.withLock { $0.failure = "writing \(table) failed: \(error)" }
        updateGauges()
        logger.warning("store write failed; will retry", metadata: ["table": "\(table)", "rows": "\(rows)", "error": "\(error)"])
    }

    private func updateGauges() {
        let p = pending
        pendingGauge.anomalies.record(p.anomalies)
        pendingGauge.flows.record(p.flows)
        pendingGauge.incidents.record(pendingIncidents)
    }

    private func expireFlows() async {
        let cutoff = Store.nowMs() - Int64(configuration.flowRetention.components.seconds * 1000)
        do {
            let n = try await store.deleteFlows(lastSeenBeforeMs: cutoff)
            retention.increment(by: Int64(n))
        } catch {
            retentionErrors.increment()
            logger.warning("flow retention failed", metadata: ["error": "\(error)"])
        }
    }
}
