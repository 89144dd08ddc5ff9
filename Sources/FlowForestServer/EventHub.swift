import CoreMetrics
import FlowForestCore
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// Live statistics sent to `/api/events` once a second.
struct LiveStats: Codable, Sendable {
    var time: String
    var packetsPerSecond: Double
    var bytesPerSecond: Double
    var activeFlows: Int
    var anomaliesTotal: Int64
    var storePending: Int
    var storeErrorsTotal: Int64
    var model: String

    enum CodingKeys: String, CodingKey {
        case time, model
        case packetsPerSecond = "packets_per_second"
        case bytesPerSecond = "bytes_per_second"
        case activeFlows = "active_flows"
        case anomaliesTotal = "anomalies_total"
        case storePending = "store_pending"
        case storeErrorsTotal = "store_errors_total"
    }
}

/// Fans server-sent events out to connected clients: each stored anomaly as
/// an `anomaly` event (read from the store writer's stream of stored
/// anomalies), each stored incident change as `incident_opened`,
/// `incident_updated` or `incident_closed` (from the writer's incident
/// feed) and, once a second, a `stats` event. A client that
/// cannot keep up loses events, counted in
/// `flowforest_sse_dropped_events_total`: past ``maxQueuedEvents`` its
/// oldest, and any that would take what it holds unread past
/// ``maxQueuedBytes`` (an incident change during a sweep is tens of kB).
final class EventHub: Service, Sendable {
    /// Events held for one client that has not read them.
    static let maxQueuedEvents = 256
    /// Bytes of events held for one client that has not read them.
    static let maxQueuedBytes = 1 << 20

    /// One client's stream and what it holds unread.
    final class Subscription: Sendable {
        let id: UInt64
        let stream: AsyncStream<String>
        fileprivate let continuation: AsyncStream<String>.Continuation
        fileprivate let queuedBytes = Atomic<Int>(0)

        fileprivate init(id: UInt64, stream: AsyncStream<String>, continuation: AsyncStream<String>.Continuation) {
            self.id = id
            self.stream = stream
            self.continuation = continuation
        }

        /// The client has been sent `message`: its bytes no longer count against it.
        func sent(_ message: String) { queuedBytes.subtract(message.utf8.count, ordering: .relaxed) }
    }

    private let clients = Mutex<[UInt64: Subscription]>([:])
    private let nextID = Atomic<UInt64>(0)
    private let clientGauge: Gauge
    private let droppedEvents: Counter
    private let statsInterval: Duration
    private let stats: @Sendable () async -> LiveStats
    /// Every stats sample of the last ``ServerConfiguration/statsHistory``, sent or not.
    let history: StatsHistory
    private let anomalies: AsyncStream<[Anomaly]>
    private let incidents: AsyncStream<[IncidentUpdate]>
    private let encoder: JSONEncoder

    /// - Parameters:
    ///   - anomalies: stored anomalies, ids set; the hub is its one reader.
    ///   - incidents: stored incident changes, ids set.
    init(statsInterval: Duration, historyLength: Duration = .seconds(3600), anomalies: AsyncStream<[Anomaly]>,
         incidents: AsyncStream<[IncidentUpdate]>, metricsFactory: any MetricsFactory, stats: @escaping @Sendable () async -> LiveStats) {
        self.statsInterval = statsInterval
        history = StatsHistory(capacity: Self.samples(in: historyLength, every: statsInterval))
        self.anomalies = anomalies
        self.incidents = incidents
        self.stats = stats
        clientGauge = Gauge(label: "flowforest_sse_clients", factory: metricsFactory)
        droppedEvents = Counter(label: "flowforest_sse_dropped_events_total", factory: metricsFactory)
        clientGauge.record(0)
        let e = JSONEncoder()
        e.outputFormatting = .sortedKeys
        encoder = e
    }

