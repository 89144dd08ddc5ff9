import FlowForestCore
import FlowForestServer
import FlowForestStore
import FlowForestTestSupport
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

@Suite("PostgreSQL outage", .serialized)
struct OutageTests {
    /// The service's store, opened once PostgreSQL answers within
    /// `queryTimeout`: a fresh cluster on a busy machine can be slower at
    /// first, and the setup must not fail on what a test is not about.
    static func openWhenAnswering(_ location: StoreLocation, queryTimeout: Duration) async throws -> Store {
        var opened: Store?
        try await waitFor("PostgreSQL to answer within \(queryTimeout)", seconds: 120) {
            guard let s = try? await Store.open(location, logger: quietLogger, queryTimeout: queryTimeout) else { return false }
            if (try? await s.credentialCount()) != nil { opened = s; return true }
            await s.close()
            return false
        }
        return try #require(opened)
    }

    @Test("shutdown's last flush against a frozen PostgreSQL ends at its grace and counts what it could not write")
    func flushAgainstFrozenDatabase() async throws {
        try await ThrowawayPostgres.with { pg in
            // The query deadline is far longer than the grace: the flush must not wait for it.
            let store = try await Store.open(StoreLocation(pg.url), logger: quietLogger, queryTimeout: .seconds(120))
            let metrics = FlowForestMetrics()
            let writer = StoreWriter(store: store, configuration: StoreWriterConfiguration(), logger: quietLogger,
                                     metricsFactory: metrics.factory)
            #expect(writer.enqueue(anomalies: (0..<10).map { storedAnomaly($0, src: "198.18.0.\($0 + 1)", dst: "198.18.1.1", severity: .high).anomaly }))
            try pg.signalAll(SIGSTOP)
            let started = ContinuousClock.now
            await writer.flush(deadline: .now + .seconds(3))
            let took = ContinuousClock.now - started
            try pg.signalAll(SIGCONT)
            await store.close()
            // Far below the 120 s a single write would wait without the grace; the
            // margin is for the service tier's parallel suites, which can keep the
            // cooperative threads from waking the deadline on time (15.4 s seen in CI).
            #expect(took < .seconds(60), "the flush took \(took) against a 3 s grace")
            #expect(writer.pendingTotal == 0)
            let dropped = metrics.render().split(separator: "\n").first { $0.hasPrefix("flowforest_store_dropped_total{table=\"anomalies\"}") }
            #expect(dropped.flatMap { Double($0.split(separator: " ").last ?? "") } == 10, "\(dropped ?? "no dropped series")")
        }
    }

    @Test("a frozen PostgreSQL: health and /metrics answer within seconds that the store is unavailable, not after the 30 s query timeout")
    func frozenDatabase() async throws {
        try await ThrowawayPostgres.with { pg in
            let db = try await TestDatabase.make(credentials: false)
            defer { db.remove() }
            var configuration = testConfiguration(db)
            configuration.database = StoreLocation(pg.url)
            // Prometheus as docs/operations.md sets it up: a viewer token, no --open-metrics.
            let store = try await Self.openWhenAnswering(configuration.database, queryTimeout: .seconds(30))
            let (app, _) = try await buildApplicationParts(configuration: configuration, flowSource: nil, logger: quietLogger,
                                                           detector: NeverDetects(), store: store)
            let viewer = try await store.addToken(name: "prometheus", role: .viewer)
            do {
                try await app.test(.live) { client in
                    #expect(try await client.call("/api/health", token: viewer).object()["store"] as? String == "ok")
                    try pg.signalAll(SIGSTOP)
                    defer { try? pg.signalAll(SIGCONT) }
                    // Once past the writer's last success (1 s), health asks the database itself.
                    var slowest = Duration.zero
                    try await waitFor("health to report the frozen database", seconds: 60) {
                        let started = ContinuousClock.now
                        let r = try await client.call("/api/health", token: viewer)
                        slowest = max(slowest, ContinuousClock.now - started)
                        return (try? r.object()["store"] as? String) == "unavailable"
                    }
                    // Well below the 30 s query deadline each check waited before; a
                    // loaded machine may delay a 2 s deadline by seconds.
                    #expect(slowest < .seconds(20), "a health check took \(slowest) with the database frozen")
                    let started = ContinuousClock.now
                    let metrics = try await client.call("/metrics", token: viewer).text
                    #expect(ContinuousClock.now - started < .seconds(20))
                    let healthy = metrics.split(separator: "\n").first { $0.hasPrefix("flowforest_store_healthy ") }
                    #expect(healthy.flatMap { Double($0.split(separator: " ").last ?? "") } == 0, "\(healthy ?? "no flowforest_store_healthy")")
                    // A token the server has not confirmed yet cannot be checked: 503, as
                    // every store failure answers, with the security headers, not a bare 500.
                    let unchecked = try await client.call("/api/anomalies", token: "fft_" + String(repeating: "0", count: 64))
                    #expect(unchecked.status == .serviceUnavailable && unchecked.headers[.retryAfter] == "5", "\(unchecked.status)")
                    #expect(unchecked.headers[HTTPField.Name("X-Frame-Options")!] == "DENY")
                    try pg.signalAll(SIGCONT)
                    try await waitFor("health to recover", seconds: 60) {
                        (try? await client.call("/api/health", token: viewer).object()["store"] as? String) == "ok"
                    }
                }
            } catch {
                await store.close()
                throw error
            }
            await store.close()
        }
    }

