import FlowForestCore
@testable import FlowForestServer
import Foundation
import Testing

/// What the event hub holds for a client that does not read is bounded in
/// bytes as well as events, and what it drops is counted.
@Suite("Event hub")
struct EventHubTests {
    /// An anomaly of about 50 kB as an event (a long explanation, as a sweep's can be).
    static func large(_ i: Int) -> Anomaly {
        var a = storedAnomaly(i, src: "198.18.0.7", dst: "198.18.0.8", severity: .high).anomaly
        a.id = Int64(i)
        a.explanation = (0..<400).map { j in
            ExplanationItem(feature: "f\(j)", value: 1, baseline: 0, direction: "above", text: String(repeating: "x", count: 100))
        }
        return a
    }

    @Test("a client that does not read holds at most 1 MiB of events; the rest is dropped and counted")
    func byteBudget() async throws {
        let metrics = FlowForestMetrics()
        let hub = EventHub(statsInterval: .seconds(3600), anomalies: AsyncStream { $0.finish() }, incidents: AsyncStream { $0.finish() },
                           metricsFactory: metrics.factory) {
            LiveStats(time: "", packetsPerSecond: 0, bytesPerSecond: 0, activeFlows: 0, anomaliesTotal: 0, storePending: 0,
                      storeErrorsTotal: 0, model: "")
        }
        let subscription = hub.subscribe()
        defer { hub.unsubscribe(subscription.id) }
        hub.publish(anomalies: (1...100).map(Self.large))
        var iterator = subscription.stream.makeAsyncIterator()
        #expect(await iterator.next() == ": connected\n\n")
        // Read without reporting them sent: what the hub held for the client.
        var held: [String] = []
        hub.unsubscribe(subscription.id)
        while let message = await iterator.next() { held.append(message) }
        let bytes = held.reduce(0) { $0 + $1.utf8.count }
        #expect(!held.isEmpty && bytes <= EventHub.maxQueuedBytes, "\(held.count) events, \(bytes) bytes")
        #expect(held.count < 100)
        let dropped = metrics.render().split(separator: "\n").first { $0.hasPrefix("flowforest_sse_dropped_events_total") }
        #expect(dropped?.hasSuffix(" \(100 - held.count)") == true, "\(dropped ?? "no series")")
        // The first events are the ones kept: the client misses the latest, not a gap in the middle.
        #expect(held.first?.contains("id: 1\n") == true)
    }

    @Test("events a client was sent no longer count against it", .timeLimit(.minutes(1)))
    func sentFreesBudget() async throws {
        let hub = EventHub(statsInterval: .seconds(3600), anomalies: AsyncStream { $0.finish() }, incidents: AsyncStream { $0.finish() },
                           metricsFactory: FlowForestMetrics().factory) {
            LiveStats(time: "", packetsPerSecond: 0, bytesPerSecond: 0, activeFlows: 0, anomaliesTotal: 0, storePending: 0,
                      storeErrorsTotal: 0, model: "")
        }
        let subscription = hub.subscribe()
        defer { hub.unsubscribe(subscription.id) }
        var iterator = subscription.stream.makeAsyncIterator()
        _ = await iterator.next()
        var received = 0
        for round in 0..<5 {
            hub.publish(anomalies: (1...10).map { Self.large(round * 10 + $0) })
            for _ in 0..<10 {
                let message = try #require(await iterator.next())
                subscription.sent(message)
                received += 1
            }
        }
        // 50 events of about 50 kB, 2.5 MB in all: each round read and sent before the next.
        #expect(received == 50)
    }
}
