import FlowForestCore
import FlowForestStore
import Testing

@Suite("Suppression rules in the store, SQLite and PostgreSQL", .serialized)
struct SuppressionStoreTests {
    @Test("rules round-trip, are replaced and removed by id; a suppressed anomaly stays marked", arguments: Backend.allCases)
    func roundTrip(backend: Backend) async throws {
        try await withFreshStore(backend) { store, _ in
            let rule = Suppression(actor: AddressBlock("198.18.0.0/15"), target: AddressBlock("2001:db8::/32"), ports: [22, 443],
                                   label: .portScan, expiresMs: 1_900_000_000_000, createdBy: "alice", reason: "vulnerability scanner",
                                   createdMs: 1_790_000_000_000)
            let stored = try await store.insertSuppression(rule)
            let id = try #require(stored.id)
            #expect(try await store.suppression(id: id) == stored)
            let bare = Suppression(label: .beaconing, createdBy: "bob", reason: "update checks", createdMs: 1_790_000_000_001)
            let second = try await store.insertSuppression(bare)
            #expect(second.id != id)
            #expect(try await store.suppressions().map(\.id) == [id, second.id])
            var changed = stored
            changed.ports = [8443]
            changed.expiresMs = nil
            #expect(try await store.updateSuppression(id: id, with: changed))
            #expect(try await store.suppression(id: id)?.ports == [8443])
            #expect(try await store.suppression(id: id)?.expiresMs == nil)
            #expect(try await store.updateSuppression(id: 999_999, with: changed) == false)
            #expect(try await store.deleteSuppression(id: id))
            #expect(try await store.deleteSuppression(id: id) == false)
            #expect(try await store.suppressions().map(\.id) == [second.id])
            var a = anomaly(1)
            a.suppressed = true
            let ids = try await store.insertAnomalies([PendingAnomaly(uid: "s1", anomaly: a)])
            #expect(try await store.anomaly(id: ids["s1"]!)?.suppressed == true)
        }
    }
}
