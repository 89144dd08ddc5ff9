public import CoreMetrics
import Foundation
public import Prometheus
import Synchronization

/// FlowForest's metrics: one Prometheus registry and a swift-metrics factory
/// over it that gives every series its help text (Prometheus lint wants one,
/// and the plain `PrometheusMetricsFactory` leaves it empty).
///
/// Pass ``factory`` to every library that takes a metrics factory (capture
/// sources, the store writer); `/metrics` renders ``registry``.
public final class FlowForestMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    public let factory: any MetricsFactory
    private let interfaces = Mutex<[String: [String]]>([:])

    /// Help text by metric name. A name missing here still works, with a generic help text.
    static let help: [String: String] = [
        "flowforest_packets_total": "Packets counted into flows, by capture mode and direction (forward = sent by the initiator).",
        "flowforest_bytes_total": "IP-layer bytes counted into flows, by capture mode and direction.",
        "flowforest_flows_started_total": "Flows started, by capture mode.",
        "flowforest_flows_ended_total": "Flows ended, by capture mode.",
        "flowforest_active_flows": "Flows open at the last poll, by capture mode.",
        "flowforest_capture_info": "Always 1: the capture mode and each interface the sensor captures on.",
        "flowforest_map_entries": "Entries in the kernel flow map at the last poll.",
        "flowforest_map_full_packets_total": "Packets lost because the flow table or kernel map was full (in eBPF mode: sent to the ring buffer, its flow not inserted or its slot locked too long, and that was full too).",
        "flowforest_capture_drops_total": "Packets dropped before FlowForest saw them, by mode and where (capture buffer or interface).",
        "flowforest_packets_not_flows_total": "Packets seen but not part of any flow, by mode and reason (not_ip, malformed).",
        "flowforest_ringbuf_packets_total": "Packets delivered through the eBPF ring buffer because their flow could not be inserted or its slot stayed locked past the spin bound.",
        "flowforest_overflow_packets_total": "Packets of new flows not admitted into the kernel flow map (past its admission limit) and folded into per-victim overflow aggregates (not lost).",
        "flowforest_overflow_bytes_total": "IP-layer bytes of the packets folded into overflow aggregates.",
        "flowforest_forwarded_seen_packets_total": "Forwarded packets seen leaving a watched interface after they were counted entering another: counted once.",
        "flowforest_flow_records_untracked_total": "Records of new flows not held open in user space because --max-flows flows already were (their packets still counted).",
        "flowforest_vectors_scored_total": "Flow records handed to the detector, active ones included (vectors scored per kind: /api/model details).",
        "flowforest_anomalies_total": "Anomalies detected, by vector kind and severity.",
        "flowforest_anomalies_suppressed_total": "Anomalies a suppression rule matched: stored and marked suppressed, in no incident and no alert.",
        "flowforest_incidents_total": "Incident changes, by change (opened, updated, closed).",
        "flowforest_open_incidents": "Incidents open now (anomalies joined them within the quiet gap).",
        "flowforest_incidents_closed_early_total": "Incidents closed before their quiet gap because the most open incidents were already open.",
        "flowforest_score_duration_seconds": "Time the detector spent on one batch of flow records.",
        "flowforest_drain_duration_seconds": "Time one poll of the capture source took.",
        "flowforest_store_errors_total": "Failed store operations (each retried write counts once), by operation.",
        "flowforest_store_rows_written_total": "Rows written to the store, by table.",
        "flowforest_store_dropped_total": "Rows never written: queue full or store still down at shutdown, by table.",
        "flowforest_store_pending_rows": "Rows waiting in the store writer's queue, by table.",
        "flowforest_store_healthy": "1 while the store takes writes to the database file it opened, 0 while writes fail or that file was deleted or replaced.",
        "flowforest_login_failures_total": "Refused dashboard sign-ins, by reason (wrong_password, throttled).",
        "flowforest_store_flows_expired_total": "Flow records deleted by retention.",
        "flowforest_model_age_seconds": "Age of the detection model in use (0 while learning).",
        "flowforest_detector_learning": "1 while the detector is in its learning window, else 0.",
        "flowforest_ingest_records_total": "Records accepted by POST /api/traffic.",
        "flowforest_ingest_table_full_packets_total": "Ingested packets not counted into a flow because the ingest flow table already held --max-flows flows.",
        "flowforest_export_messages_total": "IPFIX messages sent, by collector.",
        "flowforest_export_records_total": "IPFIX data records sent, by collector.",
        "flowforest_export_errors_total": "IPFIX messages that could not be sent, by collector.",
        "flowforest_collector_datagrams_total": "NetFlow/IPFIX datagrams received, by exporter and version.",
        "flowforest_collector_records_total": "NetFlow/IPFIX data records decoded, by exporter.",
        "flowforest_collector_sequence_gaps_total": "Gaps in an exporter's sequence numbers (export datagrams lost on the way), by exporter.",
        "flowforest_collector_sequence_missing_total": "Datagrams (v9) or records (v5, IPFIX) the sequence numbers say were lost, by exporter.",
        "flowforest_collector_waiting_sets": "Data sets held for a template that has not arrived yet, by exporter.",
        "flowforest_collector_dropped_sets_total": "Data sets dropped: template not arrived in time, or the hold full, by exporter and reason.",
        "flowforest_collector_malformed_total": "Datagrams or parts of datagrams not decoded, by exporter and reason.",
        "flowforest_collector_template_refusals_total": "Templates refused because the exporter holds the maximum, by exporter.",
        "flowforest_collector_sequence_resets_total": "Sequence numbers that jumped too far to be loss (an exporter restart), by exporter.",
        "flowforest_collector_duplicate_records_total": "Records of datagrams that repeated one already taken, not added again, by exporter.",
        "flowforest_collector_domains_replaced_total": "Observation domains (IPFIX sessions) silent 10 minutes, given up with their templates when the exporter needed room, by exporter.",
        "flowforest_http_connections_refused_total": "HTTP connections closed as accepted: the client's, the remote or the loopback limit reached, by limit.",
        "flowforest_http_stalled_connections_closed_total": "HTTP connections closed because their answers stopped draining (the client stopped reading).",
        "flowforest_collector_sampling_interval": "Sampling interval last announced by the exporter (1: unsampled); counts are multiplied by it.",
        "flowforest_collector_refused_datagrams_total": "Datagrams refused because the collector tracks its maximum of exporters.",
        "flowforest_collector_exporters": "Exporters the collector tracks.",
        "flowforest_collector_socket_drops_total": "NetFlow/IPFIX datagrams the kernel dropped because the collector's receive queue was full, by listening endpoint.",
        "flowforest_export_dropped_records_total": "IPFIX data records not sent (queue full, send failed or collector unreachable), by collector.",
        "flowforest_ingest_rejected_requests_total": "POST /api/traffic requests refused, by reason.",
        "flowforest_sse_clients": "Clients connected to /api/events.",
        "flowforest_sse_dropped_events_total": "Events a client of /api/events lost: past 256 or 1 MiB held for it unread, or not encodable.",
        "flowforest_tracker_evictions_total": "Detector state evicted while still recent to stay within its bound, by table (host, destination, beacon_pair: --max-hosts; address_memory: the per-address persistence bits and last reports).",
        "flowforest_tracker_entries": "Detector state held, by table.",
        "flowforest_incident_feed_dropped_total": "Stored incident changes an event or alert consumer lost because it fell too far behind.",
        "flowforest_live_anomalies_dropped_total": "Stored anomalies whose live event was lost because the event hub fell too far behind the store writer.",
        "flowforest_alerts_sent_total": "Alerts (Alertmanager) or incident changes (webhook) delivered, by kind and destination.",
        "flowforest_alerts_failed_total": "Failed posts to an alert destination (each retried), by kind and destination.",
        "flowforest_alerts_dropped_total": "Alerts never delivered: the destination's queue was full, or it was still down at shutdown.",
        "flowforest_alerts_pending": "Alerts waiting for an alert destination, by kind and destination.",
        "flowforest_build_info": "Build information; the value is always 1.",
        "process_start_time_seconds": "Start time of the process since the Unix epoch in seconds.",
    ]

    static let durationBuckets: [Duration] = [
        .microseconds(50), .microseconds(100), .microseconds(250), .microseconds(500),
        .milliseconds(1), .microseconds(2500), .milliseconds(5), .milliseconds(10), .milliseconds(25),
        .milliseconds(50), .milliseconds(100), .milliseconds(250), .seconds(1), .seconds(5),
    ]

    /// Publishes which mode captures on which interfaces (`flowforest_capture_info`).
    /// `/api/status` serves the same facts.
    public func recordCapture(mode: String, interfaces: [String]) {
        self.interfaces.withLock { $0[mode, default: []] += interfaces }
        for interface in interfaces {
            Gauge(label: "flowforest_capture_info", dimensions: [("mode", mode), ("interface", interface)], factory: factory).record(1)
        }
    }

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        self.factory = HelpfulFactory(registry: registry)
    }

    /// The interfaces each capture mode captures on, as recorded by ``recordCapture(mode:interfaces:)``.
    public var captureInterfaces: [String: [String]] { interfaces.withLock { $0 } }

    /// The Prometheus text exposition of every series.
    public func render() -> String { registry.emitToString() }

    static func helpText(_ name: String) -> String {
        help[name] ?? "FlowForest metric \(name)."
    }
}

