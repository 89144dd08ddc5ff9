import FlowForestCore
@testable import FlowForestServer
import FlowForestTestSupport
import Foundation
import Testing

/// What alert routes do with what they hold: at shutdown, delivered while
/// the receiver answers, within the shutdown grace, and counted when not;
/// refused, dropped once and counted; misdirected, kept until it goes through.
@Suite("Alert delivery at shutdown and on refusal")
struct ShutdownDeliveryTests {
    static func incident(_ n: Int) -> IncidentUpdate {
        let incident = Incident(id: Int64(n), uid: "inc-\(n)", sensor: "s", label: .portScan, actors: [IPAddress(ipv4: 0xC612_0001)],
                                targets: [IPAddress(ipv4: 0xC612_0002)], firstSeenMs: 1_764_000_000_000, lastSeenMs: 1_764_000_000_000,
                                peakSeverity: .high, peakScore: 0.9, anomalyCount: 1, state: .open, explanation: [], anomalyIDs: [])
        return IncidentUpdate(change: .opened, incident: incident)
    }

    @Test("Alertmanager gets every pending alert at shutdown, more than one post's 500")
    func alertmanagerDrainsBatches() async throws {
        let receiver = HookReceiver()
        try await receiver.start()
        let metrics = FlowForestMetrics()
        let (feed, input) = AsyncStream.makeStream(of: [IncidentUpdate].self)
        let route = AlertmanagerRoute(url: try #require(URL(string: receiver.url)), destination: "receiver", configuration: AlertConfiguration(),
                                      links: AlertLinks(base: "http://127.0.0.1:8080"), feed: feed,
                                      metricsFactory: metrics.factory, logger: .init(label: "test"))
        // Accepted before the loop runs, as when the writer's last flush hands them over at once.
        await route.accept((0..<1_200).map(Self.incident))
        input.finish()
        try await route.run()
        await receiver.stop()
        var ids = Set<String>()
        for post in receiver.received {
            let alerts = try #require(try JSONSerialization.jsonObject(with: post.body) as? [[String: Any]])
            for alert in alerts { ids.insert((alert["labels"] as? [String: String])?["incident_id"] ?? "?") }
        }
        #expect(ids.count == 1_200, "\(ids.count) of 1,200 incidents posted in \(receiver.received.count) posts")
        let dropped = metrics.render().split(separator: "\n").first { $0.hasPrefix("flowforest_alerts_dropped_total{") }
        #expect(dropped?.hasSuffix(" 0") ?? true, "\(dropped ?? "")")
    }

    @Test("a webhook that never answers holds shutdown up to the grace, not a request timeout per change; what is left is counted")
    func webhookGraceBounded() async throws {
        let silent = try PeerProcess.silentTCPListener()
        defer { close(silent.fd) }
        var configuration = AlertConfiguration()
        configuration.requestTimeout = .seconds(60)
        configuration.shutdownGrace = .seconds(1)
        configuration.webhookSecret = Array("k".utf8)
        let metrics = FlowForestMetrics()
        let (feed, input) = AsyncStream.makeStream(of: [IncidentUpdate].self)
        let url = try #require(URL(string: "http://127.0.0.1:\(silent.port)/hook"))
        let route = WebhookRoute(url: url, destination: "silent", configuration: configuration, feed: feed,
                                 metricsFactory: metrics.factory, logger: .init(label: "test"))
        await route.accept((0..<3).map(Self.incident))
        input.finish()
        let start = ContinuousClock.now
        try await route.run()
        let took = ContinuousClock.now - start
        #expect(took < .seconds(10), "shutdown took \(took)")
        let dropped = metrics.render().split(separator: "\n").first { $0.hasPrefix("flowforest_alerts_dropped_total{") }
        #expect(dropped?.hasSuffix(" 3") == true, "\(dropped ?? "no series")")
    }

    /// Posts the receiver got with an alert for incident `id`.
    static func posts(to receiver: HookReceiver, naming id: String) throws -> Int {
        try receiver.received.filter { post in
            let alerts = try JSONSerialization.jsonObject(with: post.body) as? [[String: Any]] ?? []
            return alerts.contains { ($0["labels"] as? [String: String])?["incident_id"] == id }
        }.count
    }

    static func dropped(_ metrics: FlowForestMetrics) -> Substring? {
        metrics.render().split(separator: "\n").first { $0.hasPrefix("flowforest_alerts_dropped_total{") }
    }

    @Test("an alert Alertmanager refuses (400) is dropped and counted once, not held as firing and re-posted every minute")
    func refusedNotFiring() async throws {
        let receiver = HookReceiver(failFirst: 1, failStatus: .badRequest)
        try await receiver.start()
        var configuration = AlertConfiguration()
        configuration.repostInterval = .milliseconds(100)
        let metrics = FlowForestMetrics()
        let (feed, input) = AsyncStream.makeStream(of: [IncidentUpdate].self)
        let route = AlertmanagerRoute(url: try #require(URL(string: receiver.url)), destination: "receiver", configuration: configuration,
                                      links: AlertLinks(base: "http://127.0.0.1:8080"), feed: feed,
                                      metricsFactory: metrics.factory, logger: .init(label: "test"))
        let running = Task { try await route.run() }
        input.yield([Self.incident(1)])
        try await waitFor("the refusal counted") { Self.dropped(metrics)?.hasSuffix(" 1") == true }
        // An accepted alert after it is re-posted every interval: once it has
        // been three times, a refused alert held as firing would have been too.
        input.yield([Self.incident(2)])
        try await waitFor("the accepted alert posted and re-posted") { try Self.posts(to: receiver, naming: "2") >= 3 }
        input.finish()
        try await running.value
        await receiver.stop()
        #expect(try Self.posts(to: receiver, naming: "1") == 0, "the refused alert was posted again")
        #expect(Self.dropped(metrics)?.hasSuffix(" 1") == true, "\(Self.dropped(metrics) ?? "")")
    }

    @Test("a 404 (a wrong path, a proxy) is retried, not dropped: once it answers, the change goes through")
    func notFoundRetried() async throws {
        let receiver = HookReceiver(failFirst: 2, failStatus: .notFound)
        try await receiver.start()
        var configuration = AlertConfiguration()
        configuration.retryDelay = .milliseconds(50)
        configuration.webhookSecret = Array("k".utf8)
        let metrics = FlowForestMetrics()
        let (feed, input) = AsyncStream.makeStream(of: [IncidentUpdate].self)
        let route = WebhookRoute(url: try #require(URL(string: receiver.url)), destination: "receiver", configuration: configuration,
                                 feed: feed, metricsFactory: metrics.factory, logger: .init(label: "test"))
        let running = Task { try await route.run() }
        input.yield([Self.incident(1)])
        try await waitFor("the change delivered after two 404s") { receiver.received.count == 1 }
        input.finish()
        try await running.value
        await receiver.stop()
        #expect(Self.dropped(metrics)?.hasSuffix(" 0") ?? true, "\(Self.dropped(metrics) ?? "")")
    }
}
