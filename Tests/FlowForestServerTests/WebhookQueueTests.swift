import FlowForestCore
@testable import FlowForestServer
import Foundation
import Testing

/// A webhook that is down holds its changes, bounded by count and by bytes:
/// an incident's body carries up to 1,000 anomaly ids and 512 addresses, so
/// 10,000 of them could otherwise hold hundreds of megabytes.
@Suite("Webhook queue bounds")
struct WebhookQueueTests {
    /// An update of a wide incident: 256 actors, 256 targets, 1,000 anomaly ids.
    static func wide(_ n: Int) -> IncidentUpdate {
        let addresses = (0..<256).map { IPAddress(ipv4: 0xC612_0000 | UInt32($0)) }
        let incident = Incident(id: Int64(n), uid: "inc-\(n)", sensor: "s", label: .hostSweep, actors: addresses, targets: addresses,
                                firstSeenMs: 0, lastSeenMs: 0, peakSeverity: .high, peakScore: 0.9, anomalyCount: 1000, state: .open,
                                explanation: [], anomalyIDs: (0..<1000).map { Int64($0) })
        return IncidentUpdate(change: .updated, incident: incident)
    }

    @Test("past the byte bound the oldest bodies go, counted as dropped; the newest stay, in order")
    func byteBound() async throws {
        var configuration = AlertConfiguration()
        configuration.maxPendingBytes = 200_000
        let metrics = FlowForestMetrics()
        let (feed, _) = AsyncStream.makeStream(of: [IncidentUpdate].self)
        // Nothing listens there; nothing is posted either, as the delivery loop never runs.
        let route = WebhookRoute(url: URL(string: "http://127.0.0.1:9/hook")!, destination: "127.0.0.1:9",
                                 configuration: configuration, feed: feed, metricsFactory: metrics.factory, logger: .init(label: "test"))
        for n in 0..<50 { await route.accept([Self.wide(n)]) }
        let held = await route.held
        let bodySize = held.bytes / max(1, held.ids.count)
        #expect(bodySize > 10_000 && bodySize < 40_000, "a wide incident's body: \(bodySize) bytes")
        #expect(held.bytes <= 200_000 && held.bytes + bodySize > 200_000, "as many as fit: \(held.bytes) bytes")
        #expect(held.ids == Array(50 - held.ids.count..<50), "the newest, in order: \(held.ids)")
        let dropped = metrics.render().split(separator: "\n").first { $0.hasPrefix("flowforest_alerts_dropped_total{") }
        #expect(dropped?.hasSuffix(" \(50 - held.ids.count)") == true, "\(dropped ?? "no series")")
    }
}
