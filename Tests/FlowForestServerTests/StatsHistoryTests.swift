import FlowForestCore
@testable import FlowForestServer
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

@Suite("Stats history")
struct StatsHistoryTests {
    static func sample(_ n: Int) -> LiveStats {
        LiveStats(time: Timestamp.rfc3339(milliseconds: Int64(n) * 1000), packetsPerSecond: Double(n), bytesPerSecond: 0,
                  activeFlows: 0, anomaliesTotal: 0, storePending: 0, storeErrorsTotal: 0, model: "detecting")
    }

    @Test("the ring keeps the latest samples, oldest first, and never more than its capacity")
    func ringIsBounded() {
        let history = StatsHistory(capacity: 3)
        #expect(history.samples.isEmpty)
        for n in 1...2 { history.append(Self.sample(n)) }
        #expect(history.samples.map(\.packetsPerSecond) == [1, 2])
        for n in 3...7 { history.append(Self.sample(n)) }
        #expect(history.samples.map(\.packetsPerSecond) == [5, 6, 7])
        #expect(StatsHistory(capacity: 0).capacity == 1)
        #expect(EventHub.samples(in: .seconds(3600), every: .seconds(1)) == 3600)
        #expect(EventHub.samples(in: .seconds(3600), every: .zero) == 1)
        #expect(EventHub.samples(in: .seconds(10_000_000), every: .milliseconds(1)) == 86_400)
    }

    @Test("GET /api/stats/history serves the samples sent as stats events, with no client listening, bounded to its length")
    func servedLive() async throws {
        try await withService(.live, configure: { c in
            c.tickInterval = .milliseconds(100)
            c.statsHistory = .milliseconds(1000)
        }) { client, db, _ in
            #expect(try await client.call("/api/stats/history").status == .unauthorized)
            let now = Date().timeIntervalSince1970
            let traffic = trafficJSON((0..<50).map { i in ("198.18.0.7", "198.18.0.8", 40000 + i, 443, "tcp", 1000, now, ["ACK"]) })
            #expect(try await client.call("/api/traffic", .post, token: db.agentToken, json: traffic).status == .accepted)
            func history() async throws -> (interval: Double?, samples: [[String: Any]]) {
                let body = try await client.call("/api/stats/history", token: db.viewerToken).object()
                return (body["interval_seconds"] as? Double, body["samples"] as? [[String: Any]] ?? [])
            }
            try await waitFor("a sample counting the posted packets") {
                try await history().samples.contains { ($0["packets_per_second"] as? Double ?? 0) > 0 }
            }
            // More ticks than the ring holds: it stays at ten, oldest first, the newest recent.
            try await waitFor("the ring to fill") { try await history().samples.count == 10 }
            let first = try await history().samples.compactMap { $0["time"] as? String }
            try await waitFor("the ring to move on") {
                try await history().samples.compactMap { $0["time"] as? String }.first != first.first
            }
            let (interval, samples) = try await history()
            #expect(interval == 0.1)
            #expect(samples.count == 10)
            let times = samples.compactMap { ($0["time"] as? String).flatMap(Timestamp.parseRFC3339) }
            #expect(times.count == 10 && times == times.sorted())
            #expect(Double(times.last ?? 0) / 1e9 > Date().timeIntervalSince1970 - 5)
            let spec = OpenAPIDocument(try await client.call("/openapi.yaml").text)
            #expect(samples.allSatisfy { Set($0.keys) == spec.required["Stats"] })
        }
    }
}
