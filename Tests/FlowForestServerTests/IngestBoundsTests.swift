import FlowForestCore
import FlowForestServer
import FlowForestStore
import Foundation
import HummingbirdTesting
import Testing

/// Issue 15, finding 4: ingested flows stamped ahead of the server clock
/// stayed open until the clock caught up, and `--max-flows` did not bound
/// the ingest table.
@Suite("Remote ingest: flows end by the server clock and are bounded")
struct IngestBoundsTests {
    @Test("flows stamped at the edge of the skew window end by the server's idle timeout and are stored")
    func futureStampedFlowsEnd() async throws {
        try await withService(.live) { client, db, parts in
            // 290 s ahead: accepted (the window reaches 300 s ahead), and would
            // hold the flows open for 290 s if they ended by their own stamps.
            let ahead = Date().timeIntervalSince1970 + 290
            let records = trafficJSON((0..<3).map { i in
                ("198.18.0.1", "198.18.0.2", 41000 + i, 443, "tcp", 60, ahead + Double(i) * 0.001, ["SYN"])
            })
            #expect(try await client.call("/api/traffic", .post, token: db.agentToken, json: records).status == .accepted)
            // Idle timeout 0.3 s, ticks every 0.2 s (testConfiguration).
            try await waitFor("the future-stamped flows to end and be stored", seconds: 10) { try await parts.store.flowCount() >= 3 }
            let flows = try await client.call("/api/flows", token: db.viewerToken).object()
            #expect((flows["active"] as? [Any])?.isEmpty == true)
        }
    }

    @Test("ingesting more distinct flows than --max-flows holds max-flows and counts the rest")
    func maxFlowsBoundsIngest() async throws {
        try await withService(configure: { $0.ingestFlowTable.maxFlows = 3 }) { client, db, _ in
            let now = Date().timeIntervalSince1970
            let records = trafficJSON((0..<5).map { i in ("198.18.0.1", "198.18.0.2", 42000 + i, 443, "tcp", 60, now, ["SYN"]) })
            let r = try await client.call("/api/traffic", .post, token: db.agentToken, json: records)
            #expect(r.status == .accepted)
            let o = try r.object()
            #expect(o["flows_started"] as? Int == 3)
            #expect(o["active_flows"] as? Int == 3)
            let metrics = try await client.call("/metrics", token: db.viewerToken).text
            #expect(metricValue(metrics, "flowforest_ingest_table_full_packets_total") == 2, "\(metrics)")
            #expect(metrics.contains("# HELP flowforest_ingest_table_full_packets_total Ingested packets"))
        }
    }

    @Test("what ingest accepts fits the store queue when its flows all end together: the rest is 503, nothing dropped")
    func acceptedIsNeverDropped() async throws {
        let db = try await TestDatabase.make()
        defer { db.remove() }
        var configuration = testConfiguration(db)
        configuration.writer.maxPendingFlows = 100
        // No flow ends while the test posts: they all end together when the service stops.
        configuration.ingestFlowTable = FlowTableConfiguration(idleTimeoutNs: 3_600_000_000_000, activeTimeoutNs: 3_600_000_000_000)
        let (app, _) = try await buildApplicationParts(configuration: configuration, flowSource: nil, logger: quietLogger,
                                                       detector: NeverDetects())
        let now = Date().timeIntervalSince1970
        @Sendable func batch(_ b: Int) -> String {
            trafficJSON((0..<40).map { i in ("198.18.0.1", "198.18.1.\(b)", 43000 + i, 443, "tcp", 60, now, ["SYN"]) })
        }
        try await app.test(.live) { client in
            // 40 open flows owe 40 rows, and 40 more fit the 100: accepted. A third 40 would not fit.
            #expect(try await client.call("/api/traffic", .post, token: db.agentToken, json: batch(1)).status == .accepted)
            #expect(try await client.call("/api/traffic", .post, token: db.agentToken, json: batch(2)).status == .accepted)
            let refused = try await client.call("/api/traffic", .post, token: db.agentToken, json: batch(3))
            #expect(refused.status == .serviceUnavailable && refused.headers[.retryAfter] == "5")
        }
        // Stopped: the 80 accepted flows ended together and were all written, none dropped.
        let stored = try await Store.withStore(db.location, logger: quietLogger) { try await $0.flowCount() }
        #expect(stored == 80)
    }
}
