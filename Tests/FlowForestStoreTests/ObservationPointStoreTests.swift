import FlowForestCore
import FlowForestStore
import Testing

/// Anomalies keep the interface or exporter they were observed at, and
/// anomaly and incident listings filter by it, on both backends.
@Suite("Anomalies and incidents by interface or exporter, SQLite and PostgreSQL", .serialized)
struct ObservationPointStoreTests {
    /// (uid, interface, incident): two anomalies through exporter 198.18.9.1
    /// (with and without an ingress index), one through 198.18.9.10, which
    /// shares its prefix, one on a local interface, one from a capture file.
    static let rows: [(String, String?, String)] = [
        ("a", "198.18.9.1%3", "inc-1"), ("b", "198.18.9.1", "inc-1"), ("c", "198.18.9.10%3", "inc-2"),
        ("d", "eth_0", "inc-3"), ("e", nil, "inc-4"),
    ]

    @Test("an exporter's address matches it with any ingress index, nothing else; incidents follow their anomalies", arguments: Backend.allCases)
    func filters(backend: Backend) async throws {
        try await withFreshStore(backend) { store, _ in
            var pending: [PendingAnomaly] = []
            for (i, (uid, point, incidentUID)) in Self.rows.enumerated() {
                var a = anomaly(i)
                a.interfaceName = point
                a.incidentUID = incidentUID
                pending.append(PendingAnomaly(uid: uid, anomaly: a))
            }
            let ids = try await store.insertAnomalies(pending)
            try await store.upsertIncidents(["inc-1", "inc-2", "inc-3", "inc-4"].map { uid in
                Incident(uid: uid, sensor: "s1", label: .portScan, actors: [IPAddress("198.18.0.1")!], targets: [IPAddress("198.18.0.2")!],
                         firstSeenMs: 1_700_000_000_000, lastSeenMs: 1_700_000_001_000, peakSeverity: .high, peakScore: 0.7,
                         anomalyCount: 1, state: .open, explanation: [])
            })

            #expect(try await store.anomaly(id: ids["a"]!)?.interfaceName == "198.18.9.1%3", "the point round-trips")
            #expect(try await store.anomaly(id: ids["e"]!)?.interfaceName == nil)
            func anomalies(_ name: String) async throws -> [String] {
                let found = try await store.anomalies(AnomalyQuery(interface: name)).anomalies.compactMap(\.id)
                return ids.filter { found.contains($0.value) }.keys.sorted()
            }
            #expect(try await anomalies("198.18.9.1") == ["a", "b"])
            #expect(try await anomalies("198.18.9.1%3") == ["a"])
            #expect(try await anomalies("198.18.9.10") == ["c"])
            #expect(try await anomalies("198.18.9.") == [], "a prefix of an address is not its exporter")
            #expect(try await anomalies("eth_0") == ["d"])
            #expect(try await anomalies("eth%0") == [], "% and _ are not wildcards")
            #expect(try await store.anomalies(AnomalyQuery()).anomalies.count == 5)

            func incidents(_ name: String) async throws -> [String] {
                try await store.incidents(IncidentQuery(interface: name)).incidents.map(\.uid).sorted()
            }
            #expect(try await incidents("198.18.9.1") == ["inc-1"])
            #expect(try await incidents("198.18.9.10%3") == ["inc-2"])
            #expect(try await incidents("eth_0") == ["inc-3"])
            #expect(try await incidents("198.18.9.2") == [])
            #expect(try await store.incidents(IncidentQuery()).incidents.count == 4)
        }
    }
}
