import FlowForestCore
import FlowForestStore
import FlowForestTestSupport
import Foundation
import Logging
import Metrics
import Testing

private func incident(_ uid: String, actor: String = "198.18.0.1", target: String = "198.18.0.2", firstS: Int64 = 0,
                      lastS: Int64 = 10, count: Int = 2, state: IncidentState = .open,
                      severity: Severity = .high, label: AnomalyLabel = .portScan) -> Incident {
    Incident(uid: uid, sensor: "s1", label: label, actors: [IPAddress(actor)!], targets: [IPAddress(target)!],
             firstSeenMs: 1_790_000_000_000 + firstS * 1000, lastSeenMs: 1_790_000_000_000 + lastS * 1000,
             peakSeverity: severity, peakScore: 0.83, anomalyCount: count, state: state,
             explanation: [ExplanationItem(feature: "distinct_dst_ports_10s", value: 412, baseline: 9, direction: "above",
                                           text: "distinct destination ports 412 (baseline p99: 9)")])
}

@Suite("Incidents in the store, SQLite and PostgreSQL", .serialized)
struct IncidentStoreTests {
    @Test("an incident round-trips, its updates change one row, and it lists its anomalies' ids", arguments: Backend.allCases)
    func roundTrip(backend: Backend) async throws {
        try await withFreshStore(backend) { store, _ in
            var a1 = anomaly(1), a2 = anomaly(2), other = anomaly(3)
            a1.incidentUID = "inc-a"
            a2.incidentUID = "inc-a"
            other.incidentUID = "inc-b"
            let ids = try await store.insertAnomalies([PendingAnomaly(uid: "u1", anomaly: a1), PendingAnomaly(uid: "u2", anomaly: a2),
                                                       PendingAnomaly(uid: "u3", anomaly: other)])
            let opened = incident("inc-a")
            let stored = try await store.upsertIncidents([opened])
            let id = try #require(stored["inc-a"]?.id)
            var expected = opened
            expected.id = id
            expected.anomalyIDs = [ids["u1"]!, ids["u2"]!]
            #expect(stored["inc-a"] == expected)
            #expect(try await store.incident(id: id) == expected)
            // Later changes of the same incident update its row in place; the latest state wins within one write.
            var updated = opened
            updated.lastSeenMs += 50_000
            updated.anomalyCount = 7
            updated.actors.append(IPAddress("2001:db8::1")!)
            var closed = updated
            closed.state = .closed
            let again = try await store.upsertIncidents([updated, closed])
            #expect(again["inc-a"]?.id == id)
            let read = try #require(try await store.incident(id: id))
            #expect(read.state == .closed && read.anomalyCount == 7 && read.actors.last == IPAddress("2001:db8::1"))
            #expect(read.anomalyIDs == [ids["u1"]!, ids["u2"]!])
            #expect(try await store.incidents(IncidentQuery()).incidents.count == 1)
            #expect(try await store.anomaly(id: ids["u1"]!)?.incidentUID == "inc-a")
        }
    }

