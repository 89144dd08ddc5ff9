import FlowForestCore
import FlowForestServer
import FlowForestStore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

@Suite("Authentication and roles")
struct AuthTests {
    @Test("no credential is 401; an unknown token is 401")
    func unauthenticated() async throws {
        try await withService { client, _, _ async throws in
            for uri in ["/api/anomalies", "/api/flows", "/api/hosts", "/api/model", "/api/events", "/metrics", "/api/health"] {
                #expect(try await client.call(uri).status == .unauthorized, "\(uri)")
            }
            #expect(try await client.call("/api/traffic", .post, json: "[]").status == .unauthorized)
            #expect(try await client.call("/api/anomalies", token: "fft_0000").status == .unauthorized)
        }
    }

    @Test("a token not of the issued form is unknown without asking the store: 401 even while the store is down")
    func malformedTokenNeedsNoStore() async throws {
        try await withService { client, db, parts in
            #expect(APIToken.isWellFormed(db.viewerToken))
            for bad in ["x", "fft_" + String(repeating: "g", count: 64), "FFT_" + String(repeating: "a", count: 64),
                        "fft_" + String(repeating: "a", count: 65), String(repeating: "é", count: 34)] {
                #expect(!APIToken.isWellFormed(bad), "\(bad)")
            }
            await parts.store.close()
            let garbage = try await client.call("/api/anomalies", token: "fft_0000")
            #expect(garbage.status == .unauthorized, "no query for a malformed token: \(garbage.status)")
            // One of the issued form is looked up, and the store's outage says so.
            let unknown = try await client.call("/api/anomalies", token: "fft_" + String(repeating: "0", count: 64))
            #expect(unknown.status == .serviceUnavailable, "\(unknown.status)")
        }
    }

    @Test("a viewer reads but cannot acknowledge or retrain; an admin can")
    func roles() async throws {
        try await withService { client, db, parts in
            let ids = try await parts.store.insertAnomalies([storedAnomaly(1, src: "198.18.0.1", dst: "198.18.0.2", severity: .high)])
            let id = try #require(ids.values.first)
            #expect(try await client.call("/api/anomalies", token: db.viewerToken).status == .ok)
            let denied = try await client.call("/api/anomalies/\(id)/ack", .post, token: db.viewerToken)
            #expect(denied.status == .forbidden)
            #expect(try await parts.store.anomaly(id: id)?.acknowledged == false)
            #expect(try await client.call("/api/model/retrain", .post, token: db.viewerToken).status == .forbidden)
            #expect(try await client.call("/api/anomalies/\(id)/ack", .post, token: db.adminToken).status == .ok)
            #expect(try await parts.store.anomaly(id: id)?.acknowledged == true)
            #expect(try await client.call("/api/model/retrain", .post, token: db.adminToken).status == .ok)
        }
    }

    @Test("signing in sets an HttpOnly SameSite session cookie that grants the user's role")
    func sessions() async throws {
        try await withService { client, _, _ async throws in
            let wrong = try await client.call("/api/login", .post, json: #"{"username": "victor", "password": "nope"}"#)
            #expect(wrong.status == .unauthorized)
            let r = try await client.call("/api/login", .post, json: #"{"username": "victor", "password": "viewer password"}"#)
            #expect(r.status == .ok)
            let setCookie = try #require(r.headers[.setCookie])
            #expect(setCookie.contains("HttpOnly"))
            #expect(setCookie.contains("SameSite=Strict"))
            let cookie = String(setCookie.split(separator: ";")[0])
            #expect(try await client.call("/api/session", cookie: cookie).object()["role"] as? String == "viewer")
            #expect(try await client.call("/api/anomalies", cookie: cookie).status == .ok)
            #expect(try await client.call("/api/model/retrain", .post, cookie: cookie).status == .forbidden)
            // Ingest wants a token, not a browser session.
            #expect(try await client.call("/api/traffic", .post, cookie: cookie, json: "[]").status == .forbidden)
            let csrf = try #require(r.object()["csrf_token"] as? String)
            #expect(try await client.call("/api/session", cookie: cookie).object()["csrf_token"] as? String == csrf)
            let sameOrigin = ["Origin": "http://localhost", "X-CSRF-Token": csrf]
            #expect(try await client.call("/api/logout", .post, cookie: cookie, headers: sameOrigin).status == .noContent)
            #expect(try await client.call("/api/anomalies", cookie: cookie).status == .unauthorized)
        }
    }

    @Test("--open-metrics leaves /metrics and health open, nothing else")
    func openMetrics() async throws {
        try await withService(configure: { $0.openMetrics = true }) { client, _, _ async throws in
            #expect(try await client.call("/metrics").status == .ok)
            #expect(try await client.call("/api/health").status == .ok)
            #expect(try await client.call("/api/anomalies").status == .unauthorized)
        }
    }
}
