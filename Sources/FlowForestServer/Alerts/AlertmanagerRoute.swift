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
/// dropped oldest first and counted, a close of a firing alert last, since
/// without it the alert would fire for ever). An open incident's alert is
/// posted again every ``AlertConfiguration/repostInterval`` so Alertmanager
/// keeps it firing, at most ``batchSize`` a post; its close posts it with
/// `endsAt`, which resolves it. At most `maxPending` alerts are held as
/// firing: past that, the ones changed longest ago are resolved (their close
/// was lost upstream, or they are the oldest of a storm). A batch
/// Alertmanager refuses outright (a 4xx but those ``HTTPPoster/retried``) is dropped and
/// counted rather than retried ahead of everything else. Nothing here runs
/// on the detection path.
actor AlertmanagerRoute: Service {
    struct Firing {
        var incident: Incident
        var labels: [String: String]
        var postedAt: ContinuousClock.Instant
        /// When its last change was posted (re-posts do not count).
        var changedAt: ContinuousClock.Instant
    }

    /// Alerts in one post at most.
    static let batchSize = 500

    let url: URL
    /// The URL's host and port, for the log.
    private let destination: String
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
    /// Set at shutdown: no post goes on past it.
    private var finalDeadline: ContinuousClock.Instant?

    init(url: URL, destination: String, configuration: AlertConfiguration, links: AlertLinks, feed: AsyncStream<[IncidentUpdate]>,
         metricsFactory: any MetricsFactory, logger: Logger) {
        self.url = url.appendingPathComponent("api/v2/alerts")
        self.destination = destination
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
        if order.count > configuration.maxPending {
            dropOldestPending(order.count - configuration.maxPending)
        }
        metrics.pending.record(order.count)
        loop.poke()
    }

    /// Drops `n` pending changes, oldest first, keeping closes of firing alerts while others are left.
    private func dropOldestPending(_ n: Int) {
        var dropped = Set<String>()
        for pass in 0..<2 where dropped.count < n {
            for uid in order where dropped.count < n && !dropped.contains(uid) {
                let keepsFiring = pending[uid]?.state == .closed && firing[uid] != nil
                if pass == 1 || !keepsFiring { dropped.insert(uid) }
            }
        }
        for uid in dropped { pending[uid] = nil }
        order.removeAll { dropped.contains($0) }
        metrics.dropped.increment(by: Int64(dropped.count))
    }

    /// Posts pending changes and due re-posts in one request.
    func deliver() async -> DeliveryOutcome {
        let now = ContinuousClock.now
        let batch = order.prefix(Self.batchSize).compactMap { pending[$0] }
        // Firing alerts past the cap are resolved, the ones changed longest ago first.
        let excess = firing.count - configuration.maxPending
        let stale = excess > 0 ? firing.values.filter { pending[$0.incident.uid] == nil }.sorted { $0.changedAt < $1.changedAt }.prefix(excess) : []
        let staleUIDs = Set(stale.map(\.incident.uid))
        let room = max(0, Self.batchSize - batch.count - stale.count)
        let due = firing.values.filter {
            pending[$0.incident.uid] == nil && !staleUIDs.contains($0.incident.uid) && now - $0.postedAt >= configuration.repostInterval
        }.sorted { $0.postedAt < $1.postedAt }.prefix(room)
        guard !batch.isEmpty || !due.isEmpty || !stale.isEmpty else { return .delivered }
        var alerts: [AlertmanagerAlert] = []
        for incident in batch {
            let labels = AlertmanagerAlert.labels(incident)
            // A changed label set is a new alert to Alertmanager: resolve the old one.
            if let previous = firing[incident.uid], previous.labels != labels {
                alerts.append(AlertmanagerAlert(previous.incident, labels: previous.labels, links: links, endsAt: Date()))
            }
            alerts.append(AlertmanagerAlert(incident, labels: labels, links: links, endsAt: incident.state == .closed ? Date() : nil))
        }
        for f in stale { alerts.append(AlertmanagerAlert(f.incident, labels: f.labels, links: links, endsAt: Date())) }
        for f in due { alerts.append(AlertmanagerAlert(f.incident, labels: f.labels, links: links, endsAt: nil)) }
        do {
            try await poster.post(try JSONEncoder().encode(alerts), to: url, before: finalDeadline)
            metrics.sent.increment(by: Int64(alerts.count))
        } catch let failure as HTTPPoster.Failure where failure.permanent {
            metrics.failed.increment()
            metrics.dropped.increment(by: Int64(alerts.count))
            logger.error("Alertmanager refused a batch of alerts; dropped", metadata: [
                "destination": "\(destination)", "error": "\(failure)", "alerts": "\(alerts.count)"])
            forget(batch: batch, now: now, stale: Array(stale), due: Array(due))
            return .delivered
        } catch {
            metrics.failed.increment()
            logger.warning("Alertmanager post failed; will retry", metadata: ["destination": "\(destination)", "error": "\(error)", "pending": "\(order.count)"])
            return .failed(progressed: false)
        }
        var posted = Set<String>()
        for incident in batch {
            // Only what was posted leaves the queue; a newer change that came meanwhile stays.
            if pending[incident.uid] == incident {
                pending[incident.uid] = nil
                posted.insert(incident.uid)
            }
            if incident.state == .closed {
                firing[incident.uid] = nil
            } else {
                firing[incident.uid] = Firing(incident: incident, labels: AlertmanagerAlert.labels(incident), postedAt: now, changedAt: now)
            }
        }
        order.removeAll { posted.contains($0) }
        for uid in staleUIDs where pending[uid] == nil { firing[uid] = nil }
        for f in due { firing[f.incident.uid]?.postedAt = now }
        metrics.pending.record(order.count)
        return .delivered
    }

    /// After a refused post: its changes leave the queue and are not held
    /// as firing (re-posting them every minute would only be refused, and
    /// counted as dropped, again); the stale ones it resolved are let go as
    /// a delivered post would; the re-posts that rode along stay firing,
    /// due again in a minute.
    private func forget(batch: [Incident], now: ContinuousClock.Instant, stale: [Firing], due: [Firing]) {
        var refused = Set<String>()
        for incident in batch where pending[incident.uid] == incident {
            pending[incident.uid] = nil
            refused.insert(incident.uid)
        }
        for incident in batch { firing[incident.uid] = nil }
        for f in stale where pending[f.incident.uid] == nil { firing[f.incident.uid] = nil }
        for f in due { firing[f.incident.uid]?.postedAt = now }
        order.removeAll { refused.contains($0) }
        metrics.pending.record(order.count)
    }

    /// Posts what is pending, a batch at a time, while Alertmanager takes
    /// them, for at most ``AlertConfiguration/shutdownGrace``; what is left
    /// then (or after a failed post) is counted as dropped.
    private func finalDelivery() async {
        let deadline = ContinuousClock.now + configuration.shutdownGrace
        finalDeadline = deadline
        while !order.isEmpty, ContinuousClock.now < deadline {
            let before = order.count
            guard await deliver() == .delivered, order.count < before else { break }
        }
        if !order.isEmpty {
            metrics.dropped.increment(by: Int64(order.count))
            logger.error("alerts not delivered to Alertmanager by shutdown", metadata: ["destination": "\(destination)", "count": "\(order.count)"])
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
        // Never before startsAt, which Alertmanager refuses: an incident of
        // traffic stamped ahead of this clock (ingest allows some skew) starts
        // in the future.
        self.endsAt = endsAt.map { Timestamp.rfc3339(milliseconds: max(incident.firstSeenMs, Int64($0.timeIntervalSince1970 * 1000))) }
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