/// A swift-metrics factory over a Prometheus registry that sets help texts.
struct HelpfulFactory: MetricsFactory {
    let registry: PrometheusCollectorRegistry

    func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        registry.makeCounter(name: label, labels: dimensions, help: FlowForestMetrics.helpText(label))
    }

    func makeFloatingPointCounter(label: String, dimensions: [(String, String)]) -> any FloatingPointCounterHandler {
        registry.makeCounter(name: label, labels: dimensions, help: FlowForestMetrics.helpText(label))
    }

    func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        if aggregate {
            return registry.makeValueHistogram(
                name: label, labels: dimensions,
                buckets: [0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 1, 10, 100, 1000, 10000],
                help: FlowForestMetrics.helpText(label))
        }
        return registry.makeGauge(name: label, labels: dimensions, help: FlowForestMetrics.helpText(label))
    }

    func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler {
        registry.makeGauge(name: label, labels: dimensions, help: FlowForestMetrics.helpText(label))
    }

    func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        registry.makeDurationHistogram(name: label, labels: dimensions, buckets: FlowForestMetrics.durationBuckets,
                                       help: FlowForestMetrics.helpText(label))
    }

    func destroyCounter(_ handler: any CounterHandler) {
        if let c = handler as? Prometheus.Counter { registry.unregisterCounter(c) }
    }

    func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) {
        if let c = handler as? Prometheus.Counter { registry.unregisterCounter(c) }
    }

    func destroyRecorder(_ handler: any RecorderHandler) {
        if let g = handler as? Prometheus.Gauge { registry.unregisterGauge(g) }
        if let h = handler as? ValueHistogram { registry.unregisterValueHistogram(h) }
    }

    func destroyMeter(_ handler: any MeterHandler) {
        if let g = handler as? Prometheus.Gauge { registry.unregisterGauge(g) }
    }

    func destroyTimer(_ handler: any TimerHandler) {
        if let h = handler as? DurationHistogram { registry.unregisterDurationHistogram(h) }
    }
}
