import CoreMetrics
import FlowForestCore
import Foundation
import Logging
import ServiceLifecycle

/// Sends incidents to one Alertmanager's v2 API (`POST /api/v2/alerts`).
///
/// Reads stored incident changes from the writer's feed and keeps, per
/// incident, the latest state not yet delivered: an outage only delays
/// alerts, and a long one costs nothing but the newest state of each
/// incident (at most ``AlertConfiguration/maxPending`` incidents; more are
/// dropped oldest first and counted). An open incident's alert is posted
/// again every ``AlertConfiguration/repostInterval`` so Alertmanager keeps
/// it firing; its close posts it with `endsAt`, which resolves it. Nothing
/// here runs on the detection path.
actor AlertmanagerRoute: Service {
    struct Firing {
        var incident: Incident
        var labels: [String: String]
        var postedAt: ContinuousClock.Instant
    }

    let url: URL
    private let configuration: AlertConfiguration
    private let links: AlertLinks
    private let feed: AsyncStream<[IncidentUpdate]>
    private let poster: HTTPPoster
    private let metrics: AlertMetrics
    private let logger: Logger
    /// Latest undelivered state per incident uid, oldest change first.
    private var pending: [String: Incident] = [:]
    private var order: [String] = []
    /// Incidents whose alert Alertmanager holds as firing.
    private var firing: [String: Firing] = [:]
    private let loop: DeliveryLoop

    init(url: URL, destination: String, configuration: AlertConfiguration, links: AlertLinks, feed: AsyncStream<[IncidentUpdate]>,
         metricsFactory: any MetricsFactory, logger: Logger) {
        self.url = url.appendingPathComponent("api/v2/alerts")
        self.configuration = configuration
        self.links = links
        self.feed = feed
        self.poster = HTTPPoster(timeout: configuration.requestTimeout)
        self.metrics = AlertMetrics(kind: "alertmanager", destination: destination, factory: metricsFactory)
        self.logger = logger
        // Wakes every second too, to see whether a re-post is due.
        loop = DeliveryLoop(configuration: configuration, recheck: .seconds(1))
    }

    /// Delivers until the feed ends (the writer stopped), then tries once more.
    nonisolated func run() async throws {
        await loop.run(feed: feed, accept: { await self.accept($0) }, deliver: { await self.deliver() },
                       finish: { await self.finalDelivery() })
    }

    func accept(_ updates: [IncidentUpdate]) {
        for update in updates {
            let uid = update.incident.uid
            if pending[uid] == nil { order.append(uid) }
            pending[uid] = update.incident
        }
        while order.count > configuration.maxPending {
            let oldest = order.removeFirst()
            pending[oldest] = nil
            metrics.dropped.increment()
        }
        metrics.pending.record(order.count)
        loop.poke()
    }

    /// Posts pending changes and due re-posts in one request.
    func deliver() async -> DeliveryOutcome {
        let now = ContinuousClock.now
        let due = firing.filter { pending[$0.key] == nil && now - $0.value.postedAt >= configuration.repostInterval }
        guard !order.isEmpty || !due.isEmpty else { return .delivered }
        let batch = order.prefix(500).compactMap { pending[$0] }
        var alerts: [AlertmanagerAlert] = []
        for incident in batch {
            let labels = AlertmanagerAlert.labels(incident)
            // A changed label set is a new alert to Alertmanager: resolve the old one.
            if let previous = firing[incident.uid], previous.labels != labels {
                alerts.append(AlertmanagerAlert(previous.incident, labels: previous.labels, links: links, endsAt: Date()))
            }
            alerts.append(AlertmanagerAlert(incident, labels: labels, links: links, endsAt: incident.state == .closed ? Date() : nil))
        }
        for (_, f) in due { alerts.append(AlertmanagerAlert(f.incident, labels: f.labels, links: links, endsAt: nil)) }
        do {
            try await poster.post(try JSONEncoder().encode(alerts), to: url)
        } catch {
            metrics.failed.increment()
            logger.warning("Alertmanager post failed; will retry", metadata: ["url": "\(url)", "error": "\(error)", "pending": "\(order.count)"])
            return .failed(progressed: false)
        }
        metrics.sent.increment(by: Int64(alerts.count))
        for incident in batch {
            // Only what was posted leaves the queue; a newer change that came meanwhile stays.
            if pending[incident.uid] == incident {
                pending[incident.uid] = nil
                order.removeAll { $0 == incident.uid }
            }
            if incident.state == .closed {
                firing[incident.uid] = nil
            } else {
                firing[incident.uid] = Firing(incident: incident, labels: AlertmanagerAlert.labels(incident), postedAt: now)
            }
        }
        for (uid, _) in due { firing[uid]?.postedAt = now }
        metrics.pending.record(order.count)
        return .delivered
    }

    private func finalDelivery() async {
        if !order.isEmpty, await deliver() != .delivered {
            metrics.dropped.increment(by: Int64(order.count))
            logger.error("alerts not delivered to Alertmanager by shutdown", metadata: ["url": "\(url)", "count": "\(order.count)"])
        }
    }
}

/// One alert in Alertmanager's v2 `postableAlert` shape.
struct AlertmanagerAlert: Encodable {
    var labels: [String: String]
    var annotations: [String: String]
    var startsAt: String
    var endsAt: String?
    var generatorURL: String

    init(_ incident: Incident, labels: [String: String], links: AlertLinks, endsAt: Date?) {
        self.labels = labels
        let link = links.incident(incident)
        annotations = [
            "summary": AlertText.summary(incident),
            "explanation": incident.explanation.map(\.text).joined(separator: "; "),
            "dashboard": link,
            "lost_packets": String(incident.lostPackets),
            "lost_flow_records": String(incident.lostFlowRecords),
        ]
        startsAt = Timestamp.rfc3339(milliseconds: incident.firstSeenMs)
        self.endsAt = endsAt.map { Timestamp.rfc3339(milliseconds: Int64($0.timeIntervalSince1970 * 1000)) }
        generatorURL = link
    }

    /// The labels that identify an incident's alert.
    static func labels(_ incident: Incident) -> [String: String] {
        [
            "alertname": "FlowForestIncident",
            "label": incident.label.rawValue,
            "severity": incident.peakSeverity.rawValue,
            "sensor": incident.sensor,
            "actor": incident.actors.first?.description ?? "",
            "target": incident.targets.first?.description ?? "",
            "incident_id": incident.id.map(String.init) ?? incident.uid,
        ]
    }
}