    @Test("listing filters by address, state, severity, label and time, and pages by cursor", arguments: Backend.allCases)
    func listing(backend: Backend) async throws {
        try await withFreshStore(backend) { store, _ in
            var all: [Incident] = []
            for i in 0..<12 {
                all.append(incident("inc-\(i)", actor: "198.18.0.\(i % 3 + 1)", target: "198.18.1.\(i)", firstS: Int64(i) * 100,
                                    lastS: Int64(i) * 100 + 50, state: i % 2 == 0 ? .closed : .open,
                                    severity: i % 4 == 0 ? .critical : .medium, label: i < 6 ? .portScan : .synFlood))
            }
            try await store.upsertIncidents(all)
            func uids(_ q: IncidentQuery) async throws -> [String] { try await store.incidents(q).incidents.map(\.uid) }
            #expect(try await uids(IncidentQuery(address: IPAddress("198.18.0.1"))) == ["inc-9", "inc-6", "inc-3", "inc-0"])
            // 198.18.1.1 must not match 198.18.1.10 or .11: the match is on the whole address.
            #expect(try await uids(IncidentQuery(address: IPAddress("198.18.1.1"))) == ["inc-1"])
            #expect(try await uids(IncidentQuery(state: .open)).count == 6)
            #expect(try await uids(IncidentQuery(severities: [.critical])) == ["inc-8", "inc-4", "inc-0"])
            #expect(try await uids(IncidentQuery(labels: [.synFlood], state: .closed)) == ["inc-10", "inc-8", "inc-6"])
            // Seen in [300 s, 500 s): last seen at or after 300 (not inc-2, last seen at 250), first seen before 500.
            let window = IncidentQuery(sinceMs: 1_790_000_000_000 + 300_000, untilMs: 1_790_000_000_000 + 500_000)
            #expect(try await uids(window) == ["inc-4", "inc-3"])
            var seen: [String] = []
            var query = IncidentQuery(limit: 5)
            while true {
                let page = try await store.incidents(query)
                seen += page.incidents.map(\.uid)
                guard let next = page.nextCursor else { break }
                query.beforeID = next
            }
            #expect(seen == (0..<12).reversed().map { "inc-\($0)" })
        }
    }

    @Test("a long incident serves the ids of its latest 1000 anomalies, oldest first", arguments: Backend.allCases)
    func boundedAnomalyIDs(backend: Backend) async throws {
        try await withFreshStore(backend) { store, _ in
            let pending = (0..<1005).map { i -> PendingAnomaly in
                var a = anomaly(i)
                a.incidentUID = "inc-long"
                return PendingAnomaly(uid: "u\(i)", anomaly: a)
            }
            let ids = try await store.insertAnomalies(pending)
            var long = incident("inc-long")
            long.anomalyCount = 1005
            let stored = try #require(try await store.upsertIncidents([long])["inc-long"])
            #expect(stored.anomalyCount == 1005)
            #expect(stored.anomalyIDs == (5..<1005).map { ids["u\($0)"]! })
        }
    }

    @Test("a restart closes what the previous run left open, for its own sensor only", arguments: Backend.allCases)
    func restartCloses(backend: Backend) async throws {
        try await withFreshStore(backend) { store, _ in
            var elsewhere = incident("inc-other")
            elsewhere.sensor = "s2"
            try await store.upsertIncidents([incident("inc-1"), incident("inc-2", state: .closed), elsewhere])
            #expect(try await store.closeOpenIncidents(sensor: "s1") == 1)
            #expect(try await store.incidents(IncidentQuery(state: .open)).incidents.map(\.uid) == ["inc-other"])
        }
    }

    @Test("the writer stores incident changes after their anomalies and publishes each change with ids", arguments: Backend.allCases)
    func writerPublishes(backend: Backend) async throws {
        try await withFreshStore(backend) { store, _ in
            var config = StoreWriterConfiguration()
            config.flushInterval = .milliseconds(10)
            let writer = StoreWriter(store: store, configuration: config, logger: Logger(label: "t"), metricsFactory: NOOPMetricsHandler.instance)
            let feed = writer.storedIncidents.subscribe()
            var a = anomaly(1)
            a.incidentUID = "inc-w"
            #expect(writer.enqueue(anomalies: [a]))
            var closed = incident("inc-w", count: 1)
            closed.state = .closed
            #expect(writer.enqueue(incidents: [IncidentUpdate(change: .opened, incident: incident("inc-w", count: 1)),
                                               IncidentUpdate(change: .closed, incident: closed)]))
            let task = Task { try await writer.run() }
            defer { task.cancel() }
            var iterator = feed.makeAsyncIterator()
            let published = try #require(await iterator.next(), "the writer published nothing")
            #expect(published.map(\.change) == [.opened, .closed])
            #expect(published.allSatisfy { $0.incident.id != nil && $0.incident.anomalyIDs.count == 1 })
            #expect(published[0].incident.state == .open && published[1].incident.state == .closed)
        }
    }
}