    @Test("anomalies detected while PostgreSQL is down are written after it returns; the store-error counter shows the outage")
    func outage() async throws {
        try await ThrowawayPostgres.with { pg in
            let db = try await TestDatabase.make(credentials: false)
            defer { db.remove() }
            var configuration = testConfiguration(db)
            configuration.database = StoreLocation(pg.url)
            // A generous first deadline: on a loaded machine the first
            // connection to a fresh cluster can take longer than the default.
            let token = try await Store.withStore(configuration.database, logger: quietLogger, queryTimeout: .seconds(120)) {
                try await $0.addToken(name: "ops", role: .admin)
            }
            // A short deadline so the outage shows up quickly as store errors.
            let store = try await Self.openWhenAnswering(configuration.database, queryTimeout: .seconds(5))
            let (app, parts) = try await buildApplicationParts(configuration: configuration, flowSource: nil, logger: quietLogger,
                                                               detector: NeverDetects(), store: store)
            do {
            try await app.test(.live) { client in
                func batch(_ from: Int) -> [Anomaly] {
                    (from..<from + 10).map { storedAnomaly($0, src: "198.18.0.\($0 % 200 + 1)", dst: "198.18.1.1", severity: .high).anomaly }
                }
                #expect(parts.writer.enqueue(anomalies: batch(0)))
                // Stored and acknowledged: a row committed just before the server stops
                // can still lose its answer, and the writer then keeps it to write again.
                try await waitFor("the first 10 anomalies stored and off the writer's queue", seconds: 60) {
                    (try? await parts.store.anomalyCount()) == 10 && parts.writer.pending.anomalies == 0
                }

                try await pg.stop()
                #expect(parts.writer.enqueue(anomalies: batch(10)))
                #expect(parts.writer.enqueue(anomalies: batch(20)))
                // A cap, not a wait: the writer notices the outage on its next
                // write (at most its 5 s deadline), but on a loaded two-core
                // machine other suites' CPU-bound tests can keep its task from
                // running for over a minute.
                try await waitFor("a write error during the outage", seconds: 240) { parts.writer.errorCount >= 1 }
                #expect(parts.writer.pending.anomalies == 20)
                try await pg.start()

                try await waitFor("all 30 anomalies stored after the outage", seconds: 90) { (try? await parts.store.anomalyCount()) == 30 }
                let page = try await parts.store.anomalies(AnomalyQuery(limit: 100))
                let written = Set(page.anomalies.map { "\($0.sourceAddress!)-\($0.timeMs)" })
                let detected = Set((0..<30).map { i in "198.18.0.\(i % 200 + 1)-\(1_790_000_000_000 + Int64(i) * 1000)" })
                #expect(written == detected)
                let metrics = try await client.call("/metrics", token: token).text
                let line = metrics.split(separator: "\n").first { $0.hasPrefix("flowforest_store_errors_total{operation=\"write\"}") }
                let value = line.flatMap { Double($0.split(separator: " ").last ?? "") } ?? 0
                #expect(value >= 1 && value == Double(parts.writer.errorCount), "\(line ?? "no store error series")")
            }
            } catch {
                await store.close()
                throw error
            }
            await store.close()
        }
    }
}
