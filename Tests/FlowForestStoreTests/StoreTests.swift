import FlowForestCore
@testable import FlowForestStore
import FlowForestTestSupport
import Foundation
import Logging
import Metrics
import MetricsTestKit
import ServiceLifecycle
import Testing

/// The two real backends every store test runs against.
enum Backend: String, CaseIterable, CustomTestStringConvertible {
    case sqlite, postgresql
    var testDescription: String { rawValue }
}

/// Opens a fresh store on `backend` (a new SQLite file, or a new PostgreSQL
/// server), runs `body`, and removes it all afterwards.
func withFreshStore<T>(_ backend: Backend, _ body: (Store, StoreLocation) async throws -> T) async throws -> T {
    var logger = Logger(label: "store-test")
    logger.logLevel = .warning
    // Two minutes a call, not the daemon's 30 s: these tests are about what
    // the store keeps, and a fresh cluster among `make test`'s parallel
    // tiers on two cores has taken over 30 s to answer its first connection.
    func run(_ location: StoreLocation) async throws -> T {
        let store = try await Store.open(location, logger: logger, queryTimeout: .seconds(120))
        do {
            let r = try await body(store, location)
            await store.close()
            return r
        } catch {
            await store.close()
            throw error
        }
    }
    switch backend {
    case .sqlite:
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("flowforest-store-\(getpid())-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        return try await run(StoreLocation(dir.appendingPathComponent("flowforest.db").path))
    case .postgresql:
        return try await ThrowawayPostgres.with { pg in try await run(StoreLocation(pg.url)) }
    }
}

func anomaly(_ i: Int, src: String = "198.18.0.1", dst: String = "198.18.0.2", severity: Severity = .high,
             kind: AnomalyKind = .flow, timeMs: Int64 = 1_700_000_000_000) -> Anomaly {
    Anomaly(sensor: "s1", timeMs: timeMs + Int64(i), kind: kind,
            sourceAddress: IPAddress(src), destinationAddress: IPAddress(dst),
            sourcePort: 40000, destinationPort: UInt16(1 + i % 1000), ipProtocol: IPProtocol.tcp,
            score: 0.7, severity: severity, label: .portScan,
            explanation: [ExplanationItem(feature: "distinct_dst_ports_10s", value: 412, baseline: 9, direction: "above",
                                          text: "distinct destination ports 412 (baseline p99: 9)")],
            features: ["distinct_dst_ports_10s": 412, "syn_ratio": 0.9], flowIDs: [UInt64(i)])
}

func flow(_ id: UInt64, src: String = "198.18.0.1", dst: String = "198.18.0.2", lastMs: Int64, bytes: UInt64 = 1000) -> FlowRecord {
    var fwd = DirectionStats()
    fwd.packets = 10
    fwd.bytes = bytes
    fwd.firstSeenNs = UInt64(lastMs - 500) * 1_000_000
    fwd.lastSeenNs = UInt64(lastMs) * 1_000_000
    fwd.flags = [.syn, .ack]
    var rev = DirectionStats()
    rev.packets = 8
    rev.bytes = bytes / 2
    rev.firstSeenNs = UInt64(lastMs - 400) * 1_000_000
    rev.lastSeenNs = UInt64(lastMs - 1) * 1_000_000
    rev.flags = [.syn, .ack]
    return FlowRecord(id: id, sourceAddress: IPAddress(src)!, destinationAddress: IPAddress(dst)!,
                      sourcePort: 40000, destinationPort: 443, ipProtocol: IPProtocol.tcp,
                      forward: fwd, reverse: rev, state: .ended, endReason: .idle)
}

@Suite("Store on SQLite and PostgreSQL", .serialized)
struct StoreTests {
    @Test("migrations run once and reopening keeps the data", arguments: Backend.allCases)
    func migrationsAreIdempotent(backend: Backend) async throws {
        try await withFreshStore(backend) { store, location in
            try await store.insertAnomalies([PendingAnomaly(anomaly: anomaly(1))])
            // A second open of the same database applies nothing and sees the row.
            let again = try await Store.open(location, logger: Logger(label: "t"))
            #expect(try await again.anomalyCount() == 1)
            await again.close()
        }
    }

    @Test("anomalies round-trip with features and explanation", arguments: Backend.allCases)
    func anomalyRoundTrip(backend: Backend) async throws {
        try await withFreshStore(backend) { store, _ in
            let original = anomaly(7)
            let ids = try await store.insertAnomalies([PendingAnomaly(uid: "u7", anomaly: original)])
            let id = try #require(ids["u7"])
            let loaded = try #require(try await store.anomaly(id: id))
            var expected = original
            expected.id = id
            #expect(loaded == expected)
            #expect(try await store.anomaly(id: id + 1000) == nil)
        }
    }

    @Test("a retried batch is written once", arguments: Backend.allCases)
    func idempotentInsert(backend: Backend) async throws {
        try await withFreshStore(backend) { store, _ in
            let batch = (0..<5).map { PendingAnomaly(uid: "u\($0)", anomaly: anomaly($0)) }
            let first = try await store.insertAnomalies(batch)
            let second = try await store.insertAnomalies(batch)
            #expect(first == second)
            #expect(try await store.anomalyCount() == 5)
        }
    }

    @Test("filters by address, time, severity and kind; pages by cursor", arguments: Backend.allCases)
    func filtersAndPagination(backend: Backend) async throws {
        try await withFreshStore(backend) { store, _ in
            var batch: [PendingAnomaly] = []
            for i in 0..<30 {
                let severity: Severity = i % 3 == 0 ? .critical : .low
                let kind: AnomalyKind = i % 2 == 0 ? .host : .flow
                let src = i < 10 ? "198.18.0.10" : "198.18.0.11"
                let dst = i < 20 ? "198.18.1.1" : "198.18.0.10"
                batch.append(PendingAnomaly(anomaly: anomaly(i, src: src, dst: dst, severity: severity, kind: kind)))
            }
            try await store.insertAnomalies(batch)
            // Address matches source (0..<10) or destination (20..<30).
            let byIP = try await store.anomalies(AnomalyQuery(address: IPAddress("198.18.0.10"), limit: 100))
            #expect(byIP.anomalies.count == 20)
            #expect(byIP.nextCursor == nil)
            let critical = try await store.anomalies(AnomalyQuery(severities: [.critical]))
            #expect(critical.anomalies.count == 10)
            #expect(critical.anomalies.allSatisfy { $0.severity == .critical })
            let hosts = try await store.anomalies(AnomalyQuery(kinds: [.host]))
            #expect(hosts.anomalies.count == 15)
            let base: Int64 = 1_700_000_000_000
            let window = try await store.anomalies(AnomalyQuery(sinceMs: base + 5, untilMs: base + 15))
            #expect(window.anomalies.map(\.timeMs) == (5..<15).reversed().map { base + Int64($0) })
            // Three pages of 12, 12, 6 with no overlap, newest first.
            var seen: [Int64] = []
            var cursor: Int64? = nil
            var pages = 0
            repeat {
                let page = try await store.anomalies(AnomalyQuery(limit: 12, beforeID: cursor))
                seen += page.anomalies.compactMap(\.id)
                cursor = page.nextCursor
                pages += 1
            } while cursor != nil
            #expect(pages == 3)
            #expect(seen.count == 30)
            #expect(seen == seen.sorted(by: >))
            #expect(Set(seen).count == 30)
        }
    }

    @Test("acknowledging marks one anomaly", arguments: Backend.allCases)
    func acknowledge(backend: Backend) async throws {
        try await withFreshStore(backend) { store, _ in
            let ids = try await store.insertAnomalies([PendingAnomaly(uid: "a", anomaly: anomaly(1)), PendingAnomaly(uid: "b", anomaly: anomaly(2))])
            #expect(try await store.acknowledgeAnomaly(id: ids["a"]!, by: "alice"))
            #expect(try await store.acknowledgeAnomaly(id: 999_999, by: "alice") == false)
            #expect(try await store.anomaly(id: ids["a"]!)?.acknowledged == true)
            #expect(try await store.anomaly(id: ids["b"]!)?.acknowledged == false)
            let open = try await store.anomalies(AnomalyQuery(acknowledged: false))
            #expect(open.anomalies.map(\.id) == [ids["b"]!])
        }
    }

    @Test("flows are stored once, listed, summarised per host and expire", arguments: Backend.allCases)
    func flows(backend: Backend) async throws {
        try await withFreshStore(backend) { store, _ in
            let now: Int64 = 1_800_000_000_000
            var records = [
                flow(1, src: "198.18.0.1", dst: "198.18.0.2", lastMs: now - 10, bytes: 1000),
                flow(2, src: "198.18.0.1", dst: "198.18.0.3", lastMs: now - 20, bytes: 3000),
                flow(3, src: "198.18.0.4", dst: "198.18.0.2", lastMs: now - 30, bytes: 100),
                flow(4, src: "198.18.0.5", dst: "198.18.0.2", lastMs: now - 3_600_000, bytes: 100),
            ]
            // Collected flows name their exporter, with the ingress interface after "%".
            (records[0].interfaceName, records[2].interfaceName, records[3].interfaceName) = ("198.18.9.1%3", "198.18.9.1", "198.18.9.10")
            try await store.insertFlows(records.map { StoredFlow(sensor: "s1", record: $0) })
            try await store.insertFlows(records.map { StoredFlow(sensor: "s1", record: $0) })
            #expect(try await store.flowCount() == 4)
            let recent = try await store.recentFlows(limit: 10)
            #expect(recent.map(\.record.id) == [1, 2, 3, 4])
            #expect(recent[1].record.json(sensor: "s1") == records[1].json(sensor: "s1"))
            let forHost = try await store.recentFlows(address: IPAddress("198.18.0.2"), limit: 10)
            #expect(forHost.map(\.record.id) == [1, 3, 4])
            #expect(try await store.recentFlows(interface: "198.18.9.1", limit: 10).map(\.record.id) == [1, 3])
            #expect(try await store.recentFlows(interface: "198.18.9.1%3", limit: 10).map(\.record.id) == [1])
            let hosts = try await store.hosts(sinceMs: now - 60_000)
            #expect(hosts.map(\.address) == ["198.18.0.1", "198.18.0.4"])
            #expect(hosts[0].flows == 2 && hosts[0].peers == 2 && hosts[0].bytes == 1500 + 4500 && hosts[0].packets == 36)
            #expect(try await store.deleteFlows(lastSeenBeforeMs: now - 60_000) == 1)
            #expect(try await store.flowCount() == 3)
        }
    }

    @Test("counts past 2^63 are stored as 2^63 - 1 and a host's sums stop there instead of failing", arguments: Backend.allCases)
    func hugeCounts(backend: Backend) async throws {
        try await withFreshStore(backend) { store, _ in
            let now: Int64 = 1_800_000_000_000
            let records = (1...3).map { id -> FlowRecord in
                var r = flow(UInt64(id), src: "198.18.0.1", dst: "198.18.0.\(id + 1)", lastMs: now - 10, bytes: .max)
                r.forward.packets = .max
                r.reverse.packets = 1 << 62
                return r
            }
            try await store.insertFlows(records.map { StoredFlow(sensor: "s1", record: $0) })
            let stored = try await store.recentFlows(limit: 10)
            #expect(stored.count == 3 && stored.allSatisfy { $0.record.forward.bytes == UInt64(Int64.max) })
            let hosts = try await store.hosts(sinceMs: now - 60_000)
            #expect(hosts.map(\.address) == ["198.18.0.1"])
            #expect(hosts.first?.bytes == .max && hosts.first?.packets == .max && hosts.first?.flows == 3)
        }
    }

    @Test("a flow row with times no sensor writes (negative, past the year 2500) reads as a range's end, not a trap", arguments: Backend.allCases)
    func hostileStoredTimes(backend: Backend) async throws {
        try await withFreshStore(backend) { store, _ in
            let now: Int64 = 1_800_000_000_000
            try await store.insertFlows([1, 2].map { StoredFlow(sensor: "s1", record: flow($0, lastMs: now)) })
            // Another sensor sharing the database, or a hand, wrote these.
            try await store.withSQL(.write) { db in
                try await db.raw("UPDATE flows SET first_seen_ms = -5 WHERE flow_id = 1").run()
                try await db.raw("UPDATE flows SET last_seen_ms = 9000000000000000000 WHERE flow_id = 2").run()
            }
            let stored = try await store.recentFlows(limit: 10)
            #expect(stored.count == 2)
            let one = try #require(stored.first { $0.record.id == 1 }), two = try #require(stored.first { $0.record.id == 2 })
            #expect(one.record.forward.firstSeenNs == 0)
            #expect(two.record.forward.lastSeenNs < Timestamp.endNs)
        }
    }

    @Test("a sensor keeps its newest 24 models; the latest is the last saved, other sensors' are untouched", arguments: Backend.allCases)
    func modelRetention(backend: Backend) async throws {
        try await withFreshStore(backend) { store, _ in
            try await store.saveModel(sensor: "other", description: "version 1", body: "{}")
            var last: Int64 = 0
            for version in 1...30 { last = try await store.saveModel(sensor: "s1", description: "version \(version)", body: "{\"v\":\(version)}") }
            #expect(try await store.modelCount(sensor: "s1") == Store.modelsKept)
            #expect(try await store.modelCount(sensor: "other") == 1)
            let latest = try #require(try await store.latestModel(sensor: "s1"))
            #expect(latest.id == last && latest.body == "{\"v\":30}")
        }
    }

    @Test("users and tokens authenticate; secrets are not stored in clear", arguments: Backend.allCases)
    func credentials(backend: Backend) async throws {
        try await withFreshStore(backend) { store, _ in
            #expect(try await store.credentialCount() == 0)
            try await store.addUser(name: "alice", password: "correct horse", role: .admin)
            await #expect(throws: StoreError.self) { try await store.addUser(name: "alice", password: "another one", role: .viewer) }
            await #expect(throws: StoreError.self) { try await store.addUser(name: "bob", password: "short", role: .viewer) }
            #expect(try await store.authenticateUser(name: "alice", password: "correct horse") == Principal(name: "alice", role: .admin))
            #expect(try await store.authenticateUser(name: "alice", password: "wrong horse") == nil)
            #expect(try await store.authenticateUser(name: "nobody", password: "correct horse") == nil)
            let token = try await store.addToken(name: "agent-1", role: .viewer)
            #expect(token.hasPrefix("fft_") && token.count == 68)
            #expect(try await store.authenticateToken(token) == Principal(name: "agent-1", role: .viewer))
            #expect(try await store.authenticateToken(token + "x") == nil)
            #expect(try await store.credentialCount() == 2)
            #expect(try await store.removeToken(name: "agent-1"))
            #expect(try await store.authenticateToken(token) == nil)
        }
    }

    @Test("the first credential leaves a marker that outlives every credential", arguments: Backend.allCases)
    func credentialsMarker(backend: Backend) async throws {
        try await withFreshStore(backend) { store, _ in
            #expect(try await store.credentialsWereConfigured() == false)
            _ = try await store.addToken(name: "feeder", role: .agent)
            #expect(try await store.tokens() == [Principal(name: "feeder", role: .agent)])
            try await store.addUser(name: "alice", password: "correct horse", role: .admin)
            #expect(try await store.credentialsWereConfigured())
            #expect(try await store.removeToken(name: "feeder"))
            #expect(try await store.removeUser(name: "alice"))
            #expect(try await store.credentialCount() == 0)
            #expect(try await store.credentialsWereConfigured(), "removing credentials does not remove the marker")
        }
    }

    @Test("the writer batches, reports ids and flushes at shutdown", arguments: Backend.allCases)
    func writerFlushes(backend: Backend) async throws {
        try await withFreshStore(backend) { store, _ in
            var configuration = StoreWriterConfiguration()
            configuration.batchSize = 7
            let writer = StoreWriter(store: store, configuration: configuration, logger: Logger(label: "w"),
                                     metricsFactory: NOOPMetricsHandler.instance)
            let group = ServiceGroup(services: [writer], logger: Logger(label: "g"))
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await group.run() }
                #expect(!writer.wroteSuccessfully(within: .seconds(3600)), "nothing was written yet")
                for i in 0..<20 { #expect(writer.enqueue(anomalies: [anomaly(i)])) }
                // Two sensors' arrays: each flow keeps its sensor (batches cutting
                // across arrays are RowQueueTests' part).
                writer.enqueue(flows: (1...50).map { flow(UInt64($0), lastMs: Store.nowMsForTests() - 1000) }, sensor: "s1")
                writer.enqueue(flows: (51...60).map { flow(UInt64($0), lastMs: Store.nowMsForTests() - 1000) }, sensor: "s2")
                // Shut down straight away: what is queued must still be written.
                await group.triggerGracefulShutdown()
                try await tasks.waitForAll()
            }
            #expect(writer.wroteSuccessfully(within: .seconds(3600)))
            #expect(try await store.anomalyCount() == 20)
            #expect(try await store.flowCount() == 60)
            let stored = try await store.recentFlows(limit: 100)
            #expect(stored.count == 60)
            for flow in stored { #expect(flow.sensor == (flow.record.id <= 50 ? "s1" : "s2"), "flow \(flow.record.id)") }
            // The stream of stored anomalies ends with the writer, so it can be read to the end.
            var ids: [Int64] = []
            for await batch in writer.storedAnomalies { ids += batch.compactMap(\.id) }
            #expect(ids.count == 20)
            #expect(Set(ids).count == 20)
        }
    }

    @Test("stored anomalies nobody reads live wait in a bounded buffer; older batches are dropped from it and counted, still stored")
    func liveBufferBounded() async throws {
        try await withFreshStore(.sqlite) { store, _ in
            var configuration = StoreWriterConfiguration()
            configuration.batchSize = 1
            let metrics = TestMetrics()
            let writer = StoreWriter(store: store, configuration: configuration, logger: Logger(label: "w"), metricsFactory: metrics)
            let group = ServiceGroup(services: [writer], logger: Logger(label: "g"))
            let n = StoreWriter.storedBuffer + 10
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await group.run() }
                for i in 0..<n { #expect(writer.enqueue(anomalies: [anomaly(i)])) }
                await group.triggerGracefulShutdown()
                try await tasks.waitForAll()
            }
            #expect(try await store.anomalyCount() == n)
            var live = 0
            for await batch in writer.storedAnomalies { live += batch.count }
            #expect(live == StoreWriter.storedBuffer)
            #expect(try metrics.expectCounter("flowforest_live_anomalies_dropped_total").totalValue == 10)
        }
    }

    @Test("a backlog is written batch after batch, not one batch per flush interval", arguments: Backend.allCases)
    func backlogWithoutPause(backend: Backend) async throws {
        try await withFreshStore(backend) { store, _ in
            var configuration = StoreWriterConfiguration()
            configuration.batchSize = 500
            // Paced at one batch per interval, 20,000 rows would take 40 batches, 400 s.
            configuration.flushInterval = .seconds(10)
            let writer = StoreWriter(store: store, configuration: configuration, logger: Logger(label: "w"),
                                     metricsFactory: NOOPMetricsHandler.instance)
            let group = ServiceGroup(services: [writer], logger: Logger(label: "g"))
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await group.run() }
                let now = Store.nowMsForTests()
                writer.enqueue(flows: (1...20_000).map { flow(UInt64($0), lastMs: now - 1000) }, sensor: "s1")
                // A backlog of a batch or more does not wait to accumulate: well within one interval.
                let deadline = ContinuousClock.now + .seconds(20)
                while writer.pendingTotal > 0 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
                #expect(writer.pendingTotal == 0, "\(writer.pendingTotal) rows still waiting after 20 s")
                await group.triggerGracefulShutdown()
                try await tasks.waitForAll()
            }
            #expect(try await store.flowCount() == 20_000)
        }
    }
}

