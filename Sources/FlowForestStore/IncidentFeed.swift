public import CoreMetrics
public import FlowForestCore
import Synchronization

/// Hands every stored incident change to each subscriber (the event hub,
/// each alert route) in the order written. Each subscriber has its own
/// bounded buffer; a subscriber that falls ``buffer`` batches behind loses
/// the oldest, counted in `flowforest_incident_feed_dropped_total`.
public final class IncidentFeed: Sendable {
    private let subscribers = Mutex<[AsyncStream<[IncidentUpdate]>.Continuation]>([])
    private let dropped: Counter
    public static let buffer = 4096

    public init(metricsFactory: any MetricsFactory) {
        dropped = Counter(label: "flowforest_incident_feed_dropped_total", factory: metricsFactory)
        dropped.increment(by: 0)
    }

    /// A new stream of stored incident changes, from now on.
    public func subscribe() -> AsyncStream<[IncidentUpdate]> {
        let (stream, continuation) = AsyncStream.makeStream(of: [IncidentUpdate].self, bufferingPolicy: .bufferingNewest(Self.buffer))
        subscribers.withLock { $0.append(continuation) }
        return stream
    }

    func publish(_ updates: [IncidentUpdate]) {
        guard !updates.isEmpty else { return }
        for subscriber in subscribers.withLock({ $0 }) {
            if case .dropped(let lost) = subscriber.yield(updates) { dropped.increment(by: Int64(lost.count)) }
        }
    }

    func finish() {
        for subscriber in subscribers.withLock({ $0 }) { subscriber.finish() }
    }
}
