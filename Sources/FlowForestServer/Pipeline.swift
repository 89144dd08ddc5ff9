import CoreMetrics
import FlowForestCore
import FlowForestStore
import Foundation
import Logging

/// The service's one path from flow batches to stored anomalies: local
/// capture and remote ingest both call ``process(_:mode:)``. It keeps the
/// open flows for the API, turns cumulative capture statistics into metric
/// increments, scores the batch and queues flows and anomalies for the store.
actor Pipeline {
    private var detector: any FlowDetector
    private let sensor: String
    private let writer: StoreWriter
    private let logger: Logger
    private let factory: any MetricsFactory

    /// Latest record of each open flow, by flow id (ingest ids start at 2^62,
    /// so they never meet capture ids).
    private(set) var activeFlows: [UInt64: (mode: String, record: FlowRecord)] = [:]
    private var lastStatistics: [String: CaptureStatistics] = [:]
    private var activeByMode: [String: Int] = [:]
    private(set) var packetsTotal: UInt64 = 0
    private(set) var bytesTotal: UInt64 = 0
    private(set) var anomaliesTotal: Int64 = 0
    private var counters: [String: Counter] = [:]
    private let scoreTimer: CoreMetrics.Timer
    private let modelAge: Gauge
    private let learning: Gauge
    private let scored: Counter
    private var savedModelVersion: Int?

    init(detector: any FlowDetector, sensor: String, writer: StoreWriter, logger: Logger, metricsFactory: any MetricsFactory) {
        self.detector = detector
        self.sensor = sensor
        self.writer = writer
        self.logger = logger
        self.factory = metricsFactory
        scoreTimer = CoreMetrics.Timer(label: "flowforest_score_duration_seconds", factory: metricsFactory)
        modelAge = Gauge(label: "flowforest_model_age_seconds", factory: metricsFactory)
        learning = Gauge(label: "flowforest_detector_learning", factory: metricsFactory)
        scored = Counter(label: "flowforest_vectors_scored_total", factory: metricsFactory)
        modelAge.record(0)
        learning.record(detector.apiStatus.state == .learning ? 1 : 0)
        scored.increment(by: 0)
        // Every kind and severity from the start, so rates and alerts see zeros, not gaps.
        var initial: [String: Counter] = [:]
        for kind in AnomalyKind.allCases {
            for severity in Severity.allCases {
                let dimensions = [("kind", kind.rawValue), ("severity", severity.rawValue)]
                let c = Counter(label: "flowforest_anomalies_total", dimensions: dimensions, factory: metricsFactory)
                c.increment(by: 0)
                initial["flowforest_anomalies_total" + dimensions.map { "|\($0.0)=\($0.1)" }.joined()] = c
            }
        }
        counters = initial
    }

    private func counter(_ name: String, _ dimensions: [(String, String)]) -> Counter {
        let key = name + dimensions.map { "|\($0.0)=\($0.1)" }.joined()
        if let c = counters[key] { return c }
        let c = Counter(label: name, dimensions: dimensions, factory: factory)
        counters[key] = c
        return c
    }

    /// Feeds one batch through accounting, detection and the store queue;
    /// returns the anomalies found.
    @discardableResult
    func process(_ batch: FlowBatch, mode: String) -> [Anomaly] {
        account(batch, mode: mode)
        let start = ContinuousClock.now
        let anomalies = detector.process(batch)
        scoreTimer.record(duration: ContinuousClock.now - start)
        scored.increment(by: Int64(batch.records.count))
        updateModelGauges()
        saveModelIfNew()

        let finished = batch.records.filter { $0.state != .active }
        writer.enqueue(flows: finished.map { StoredFlow(sensor: sensor, record: $0) })
        if !anomalies.isEmpty {
            var stamped = anomalies
            for i in stamped.indices where stamped[i].sensor.isEmpty { stamped[i].sensor = sensor }
            for a in stamped {
                counter("flowforest_anomalies_total", [("kind", a.kind.rawValue), ("severity", a.severity.rawValue)]).increment()
            }
            anomaliesTotal += Int64(stamped.count)
            if !writer.enqueue(anomalies: stamped) {
                logger.error("anomalies could not be queued for the store", metadata: ["count": "\(stamped.count)"])
            }
            return stamped
        }
        return []
    }

    private func account(_ batch: FlowBatch, mode: String) {
        for record in batch.records {
            let previous = activeFlows[record.id]?.record
            let df = record.forward.packets &- (previous?.forward.packets ?? 0)
            let dr = record.reverse.packets &- (previous?.reverse.packets ?? 0)
            let bf = record.forward.bytes &- (previous?.forward.bytes ?? 0)
            let br = record.reverse.bytes &- (previous?.reverse.bytes ?? 0)
            // Totals never shrink for one flow; a smaller total means a reused id.
            let fwdPackets = df > record.forward.packets ? record.forward.packets : df
            let revPackets = dr > record.reverse.packets ? record.reverse.packets : dr
            let fwdBytes = bf > record.forward.bytes ? record.forward.bytes : bf
            let revBytes = br > record.reverse.bytes ? record.reverse.bytes : br
            if fwdPackets > 0 { counter("flowforest_packets_total", [("mode", mode), ("direction", "forward")]).increment(by: Int64(fwdPackets)) }
            if revPackets > 0 { counter("flowforest_packets_total", [("mode", mode), ("direction", "reverse")]).increment(by: Int64(revPackets)) }
            if fwdBytes > 0 { counter("flowforest_bytes_total", [("mode", mode), ("direction", "forward")]).increment(by: Int64(fwdBytes)) }
            if revBytes > 0 { counter("flowforest_bytes_total", [("mode", mode), ("direction", "reverse")]).increment(by: Int64(revBytes)) }
            packetsTotal += fwdPackets + revPackets
            bytesTotal += fwdBytes + revBytes
            if record.state == .ended {
                activeFlows[record.id] = nil
            } else {
                activeFlows[record.id] = (mode, record)
            }
        }
        let s = batch.statistics
        let p = lastStatistics[mode] ?? CaptureStatistics()
        func delta(_ a: UInt64, _ b: UInt64) -> Int64 { a >= b ? Int64(a - b) : Int64(a) }
        counter("flowforest_flows_started_total", [("mode", mode)]).increment(by: delta(s.flowsStarted, p.flowsStarted))
        counter("flowforest_flows_ended_total", [("mode", mode)]).increment(by: delta(s.flowsEnded, p.flowsEnded))
        counter("flowforest_map_full_packets_total", [("mode", mode)]).increment(by: delta(s.tableFull, p.tableFull))
        counter("flowforest_capture_drops_total", [("mode", mode), ("where", "capture")]).increment(by: delta(s.captureDrops, p.captureDrops))
        counter("flowforest_capture_drops_total", [("mode", mode), ("where", "interface")]).increment(by: delta(s.interfaceDrops, p.interfaceDrops))
        counter("flowforest_packets_not_flows_total", [("mode", mode), ("reason", "not_ip")]).increment(by: delta(s.notIP, p.notIP))
        counter("flowforest_packets_not_flows_total", [("mode", mode), ("reason", "malformed")]).increment(by: delta(s.malformed, p.malformed))
        if s.ringBufferPackets > 0 || p.ringBufferPackets > 0 {
            counter("flowforest_ringbuf_packets_total", [("mode", mode)]).increment(by: delta(s.ringBufferPackets, p.ringBufferPackets))
        }
        lastStatistics[mode] = s
        activeByMode[mode] = batch.activeFlows
        Gauge(label: "flowforest_active_flows", dimensions: [("mode", mode)], factory: factory).record(batch.activeFlows)
        if let duration = batch.pollDurationNs {
            // Only the eBPF drainer polls a kernel map: its open flows are the map's entries.
            Gauge(label: "flowforest_map_entries", dimensions: [("mode", mode)], factory: factory).record(batch.activeFlows)
            CoreMetrics.Timer(label: "flowforest_drain_duration_seconds", dimensions: [("mode", mode)], factory: factory)
                .recordNanoseconds(Int64(clamping: duration))
        }
    }

    /// Stores the model when learning ends or it changes, so a restart resumes with it.
    private func saveModelIfNew() {
        guard let version = detector.apiStatus.version, version != savedModelVersion, let json = detector.modelJSON() else { return }
        savedModelVersion = version
        let store = writer.store, sensor = self.sensor, logger = self.logger
        let errors = counter("flowforest_store_errors_total", [("operation", "model")])
        Task {
            do {
                try await store.saveModel(sensor: sensor, description: "version \(version)", body: json)
            } catch {
                errors.increment()
                logger.warning("model not saved", metadata: ["error": "\(error)"])
            }
        }
    }

    private func updateModelGauges() {
        let status = detector.apiStatus
        learning.record(status.state == .learning ? 1 : 0)
        if let trained = status.trainedAt.flatMap(Timestamp.parseRFC3339) {
            modelAge.record(max(0, Date().timeIntervalSince1970 - Double(trained) / 1e9))
        }
    }

    /// Open flows across modes.
    var activeFlowCount: Int { activeByMode.values.reduce(0, +) }

    /// Each mode's cumulative capture statistics and open flows, as of its latest batch.
    var captureAccounting: [String: (statistics: CaptureStatistics, activeFlows: Int)] {
        lastStatistics.reduce(into: [:]) { out, entry in out[entry.key] = (entry.value, activeByMode[entry.key] ?? 0) }
    }

    /// The open flows, busiest first.
    func openFlows(limit: Int) -> [(mode: String, record: FlowRecord)] {
        Array(activeFlows.values.sorted { $0.record.bytes > $1.record.bytes }.prefix(limit))
    }

    var modelStatus: ModelStatus { detector.apiStatus }

    /// Retrains now and saves the new model; returns the status after.
    func retrain(store: Store) async -> ModelStatus {
        detector.retrain(nowNs: UInt64(Date().timeIntervalSince1970 * 1e9))
        updateModelGauges()
        let status = detector.apiStatus
        savedModelVersion = status.version
        if let json = detector.modelJSON() {
            do {
                try await store.saveModel(sensor: sensor, description: "version \(status.version.map(String.init) ?? "?")", body: json)
            } catch {
                counter("flowforest_store_errors_total", [("operation", "model")]).increment()
                logger.warning("model not saved", metadata: ["error": "\(error)"])
            }
        }
        return status
    }
}