extension Store {
    static func nowMsForTests() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }
}

/// The SQLite file holds token and password hashes: it and its WAL files must
/// be private whatever the umask.
@Suite("SQLite file permissions", .serialized)
struct StoreFileModeTests {
    func mode(_ path: String) -> mode_t? {
        var st = stat()
        return stat(path, &st) == 0 ? st.st_mode & 0o777 : nil
    }

    func withDirectory(_ body: (String) async throws -> Void) async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("flowforest-mode-\(getpid())-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        // The usual umask, which left the file 0644 before.
        let previous = umask(0o022)
        defer { umask(previous) }
        try await body(dir.appendingPathComponent("flowforest.db").path)
    }

    @Test("a new database, its -wal and -shm are 0600 after a write")
    func newFileIsPrivate() async throws {
        try await withDirectory { path in
            let store = try await Store.open(StoreLocation(path), logger: Logger(label: "mode-test"))
            _ = try await store.addToken(name: "agent", role: .viewer)
            for file in [path, path + "-wal", path + "-shm"] {
                #expect(mode(file) == 0o600, "\(file): \(String(mode(file) ?? 0, radix: 8))")
            }
            await store.close()
        }
    }

    @Test("an empty database path is refused: no throwaway database behind a healthy service", arguments: ["", "sqlite://"])
    func throwawayRefused(_ text: String) async throws {
        await #expect(throws: StoreError.self) { try await Store.open(StoreLocation(text), logger: Logger(label: "empty-test")) }
    }

    @Test("an existing world-readable database is made private when opened")
    func existingFileIsTightened() async throws {
        try await withDirectory { path in
            #expect(FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o644]))
            let store = try await Store.open(StoreLocation(path), logger: Logger(label: "mode-test"))
            _ = try await store.addToken(name: "agent", role: .viewer)
            for file in [path, path + "-wal", path + "-shm"] {
                #expect(mode(file) == 0o600, "\(file): \(String(mode(file) ?? 0, radix: 8))")
            }
            await store.close()
        }
    }
}
