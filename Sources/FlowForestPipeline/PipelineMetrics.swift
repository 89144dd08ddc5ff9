import CoreMetrics
import FlowForestCore

/// The pipeline's metric handles, made once: detector and anomaly series at
/// start, each capture mode's series with its first batch.
struct PipelineMetrics {
    let scoreDuration: CoreMetrics.Timer
    let modelAge: Gauge
    let learning: Gauge
    let scored: Counter
    let modelSaveErrors: Counter
    private let anomalies: [AnomalyKind: [Severity: Counter]]
    private var modes: [String: ModeMetrics] = [:]
    private let factory: any MetricsFactory

    init(factory: any MetricsFactory) {
        self.factory = factory
        scoreDuration = CoreMetrics.Timer(label: "flowforest_score_duration_seconds", factory: factory)
        modelAge = Gauge(label: "flowforest_model_age_seconds", factory: factory)
        learning = Gauge(label: "flowforest_detector_learning", factory: factory)
        scored = Counter(label: "flowforest_vectors_scored_total", factory: factory)
        modelSaveErrors = Counter(label: "flowforest_store_errors_total", dimensions: [("operation", "model")], factory: factory)
        modelAge.record(0)
        scored.increment(by: 0)
        // Every kind and severity from the start, so rates and alerts see zeros, not gaps.
        var anomalies: [AnomalyKind: [Severity: Counter]] = [:]
        for kind in AnomalyKind.allCases {
            for severity in Severity.allCases {
                let c = Counter(label: "flowforest_anomalies_total",
                                dimensions: [("kind", kind.rawValue), ("severity", severity.rawValue)], factory: factory)
                c.increment(by: 0)
                anomalies[kind, default: [:]][severity] = c
            }
        }
        self.anomalies = anomalies
    }

    func count(_ anomaly: Anomaly) {
        anomalies[anomaly.kind]?[anomaly.severity]?.increment()
    }

    /// The series of one capture mode, made with its first batch.
    mutating func mode(_ mode: String) -> ModeMetrics {
        if let m = modes[mode] { return m }
        let m = ModeMetrics(mode: mode, factory: factory)
        modes[mode] = m
        return m
    }
}

/// One capture mode's packet, flow and loss series. A class so the series
/// only some sources have are made on first use, once.
final class ModeMetrics {
    let packets: (forward: Counter, reverse: Counter)
    let bytes: (forward: Counter, reverse: Counter)
    let flowsStarted: Counter
    let flowsEnded: Counter
    let tableFull: Counter
    let captureDrops: Counter
    let interfaceDrops: Counter
    let notIP: Counter
    let malformed: Counter
    let activeFlows: Gauge
    /// Series only the eBPF drainer has (a ring buffer, a kernel map it
    /// polls): made on first use, so other modes show none.
    private(set) lazy var ringBuffer = Counter(label: "flowforest_ringbuf_packets_total", dimensions: [("mode", mode)], factory: factory)
    private(set) lazy var mapEntries = Gauge(label: "flowforest_map_entries", dimensions: [("mode", mode)], factory: factory)
    private(set) lazy var drainDuration = CoreMetrics.Timer(label: "flowforest_drain_duration_seconds", dimensions: [("mode", mode)], factory: factory)
    private let mode: String
    private let factory: any MetricsFactory

    init(mode: String, factory: any MetricsFactory) {
        self.mode = mode
        self.factory = factory
        func counter(_ label: String, _ extra: [(String, String)] = []) -> Counter {
            Counter(label: label, dimensions: [("mode", mode)] + extra, factory: factory)
        }
        packets = (counter("flowforest_packets_total", [("direction", "forward")]),
                   counter("flowforest_packets_total", [("direction", "reverse")]))
        bytes = (counter("flowforest_bytes_total", [("direction", "forward")]),
                 counter("flowforest_bytes_total", [("direction", "reverse")]))
        flowsStarted = counter("flowforest_flows_started_total")
        flowsEnded = counter("flowforest_flows_ended_total")
        tableFull = counter("flowforest_map_full_packets_total")
        captureDrops = counter("flowforest_capture_drops_total", [("where", "capture")])
        interfaceDrops = counter("flowforest_capture_drops_total", [("where", "interface")])
        notIP = counter("flowforest_packets_not_flows_total", [("reason", "not_ip")])
        malformed = counter("flowforest_packets_not_flows_total", [("reason", "malformed")])
        activeFlows = Gauge(label: "flowforest_active_flows", dimensions: [("mode", mode)], factory: factory)
    }

    /// Adds what one record added to its flow.
    func count(_ delta: FlowDelta) {
        if delta.forwardPackets > 0 { packets.forward.increment(by: Int64(delta.forwardPackets)) }
        if delta.reversePackets > 0 { packets.reverse.increment(by: Int64(delta.reversePackets)) }
        if delta.forwardBytes > 0 { bytes.forward.increment(by: Int64(delta.forwardBytes)) }
        if delta.reverseBytes > 0 { bytes.reverse.increment(by: Int64(delta.reverseBytes)) }
    }
}