    /// A new client's event stream, starting with a comment so the client sees the connection open.
    func subscribe() -> Subscription {
        let id = nextID.wrappingAdd(1, ordering: .relaxed).newValue
        let (stream, continuation) = AsyncStream.makeStream(of: String.self, bufferingPolicy: .bufferingNewest(Self.maxQueuedEvents))
        let subscription = Subscription(id: id, stream: stream, continuation: continuation)
        continuation.onTermination = { [weak self] _ in
            guard let self else { return }
            let count = self.clients.withLock { c -> Int in
                c[id] = nil
                return c.count
            }
            self.clientGauge.record(count)
        }
        let greeting = ": connected\n\n"
        subscription.queuedBytes.add(greeting.utf8.count, ordering: .relaxed)
        continuation.yield(greeting)
        let count = clients.withLock { c -> Int in
            c[id] = subscription
            return c.count
        }
        clientGauge.record(count)
        return subscription
    }

    /// Ends a client's stream (it disconnected, or the server is stopping).
    func unsubscribe(_ id: UInt64) {
        let subscription = clients.withLock { $0.removeValue(forKey: id) }
        subscription?.continuation.finish()
        clientGauge.record(clientCount)
    }

    /// Sends newly stored anomalies.
    func publish(anomalies: [Anomaly]) {
        // Encoding is nearly all of the cost, and is for the clients alone:
        // a daemon nobody watches storing thousands of anomalies a poll spent
        // as much CPU here as on writing them.
        guard clientCount > 0 else { return }
        for anomaly in anomalies {
            guard let data = try? encoder.encode(anomaly) else {
                // Not one client gets it: counted as dropped for each.
                droppedEvents.increment(by: Int64(clientCount))
                continue
            }
            send(event: "anomaly", id: anomaly.id.map(String.init), data: String(decoding: data, as: UTF8.self))
        }
    }

    /// Sends stored incident changes, one event per change.
    func publish(incidents: [IncidentUpdate]) {
        guard clientCount > 0 else { return }
        for update in incidents {
            guard let data = try? encoder.encode(update.incident) else {
                droppedEvents.increment(by: Int64(clientCount))
                continue
            }
            send(event: "incident_\(update.change.rawValue)", id: nil, data: String(decoding: data, as: UTF8.self))
        }
    }

    private func send(event: String, id: String?, data: String) {
        var message = "event: \(event)\n"
        if let id { message += "id: \(id)\n" }
        message += "data: \(data)\n\n"
        let size = message.utf8.count
        let targets = clients.withLock { Array($0.values) }
        for client in targets {
            guard client.queuedBytes.add(size, ordering: .relaxed).newValue <= Self.maxQueuedBytes else {
                client.queuedBytes.subtract(size, ordering: .relaxed)
                droppedEvents.increment()
                continue
            }
            if case .dropped(let oldest) = client.continuation.yield(message) {
                client.queuedBytes.subtract(oldest.utf8.count, ordering: .relaxed)
                droppedEvents.increment()
            }
        }
    }

    var clientCount: Int { clients.withLock { $0.count } }

    /// Samples in `length` at one per `interval`: at least 1, at most 86 400.
    static func samples(in length: Duration, every interval: Duration) -> Int {
        let seconds = { (d: Duration) in Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18 }
        guard seconds(interval) > 0 else { return 1 }
        return Int(min(86_400, max(1, (seconds(length) / seconds(interval)).rounded())))
    }

    /// Sends stored anomalies as they come and stats every interval until
    /// shutdown, then ends every client's stream.
    func run() async throws {
        try? await cancelWhenGracefulShutdown {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    for await stored in self.anomalies { self.publish(anomalies: stored) }
                }
                group.addTask {
                    for await stored in self.incidents { self.publish(incidents: stored) }
                }
                group.addTask {
                    while !Task.isCancelled {
                        try await Task.sleep(for: self.statsInterval)
                        // Sampled whether or not anyone listens, so the history has no holes.
                        let sample = await self.stats()
                        self.history.append(sample)
                        if self.clientCount > 0, let data = try? self.encoder.encode(sample) {
                            self.send(event: "stats", id: nil, data: String(decoding: data, as: UTF8.self))
                        }
                    }
                }
                try await group.waitForAll()
            }
        }
        finishAll()
    }

    func finishAll() {
        let all = clients.withLock { c -> [Subscription] in
            defer { c.removeAll() }
            return Array(c.values)
        }
        for client in all { client.continuation.finish() }
    }
}
