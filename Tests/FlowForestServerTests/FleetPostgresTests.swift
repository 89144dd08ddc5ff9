import FlowForestCore
import FlowForestPipeline
import FlowForestServer
import FlowForestStore
import FlowForestTestSupport
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

/// The fleet layout: several daemons, each with its own sensor name, write
/// their anomalies and incidents to one PostgreSQL database, and the API of
/// any of them lists all of them, each naming its sensor.
@Suite("Fleet: several daemons on one PostgreSQL", .serialized)
struct FleetPostgresTests {
    /// Stores opened at once on `url`, as daemons starting together do: each runs the migrations.
    static func openTogether(_ count: Int, _ url: String) async throws -> [Store] {
        try await withThrowingTaskGroup(of: Store.self) { group in
            for _ in 0..<count {
                // A generous deadline: a fresh cluster on a loaded machine can be slow to answer at first.
                group.addTask { try await Store.open(StoreLocation(url), logger: quietLogger, queryTimeout: .seconds(120)) }
            }
            var stores: [Store] = []
            do {
                for try await store in group { stores.append(store) }
            } catch {
                for store in stores { await store.close() }
                throw error
            }
            return stores
        }
    }

    @Test("daemons starting together on an empty database race through the migrations: every one opens, the schema is whole")
    func migrationsRace() async throws {
        try await ThrowawayPostgres.with { pg in
            let stores = try await Self.openTogether(6, pg.url)
            #expect(stores.count == 6)
            // Every store works on the one schema: a write through one is read through the others.
            do {
                let token = try await stores[0].addToken(name: "fleet", role: .viewer)
                #expect(!token.isEmpty)
                for store in stores { #expect(try await store.credentialCount() == 1) }
                try await stores[1].insertAnomalies([storedAnomaly(0, src: "198.18.0.5", dst: "198.18.9.9", severity: .high)])
                for store in stores { #expect(try await store.anomalyCount() == 1) }
            } catch {
                for store in stores { await store.close() }
                throw error
            }
            for store in stores { await store.close() }
        }
    }

    @Test("two daemons with their own sensor names write one PostgreSQL at once; the API of either lists both sensors' anomalies and incidents")
    func twoSensorsOneDatabase() async throws {
        try await ThrowawayPostgres.with { pg in
            let db = try await TestDatabase.make(credentials: false)
            defer { db.remove() }
            let stores = try await Self.openTogether(2, pg.url)
            let sensors = ["edge-1", "edge-2"]
            do {
                var apps: [any ApplicationProtocol] = []
                for (store, name) in zip(stores, sensors) {
                    var c = testConfiguration(db)
                    c.database = StoreLocation(pg.url)
                    c.sensorName = name
                    c.incidents = IncidentConfiguration(quietGap: .seconds(5))
                    apps.append(try await buildApplicationParts(configuration: c, flowSource: nil, logger: quietLogger,
                                                                detector: ScansEveryEndedFlow(), store: store).0)
                }
                // Credentials are rows of the one database: made through one daemon's store, good at both.
                let agent = try await stores[0].addToken(name: "agents", role: .agent)
                let viewer = try await stores[1].addToken(name: "dashboards", role: .viewer)
                try await Self.runBoth(apps[0], apps[1]) { edge1, edge2 in
                    try await Self.check(edge1, edge2, agent: agent, viewer: viewer)
                }
            } catch {
                for store in stores { await store.close() }
                throw error
            }
            for store in stores { await store.close() }
        }
    }

    @Test("NUL in a sign-in name, a rule's reason or a name filter is refused or fails as input, never a 503 from PostgreSQL")
    func nulCharacters() async throws {
        try await ThrowawayPostgres.with { pg in
            let db = try await TestDatabase.make(credentials: false)
            defer { db.remove() }
            let store = try await Store.open(StoreLocation(pg.url), logger: quietLogger, queryTimeout: .seconds(120))
            do {
                var c = testConfiguration(db)
                c.database = StoreLocation(pg.url)
                let app = try await buildApplicationParts(configuration: c, flowSource: nil, logger: quietLogger,
                                                          detector: NeverDetects(), store: store).0
                let admin = try await store.addToken(name: "ops", role: .admin)
                try await app.test(.live) { client in
                    let login = try await client.call("/api/login", .post, json: #"{"username": "a\u0000b", "password": "x"}"#)
                    #expect(login.status == .unauthorized, "\(login.status) \(login.text)")
                    let rule = try await client.call("/api/suppressions", .post, token: admin,
                                                     json: #"{"label": "port scan", "reason": "nul\u0000here"}"#)
                    #expect(rule.status == .badRequest && rule.text.contains("reason"), "\(rule.status) \(rule.text)")
                    for path in ["/api/anomalies?interface=a%00b", "/api/incidents?interface=a%00b", "/api/flows?interface=a%00b",
                                 "/api/anomalies?sensor=a%00b", "/api/incidents?sensor=a%00b"] {
                        let r = try await client.call(path, token: admin)
                        #expect(r.status == .badRequest, "\(path): \(r.status) \(r.text)")
                    }
                }
            } catch {
                await store.close()
                throw error
            }
            await store.close()
        }
    }

    static func runBoth(_ a: some ApplicationProtocol, _ b: some ApplicationProtocol,
                        _ body: @escaping @Sendable (any TestClientProtocol, any TestClientProtocol) async throws -> Void) async throws {
        try await a.test(.live) { first in
            try await b.test(.live) { second in try await body(first, second) }
        }
    }

    /// Each sensor sees its own scan, posted at the same time; each API lists both.
    static func check(_ edge1: any TestClientProtocol, _ edge2: any TestClientProtocol, agent: String, viewer: String) async throws {
        let now = Date().timeIntervalSince1970
        // Twenty batches a sensor, both sensors at once: concurrent writers on the one database.
        func scan(_ attacker: String, _ victim: String, batch: Int) -> String {
            trafficJSON((1...20).map { (attacker, victim, 40000 + batch, batch * 20 + $0, "tcp", 60, now, ["SYN"]) })
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for batch in 0..<20 {
                group.addTask {
                    let r = try await edge1.call("/api/traffic", .post, token: agent, json: scan("198.18.0.7", "198.18.1.7", batch: batch))
                    #expect(r.status == .accepted, "\(r.text)")
                }
                group.addTask {
                    let r = try await edge2.call("/api/traffic", .post, token: agent, json: scan("198.18.0.17", "198.18.1.17", batch: batch))
                    #expect(r.status == .accepted, "\(r.text)")
                }
            }
            try await group.waitForAll()
        }
        for client in [edge1, edge2] {
            func incidents(_ query: String = "") async throws -> [[String: Any]] {
                try await client.call("/api/incidents?limit=100" + query, token: viewer).object()["incidents"] as? [[String: Any]] ?? []
            }
            func anomalies(_ query: String) async throws -> [[String: Any]] {
                try await client.call("/api/anomalies?limit=1000" + query, token: viewer).object()["anomalies"] as? [[String: Any]] ?? []
            }
            // Every ended flow is one anomaly: 400 a sensor, and each sensor's scan closes as one incident.
            try await waitFor("both sensors' 400 anomalies and closed incidents listed by one API", seconds: 60) {
                let all = try await incidents()
                let first = try await anomalies("&sensor=edge-1").count, second = try await anomalies("&sensor=edge-2").count
                return first == 400 && second == 400 && all.count == 2 && all.allSatisfy { $0["state"] as? String == "closed" }
            }
            for (sensor, attacker) in [("edge-1", "198.18.0.7"), ("edge-2", "198.18.0.17")] {
                let own = try await anomalies("&ip=\(attacker)")
                #expect(own.count == 400 && own.allSatisfy { $0["sensor"] as? String == sensor }, "\(own.prefix(2))")
                let incident = try await incidents("&sensor=\(sensor)")
                #expect(incident.count == 1, "\(incident)")
                #expect(incident.first?["sensor"] as? String == sensor)
                #expect(incident.first?["actors"] as? [String] == [attacker])
                #expect(incident.first?["anomaly_count"] as? Int == 400, "\(incident)")
            }
        }
    }
}
