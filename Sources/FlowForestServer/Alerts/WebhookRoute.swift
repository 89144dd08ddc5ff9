import CoreMetrics
import Crypto
import FlowForestCore
import Foundation
import Logging
import ServiceLifecycle

/// Posts every incident change to one webhook as JSON,
/// `{"change": "opened", "incident": {…}}`, signed with HMAC-SHA256 of the
/// body under the shared key: `X-FlowForest-Signature: sha256=<hex>`.
///
/// Changes wait in a bounded queue, in order, while the receiver is down,
/// and are retried with back-off; when more than
/// ``AlertConfiguration/maxPending`` wait, or their bodies hold more than
/// ``AlertConfiguration/maxPendingBytes``, the oldest are dropped and counted.
/// A change the receiver refuses outright (a 4xx but those ``HTTPPoster/retried``) is dropped
/// and counted too, rather than retried ahead of everything after it.
actor WebhookRoute: Service {
    let url: URL
    /// The URL's host and port, for the log: its path may be the secret.
    private let destination: String
    private let configuration: AlertConfiguration
    private let key: SymmetricKey
    private let feed: AsyncStream<[IncidentUpdate]>
    private let poster: HTTPPoster
    private let metrics: AlertMetrics
    private let logger: Logger
    private var queue: [Data] = []
    private var head = 0
    /// Bytes of the bodies from `head` on.
    private var pendingBytes = 0
    private let loop: DeliveryLoop
    /// Set at shutdown: no post goes on past it.
    private var finalDeadline: ContinuousClock.Instant?

    static let signatureHeader = "X-FlowForest-Signature"

    init(url: URL, destination: String, configuration: AlertConfiguration, feed: AsyncStream<[IncidentUpdate]>,
         metricsFactory: any MetricsFactory, logger: Logger) {
        self.url = url
        self.destination = destination
        self.configuration = configuration
        self.key = SymmetricKey(data: configuration.webhookSecret)
        self.feed = feed
        self.poster = HTTPPoster(timeout: configuration.requestTimeout)
        self.metrics = AlertMetrics(kind: "webhook", destination: destination, factory: metricsFactory)
        self.logger = logger
        loop = DeliveryLoop(configuration: configuration)
    }

    /// `sha256=` and the hex HMAC-SHA256 of `body` under `key`.
    static func signature(_ body: Data, key: SymmetricKey) -> String {
        "sha256=" + HMAC<SHA256>.authenticationCode(for: body, using: key).map { String(format: "%02x", $0) }.joined()
    }

    /// The JSON body of one change.
    struct Body: Encodable {
        var change: IncidentChange
        var incident: Incident
    }

    /// Delivers until the feed ends (the writer stopped), then tries once more.
    nonisolated func run() async throws {
        await loop.run(feed: feed, accept: { await self.accept($0) }, deliver: { await self.deliverAll() },
                       finish: { await self.finalDelivery() })
    }

    func accept(_ updates: [IncidentUpdate]) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        for update in updates {
            guard let body = try? encoder.encode(Body(change: update.change, incident: update.incident)) else {
                metrics.dropped.increment()
                logger.error("an incident change could not be encoded; dropped", metadata: ["destination": "\(destination)"])
                continue
            }
            queue.append(body)
            pendingBytes += body.count
        }
        var excess = 0
        while head < queue.count, queue.count - head > configuration.maxPending || pendingBytes > configuration.maxPendingBytes {
            // Freed now, not when the queue next compacts.
            advanceHead(freeing: true)
            excess += 1
        }
        if excess > 0 { metrics.dropped.increment(by: Int64(excess)) }
        compact()
        metrics.pending.record(queue.count - head)
        loop.poke()
    }

    /// Posts queued changes in order, up to the first failure (it stays queued).
    func deliverAll() async -> DeliveryOutcome {
        var progressed = false
        while head < queue.count {
            if let finalDeadline, ContinuousClock.now >= finalDeadline { return .failed(progressed: progressed) }
            let body = queue[head]
            do {
                try await poster.post(body, to: url, headers: [Self.signatureHeader: Self.signature(body, key: key)], before: finalDeadline)
                metrics.sent.increment()
            } catch where error.permanent {
                metrics.failed.increment()
                metrics.dropped.increment()
                logger.error("webhook refused a change; dropped", metadata: ["destination": "\(destination)", "error": "\(error)"])
            } catch {
                metrics.failed.increment()
                logger.warning("webhook post failed; will retry", metadata: ["destination": "\(destination)", "error": "\(error)", "pending": "\(queue.count - head)"])
                return .failed(progressed: progressed)
            }
            progressed = true
            // accept() may have dropped the head meanwhile; only advance past what was sent.
            if head < queue.count, queue[head] == body { advanceHead(freeing: false) }
            metrics.pending.record(queue.count - head)
        }
        compact()
        return .delivered
    }

    /// The queued bodies' incident ids, oldest first, and their bytes (for tests).
    var held: (ids: [Int], bytes: Int) {
        let ids = queue[head...].map { body in
            ((try? JSONSerialization.jsonObject(with: body)) as? [String: Any])
                .flatMap { $0["incident"] as? [String: Any] }.flatMap { $0["id"] as? Int } ?? -1
        }
        return (ids, pendingBytes)
    }

    /// Moves past the oldest queued body, freeing it at once when asked.
    private func advanceHead(freeing: Bool) {
        pendingBytes -= queue[head].count
        if freeing { queue[head] = Data() }
        head += 1
    }

    private func compact() {
        if head > 0, head * 2 >= queue.count {
            queue.removeFirst(head)
            head = 0
        }
    }

    /// Posts what is queued for at most ``AlertConfiguration/shutdownGrace``;
    /// what is left then is counted as dropped.
    private func finalDelivery() async {
        finalDeadline = ContinuousClock.now + configuration.shutdownGrace
        if head < queue.count, await deliverAll() != .delivered {
            metrics.dropped.increment(by: Int64(queue.count - head))
            logger.error("webhook changes not delivered by shutdown", metadata: ["destination": "\(destination)", "count": "\(queue.count - head)"])
        }
    }
}
