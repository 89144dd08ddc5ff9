import CoreMetrics
import FlowForestCore
import FlowForestDetection

/// The pipeline's metric handles, made once: detector and anomaly series at
/// start, each capture mode's series with its first batch.
struct PipelineMetrics {
    let scoreDuration: CoreMetrics.Timer
    let modelAge: Gauge
    let learning: Gauge
    let scored: Counter
    let modelSaveErrors: Counter
    /// Anomalies a suppression rule matched.
    let suppressed: Counter
    /// Records of new flows the ledger had no room for (`--max-flows`).
    let untracked: Counter
    private let anomalies: [AnomalyKind: [Severity: Counter]]
    private var modes: [String: ModeMetrics] = [:]
    private let incidentChanges: [IncidentChange: Counter]
    private let openIncidents: Gauge
    private let incidentsClosedEarly: Counter
    private var closedEarlyReported: Int64 = 0
    /// Entries the host tracker evicted to stay within its limits, by table.
    private let trackerEvictions: (hosts: Counter, destinations: Counter, pairs: Counter)
    private let trackerEntries: (hosts: Gauge, destinations: Gauge, pairs: Gauge)
    private let addressMemoryEvictions: Counter
    private var trackerReported = HostTrackerStatistics()
    private let factory: any MetricsFactory

    init(factory: any MetricsFactory) {
        self.factory = factory
        scoreDuration = CoreMetrics.Timer(label: "flowforest_score_duration_seconds", factory: factory)
        modelAge = Gauge(label: "flowforest_model_age_seconds", factory: factory)
        learning = Gauge(label: "flowforest_detector_learning", factory: factory)
        scored = Counter(label: "flowforest_vectors_scored_total", factory: factory)
        modelSaveErrors = Counter(label: "flowforest_store_errors_total", dimensions: [("operation", "model")], factory: factory)
        suppressed = Counter(label: "flowforest_anomalies_suppressed_total", factory: factory)
        suppressed.increment(by: 0)
        untracked = Counter(label: "flowforest_flow_records_untracked_total", factory: factory)
        untracked.increment(by: 0)
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
        var changes: [IncidentChange: Counter] = [:]
        for change in IncidentChange.allCases {
            let c = Counter(label: "flowforest_incidents_total", dimensions: [("change", change.rawValue)], factory: factory)
            c.increment(by: 0)
            changes[change] = c
        }
        incidentChanges = changes
        openIncidents = Gauge(label: "flowforest_open_incidents", factory: factory)
        openIncidents.record(0)
        incidentsClosedEarly = Counter(label: "flowforest_incidents_closed_early_total", factory: factory)
        incidentsClosedEarly.increment(by: 0)
        func table<T>(_ make: (String) -> T) -> (hosts: T, destinations: T, pairs: T) {
            (make("host"), make("destination"), make("beacon_pair"))
        }
        trackerEvictions = table { Counter(label: "flowforest_tracker_evictions_total", dimensions: [("table", $0)], factory: factory) }
        trackerEntries = table { Gauge(label: "flowforest_tracker_entries", dimensions: [("table", $0)], factory: factory) }
        addressMemoryEvictions = Counter(label: "flowforest_tracker_evictions_total", dimensions: [("table", "address_memory")], factory: factory)
        for c in [trackerEvictions.hosts, trackerEvictions.destinations, trackerEvictions.pairs, addressMemoryEvictions] { c.increment(by: 0) }
    }

    /// Publishes the host tracker's table sizes and the evictions since the previous call.
    mutating func countTracker(_ s: HostTrackerStatistics) {
        let r = trackerReported
        trackerEvictions.hosts.increment(by: Int64(clamping: s.hostsEvicted &- r.hostsEvicted))
        trackerEvictions.destinations.increment(by: Int64(clamping: s.destinationsEvicted &- r.destinationsEvicted))
        trackerEvictions.pairs.increment(by: Int64(clamping: s.pairsEvicted &- r.pairsEvicted))
        addressMemoryEvictions.increment(by: Int64(clamping: s.addressMemoryEvicted &- r.addressMemoryEvicted))
        trackerEntries.hosts.record(s.trackedHosts)
        trackerEntries.destinations.record(s.trackedDestinations)
        trackerEntries.pairs.record(s.trackedPairs)
        trackerReported = s
    }

    /// Counts incident changes; `closedEarly` is the tracker's running total.
    mutating func count(_ updates: [IncidentUpdate], open: Int, closedEarly: Int64) {
        for update in updates { incidentChanges[update.change]?.increment() }
        openIncidents.record(open)
        if closedEarly > closedEarlyReported {
            incidentsClosedEarly.increment(by: closedEarly - closedEarlyReported)
            closedEarlyReported = closedEarly
        }
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
