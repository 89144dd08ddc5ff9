import FlowForestCore
import FlowForestServer
import FlowForestStore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

/// Least privilege: agents only send traffic, viewers only read, admins do everything.
@Suite("Roles: agent, viewer, admin")
struct RoleTests {
    @Test("the permission matrix of each role over every API route")
    func matrix() async throws {
        try await withService { client, db, parts in
            let ids = try await parts.store.insertAnomalies([storedAnomaly(1, src: "198.18.0.1", dst: "198.18.0.2", severity: .high)])
            let id = try #require(ids.values.first)
            let reads = ["/api/anomalies", "/api/anomalies/\(id)", "/api/flows", "/api/hosts", "/api/model", "/api/health", "/metrics"]
            for uri in reads {
                #expect(try await client.call(uri, token: db.agentToken).status == .forbidden, "agent reads \(uri)")
                #expect(try await client.call(uri, token: db.viewerToken).status == .ok, "viewer reads \(uri)")
                #expect(try await client.call(uri, token: db.adminToken).status == .ok, "admin reads \(uri)")
            }
            #expect(try await client.call("/api/events", token: db.agentToken).status == .forbidden)
            // Ingest: agents and admins, never viewers (finding: any token could POST /api/traffic).
            #expect(try await client.call("/api/traffic", .post, token: db.agentToken, json: goodRecords).status == .accepted)
            #expect(try await client.call("/api/traffic", .post, token: db.adminToken, json: goodRecords).status == .accepted)
            let viewerIngest = try await client.call("/api/traffic", .post, token: db.viewerToken, json: goodRecords)
            #expect(viewerIngest.status == .forbidden)
            #expect(viewerIngest.text.contains("agent or admin"), "\(viewerIngest.text)")
            // Administration: admins only.
            for token in [db.agentToken, db.viewerToken] {
                #expect(try await client.call("/api/anomalies/\(id)/ack", .post, token: token).status == .forbidden)
                #expect(try await client.call("/api/model/retrain", .post, token: token).status == .forbidden)
            }
            #expect(try await parts.store.anomaly(id: id)?.acknowledged == false)
            #expect(try await client.call("/api/anomalies/\(id)/ack", .post, token: db.adminToken).status == .ok)
            // Every role may ask who it is.
            #expect(try await client.call("/api/session", token: db.agentToken).object()["role"] as? String == "agent")
        }
    }

    @Test("roles are stored and listed by name; an agent token is created like any other")
    func agentToken() async throws {
        let db = try await TestDatabase.make()
        defer { db.remove() }
        let roles = try await Store.withStore(db.location, logger: quietLogger) { try await $0.tokens().map(\.role) }
        #expect(Set(roles) == [.admin, .viewer, .agent])
        #expect(Role.agent.permissions == [.ingest])
        #expect(Role.viewer.permissions == [.read])
        #expect(Role.admin.permissions == Set(Permission.allCases))
    }
}
