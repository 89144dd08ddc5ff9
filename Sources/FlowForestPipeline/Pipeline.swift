public import CoreMetrics
public import FlowForestCore
public import FlowForestDetection
import Foundation
import CHeapStatistics
import Metrics
public import Logging
import Synchronization

/// FlowForest's one path from a flow batch to scored anomalies and to what
/// is kept: `run` (local capture and remote ingest), `analyze`, `train`,
/// `make eval` and `bench` all feed their batches to ``process(_:mode:)``.
///
/// Each batch goes, in this order, through
/// 1. the ``FlowLedger`` — the one owner of per-flow state — which turns
///    each record's running totals into deltas,
/// 2. accounting: packet, byte, flow and loss metrics from those deltas and
///    the source's cumulative statistics,
/// 3. floods folded into overflow aggregates, reported and stored at once,
/// 4. the trainer (baseline vectors) and the detector (scoring),
/// 5. the sink: interim and ended flows and the anomalies found.
public actor Pipeline {
    /// The pipeline's own thread (see ``PipelineThread``).
    private let thread = PipelineThread()
    public nonisolated var unownedExecutor: UnownedSerialExecutor { thread.asUnownedSerialExecutor() }
    /// What the server shows, as of the latest batch, readable without
    /// waiting for the pipeline: health, status and the live stats answer
    /// while a batch is scored.
    private let published: Mutex<PipelineSnapshot>
    /// The busiest open flows as made after the latest batch that followed
    /// a request for them (``busiestOpenFlows()``), when it was made, and
    /// whether a request is waiting for a fresh list.
    private let publishedFlows = Mutex<(entries: [FlowLedger.Entry], madeAt: ContinuousClock.Instant, wanted: Bool)?>(nil)
    private let sensor: String
    private var detector: (any FlowDetector)?
    /// Speaks for the packets the data plane folded into overflow aggregates.
    private var floods = OverflowFloodRule()
    /// Collects baseline vectors (`train`, the training phase of `make eval`).
    public private(set) var trainer: ModelTrainer?
    private let sink: (any PipelineSink)?
    private let logger: Logger
    private var metrics: PipelineMetrics
    private var flows: FlowLedger
    private var lastStatistics: [String: CaptureStatistics] = [:]
    private var activeByMode: [String: Int] = [:]
    private var savedModelVersion: Int?
    /// Groups the anomalies into incidents; the one owner of open incidents.
    private var incidents: IncidentTracker
    /// The suppression rules in force (the API's and `--suppress FILE`'s).
    public private(set) var suppressions: [Suppression] = []
    /// Packets and bytes counted into flows so far, every mode together.
    public private(set) var packetsTotal: UInt64 = 0
    public private(set) var bytesTotal: UInt64 = 0
    /// Anomalies found so far.
    public private(set) var anomaliesTotal: Int64 = 0
    private var lastTrim = ContinuousClock.now
    /// The latest batch's time and when it was processed: the clock the
    /// anomalies filed into incidents carry (see ``expireIncidents(nowMs:)``).
    private var batchClock: (timeNs: UInt64, at: SuspendingClock.Instant)?

    /// - Parameters:
    ///   - sensor: the name anomalies and stored flows carry.
    ///   - detector: scores every batch; nil to count and keep flows only.
    ///   - trainer: collects baseline vectors from every batch.
    ///   - sink: where flows, anomalies and models are kept; nil keeps nothing.
    ///   - maxFlows: open flows the ledger holds at most.
    ///   - longestSilenceNs: the longest the sources go without a record of
    ///     a flow they hold open (``FlowTableConfiguration/longestSilenceNs``):
    ///     the ledger holds a quiet flow longer than that.
    public init(sensor: String, detector: (any FlowDetector)? = nil, trainer: ModelTrainer? = nil,
                sink: (any PipelineSink)? = nil, maxFlows: Int = FlowLedger.defaultMaxFlows,
                longestSilenceNs: UInt64 = 0,
                incidents: IncidentConfiguration = .init(),
                logger: Logger, metricsFactory: any MetricsFactory) {
        self.sensor = sensor
        self.detector = detector
        self.trainer = trainer
        self.sink = sink
        self.logger = logger
        self.flows = FlowLedger(maxFlows: maxFlows, longestSilenceNs: longestSilenceNs)
        self.incidents = IncidentTracker(configuration: incidents)
        let metrics = PipelineMetrics(factory: metricsFactory)
        metrics.learning.record(detector?.apiStatus.state == .scoring ? 0 : 1)
        self.metrics = metrics
        self.published = Mutex(PipelineSnapshot(modelStatus: detector?.apiStatus ?? ModelStatus(state: .learning)))
    }

    /// Feeds one batch from the source of capture mode `mode` through the
    /// ledger, accounting, training, detection and the sink; returns the
    /// anomalies found, stamped with the sensor name.
    @discardableResult
    public func process(_ batch: FlowBatch, mode: String) -> [Anomaly] {
        batchClock = (batch.timeNs, SuspendingClock.now)
        let changes = flows.apply(batch.records, origin: mode, nowNs: batch.timeNs, reporting: batch.reporting)
        let lost = account(batch, changes: changes, mode: mode)
        // Folded floods need no model (they are reported while learning too)
        // and no scoring: they go out before the batch's flows are scored,
        // which takes longest exactly when a flood brings a poll of
        // thousands of new flows.
        var folded = detector == nil ? [] : floods.evaluate(batch.aggregates, nowNs: batch.timeNs)
        if !folded.isEmpty { report(&folded, timeNs: batch.timeNs, lost: lost) }
        trainer?.add(batch, changes: changes, flows: flows)
        var anomalies = detect(batch, changes: changes)
        if let sink {
            sink.enqueue(flows: Self.kept(batch.records), sensor: sensor)
        }
        report(&anomalies, timeNs: batch.timeNs, lost: folded.isEmpty ? lost : SensorLoss())
        publish()
        trimHeapIfDue()
        return folded + anomalies
    }

    /// The records the store keeps: interim and ended ones. A poll that
    /// ends every flow hands the batch's own array on rather than a copy of
    /// all of it; states are read in place, not from a copy of each record.
    private static func kept(_ records: [FlowRecord]) -> [FlowRecord] {
        guard records.indices.contains(where: { records[$0].state == .active }) else { return records }
        return records.indices.compactMap { records[$0].state == .active ? nil : records[$0] }
    }

    /// Stamps, files into incidents, counts and stores one set of a batch's
    /// anomalies, then hands the incident changes on.
    private func report(_ anomalies: inout [Anomaly], timeNs: UInt64, lost: SensorLoss) {
        for i in anomalies.indices where anomalies[i].sensor.isEmpty { anomalies[i].sensor = sensor }
        let nowMs = max(Int64(timeNs / 1_000_000), anomalies.map(\.timeMs).max() ?? 0)
        let updates = fileIntoIncidents(&anomalies, nowMs: nowMs, lost: lost)
        if !anomalies.isEmpty {
            for anomaly in anomalies { metrics.count(anomaly) }
            anomaliesTotal += Int64(anomalies.count)
            if let sink, !sink.enqueue(anomalies: anomalies) {
                logger.error("anomalies could not be queued for the store", metadata: ["count": "\(anomalies.count)"])
            }
        }
        hand(updates)
    }

    /// Replaces the suppression rules; anomalies found from now on are
    /// matched against them, and the detector keeps the vectors they match
    /// so the next retraining learns them.
    public func setSuppressions(_ rules: [Suppression]) {
        suppressions = rules
        detector?.setExpected(rules)
    }

    /// Marks the anomalies a rule matches suppressed (they are stored, in no
    /// incident), files the rest into incidents, and returns the changes.
    private func fileIntoIncidents(_ anomalies: inout [Anomaly], nowMs: Int64, lost: SensorLoss) -> [IncidentUpdate] {
        var open: [Anomaly] = []
        var positions: [Int] = []
        for i in anomalies.indices {
            // The detector marks what its rules match before it groups anomalies.
            if anomalies[i].suppressed || suppressions.contains(where: { $0.matches(anomalies[i], nowMs: nowMs) }) {
                anomalies[i].suppressed = true
                metrics.suppressed.increment()
            } else {
                open.append(anomalies[i])
                positions.append(i)
            }
        }
        let updates = incidents.observe(&open, nowMs: nowMs, lost: lost)
        for (k, i) in positions.enumerated() { anomalies[i].incidentUID = open[k].incidentUID }
        return updates
    }

    /// Closes the incidents quiet for a whole gap: the server's clock tick,
    /// for times no batch arrives. Incidents carry their anomalies' times,
    /// which are the batches' clock; a capture's clock can be far from the
    /// server's (eBPF's is the monotonic clock plus an offset taken at
    /// start, and stops while a VM is suspended), so the quiet is measured on
    /// that clock: the latest batch's time plus the time since it came.
    /// `nowMs` (the server's clock) is used until a batch has come.
    public func expireIncidents(nowMs: Int64) {
        hand(incidents.expire(nowMs: batchClockMs ?? nowMs))
    }

    /// The batches' clock now, ms, if a batch has come. The time since the
    /// batch is the monotonic clock's, which stops while the machine is
    /// suspended as eBPF's does, so a resumed sensor's first tick does not
    /// see the suspension as quiet.
    var batchClockMs: Int64? {
        batchClock.map { Int64($0.timeNs / 1_000_000) + $0.at.duration(to: SuspendingClock.now).wholeMilliseconds }
    }

    /// Closes every open incident, as at the end of a file; returns the changes.
    @discardableResult
    public func closeIncidents() -> [IncidentUpdate] {
        let updates = incidents.closeAll()
        hand(updates)
        return updates
    }

    /// Open incidents now.
    public var openIncidentCount: Int { incidents.openCount }

    private func hand(_ updates: [IncidentUpdate]) {
        guard !updates.isEmpty else { return }
        metrics.count(updates, open: incidents.openCount, closedEarly: incidents.closedEarly)
        if let sink, !sink.enqueue(incidents: updates) {
            logger.error("incident changes could not be queued for the store", metadata: ["count": "\(updates.count)"])
        }
    }

    private func detect(_ batch: FlowBatch, changes: [FlowChange]) -> [Anomaly] {
        guard detector != nil else { return [] }
        let start = ContinuousClock.now
        let anomalies = detector!.process(batch, changes: changes, flows: flows)
        metrics.scoreDuration.record(duration: ContinuousClock.now - start)
        metrics.scored.increment(by: Int64(batch.records.count))
        metrics.countTracker(detector!.trackerStatistics)
        updateModelGauges()
        saveModelIfNew()
        return anomalies
    }

    /// Packet and byte counters from the ledger's deltas; flow and loss
    /// counters from the source's cumulative statistics, as increments
    /// since its previous batch. Returns what was lost since then (packets:
    /// table full, capture and interface drops; flow records missing from
    /// exporters), which open incidents carry.
    private func account(_ batch: FlowBatch, changes: [FlowChange], mode: String) -> SensorLoss {
        let m = metrics.mode(mode)
        var untracked = 0
        // Summed first: the counters move once per batch, not per change.
        var sum = FlowDelta.zero
        for i in changes.indices {
            if !changes[i].tracked { untracked += 1 }
            sum = sum.adding(changes[i].delta)
        }
        m.count(sum)
        packetsTotal = packetsTotal.addingSaturated(sum.packets)
        bytesTotal = bytesTotal.addingSaturated(sum.bytes)
        if untracked > 0 { metrics.untracked.increment(by: Int64(untracked)) }
        let s = batch.statistics
        let p = lastStatistics[mode] ?? CaptureStatistics()
        // A total below the previous one means the source restarted its count.
        func delta(_ a: UInt64, _ b: UInt64) -> Int64 { Int64(clamping: a >= b ? a - b : a) }
        m.flowsStarted.increment(by: delta(s.flowsStarted, p.flowsStarted))
        m.flowsEnded.increment(by: delta(s.flowsEnded, p.flowsEnded))
        let lost = (delta(s.tableFull, p.tableFull), delta(s.captureDrops, p.captureDrops), delta(s.interfaceDrops, p.interfaceDrops))
        m.tableFull.increment(by: lost.0)
        m.captureDrops.increment(by: lost.1)
        m.interfaceDrops.increment(by: lost.2)
        m.notIP.increment(by: delta(s.notIP, p.notIP))
        m.malformed.increment(by: delta(s.malformed, p.malformed))
        // Series only some sources have: made when their total is first non-zero.
        func addOnceSeen(_ total: KeyPath<CaptureStatistics, UInt64>, to counter: () -> Counter) {
            if s[keyPath: total] > 0 || p[keyPath: total] > 0 { counter().increment(by: delta(s[keyPath: total], p[keyPath: total])) }
        }
        addOnceSeen(\.ringBufferPackets) { m.ringBuffer }
        addOnceSeen(\.ringBufferSlotLocked) { m.slotLocked }
        addOnceSeen(\.packetsAggregated) { m.aggregatedPackets }
        addOnceSeen(\.bytesAggregated) { m.aggregatedBytes }
        addOnceSeen(\.forwardedSeen) { m.forwardedSeen }
        lastStatistics[mode] = s
        activeByMode[mode] = batch.activeFlows
        m.activeFlows.record(batch.activeFlows)
        if let entries = batch.mapEntries { m.mapEntries.record(entries) }
        if let duration = batch.pollDurationNs { m.drainDuration.recordNanoseconds(Int64(clamping: duration)) }
        return SensorLoss(packets: UInt64(lost.0) &+ UInt64(lost.1) &+ UInt64(lost.2),
                          flowRecords: UInt64(delta(s.missingRecords, p.missingRecords)))
    }

    /// Hands glibc's free pages back to the kernel every few seconds.
    private func trimHeapIfDue() {
        guard ContinuousClock.now - lastTrim >= .seconds(5) else { return }
        ff_heap_trim()
        lastTrim = .now
    }

    /// Keeps the model when learning ends or it changes, so a restart resumes with it.
    private func saveModelIfNew() {
        guard let sink, let detector, let version = detector.apiStatus.version, version != savedModelVersion,
              let json = detector.modelJSON() else { return }
        savedModelVersion = version
        let sensor = self.sensor, logger = self.logger, errors = metrics.modelSaveErrors
        Task {
            do {
                try await sink.saveModel(sensor: sensor, description: "version \(version)", body: json)
            } catch {
                errors.increment()
                logger.warning("model not saved", metadata: ["error": "\(error)"])
            }
        }
    }

    private func updateModelGauges() {
        guard let status = detector?.apiStatus else { return }
        published.withLock { $0.modelStatus = status }
        metrics.learning.record(status.state == .learning ? 1 : 0)
        if let trained = status.trainedAt.flatMap(Timestamp.parseRFC3339) {
            metrics.modelAge.record(max(0, Date().timeIntervalSince1970 - Double(trained) / 1e9))
        }
    }

    /// Open flows across modes, as their sources last reported them.
    public var activeFlowCount: Int { activeByMode.values.reduce(0, +) }

    /// Each mode's cumulative capture statistics and open flows, as of its latest batch.
    public var captureAccounting: [String: CaptureAccounting] {
        lastStatistics.reduce(into: [:]) { out, entry in
            out[entry.key] = CaptureAccounting(statistics: entry.value, activeFlows: activeByMode[entry.key] ?? 0)
        }
    }

    /// The open flows, busiest first, each with the mode that reports it.
    /// Picks the busiest `limit` in one pass, holding at most `limit`
    /// entries: sorting every open flow would copy a million of them for one
    /// API request.
    public func openFlows(limit: Int) -> [FlowLedger.Entry] {
        guard limit > 0 else { return [] }
        // A min-heap by bytes: its root is the least busy of those kept.
        var heap: [FlowLedger.Entry] = []
        heap.reserveCapacity(min(limit, flows.count))
        func less(_ i: Int, _ j: Int) -> Bool { heap[i].record.bytes < heap[j].record.bytes }
        for entry in flows.openFlows {
            if heap.count < limit {
                heap.append(entry)
                var child = heap.count - 1
                while child > 0, less(child, (child - 1) / 2) {
                    heap.swapAt(child, (child - 1) / 2)
                    child = (child - 1) / 2
                }
            } else if entry.record.bytes > heap[0].record.bytes {
                heap[0] = entry
                var parent = 0
                while true {
                    let l = 2 * parent + 1, r = l + 1
                    var least = parent
                    if l < heap.count, less(l, least) { least = l }
                    if r < heap.count, less(r, least) { least = r }
                    if least == parent { break }
                    heap.swapAt(parent, least)
                    parent = least
                }
            }
        }
        return heap.sorted { $0.record.bytes > $1.record.bytes }
    }

    /// The detector's state; learning when the pipeline has no detector.
    public var modelStatus: ModelStatus { detector?.apiStatus ?? ModelStatus(state: .learning) }

    /// ``modelStatus`` as of the latest batch or retraining, without waiting
    /// for the batch being scored now.
    public nonisolated var latestModelStatus: ModelStatus { published.withLock { $0.modelStatus } }

    /// Totals, open flows, accounting and model state as of the latest
    /// batch, without waiting for the batch being scored now.
    public nonisolated var snapshot: PipelineSnapshot { published.withLock { $0 } }

    /// Publishes what ``snapshot`` reads; after every batch. The busiest
    /// open flows are made again only when a request asked since the last time.
    private func publish() {
        let totals = (packetsTotal, bytesTotal, anomaliesTotal, activeFlowCount, captureAccounting)
        published.withLock {
            ($0.packetsTotal, $0.bytesTotal, $0.anomaliesTotal, $0.activeFlows, $0.captureAccounting) = totals
        }
        if publishedFlows.withLock({ $0?.wanted ?? false }) { publishBusiestOpenFlows() }
    }

    /// How many flows ``busiestOpenFlows()`` lists at most.
    public static let busiestFlowsLimit = 10_000
    /// How old a published list may be before a request waits for a new one.
    static let busiestFlowsMaxAge = Duration.seconds(10)

    @discardableResult
    private func publishBusiestOpenFlows() -> [FlowLedger.Entry] {
        let entries = openFlows(limit: Self.busiestFlowsLimit)
        publishedFlows.withLock { $0 = (entries, ContinuousClock.now, false) }
        return entries
    }

    /// The busiest open flows (at most ``busiestFlowsLimit``), busiest
    /// first, without waiting for the batch being scored: the list made
    /// after the latest batch that followed an earlier call, so while
    /// someone keeps asking it is one poll old at most. Only the first call,
    /// or one after ``busiestFlowsMaxAge`` without any, waits for the
    /// pipeline to make it.
    public nonisolated func busiestOpenFlows() async -> [FlowLedger.Entry] {
        let ready = publishedFlows.withLock { state -> [FlowLedger.Entry]? in
            guard let current = state, ContinuousClock.now - current.madeAt < Self.busiestFlowsMaxAge else { return nil }
            state!.wanted = true
            return current.entries
        }
        if let ready { return ready }
        return await publishBusiestOpenFlows()
    }

    /// Retrains now and keeps the new model; returns the status after.
    public func retrain() async -> ModelStatus {
        guard detector != nil else { return modelStatus }
        detector!.retrain(nowNs: WallClock.nowNs())
        updateModelGauges()
        let status = modelStatus
        savedModelVersion = status.version
        if let sink, let json = detector!.modelJSON() {
            do {
                try await sink.saveModel(sensor: sensor, description: "version \(status.version.map(String.init) ?? "?")", body: json)
            } catch {
                metrics.modelSaveErrors.increment()
                logger.warning("model not saved", metadata: ["error": "\(error)"])
            }
        }
        return status
    }
}

/// The pipeline's totals and state as of its latest batch (``Pipeline/snapshot``).
public struct PipelineSnapshot: Sendable {
    /// Packets and bytes counted into flows so far, every mode together.
    public var packetsTotal: UInt64 = 0
    public var bytesTotal: UInt64 = 0
    /// Anomalies found so far.
    public var anomaliesTotal: Int64 = 0
    /// Open flows across modes, as their sources last reported them.
    public var activeFlows = 0
    /// Each mode's cumulative capture statistics and open flows.
    public var captureAccounting: [String: CaptureAccounting] = [:]
    /// The detector's state.
    public var modelStatus: ModelStatus
}
