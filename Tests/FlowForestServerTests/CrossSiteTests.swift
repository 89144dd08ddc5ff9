import FlowForestCore
import FlowForestServer
import FlowForestStore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

/// Finding 8: state-changing requests from another site, and DNS rebinding.
@Suite("Cross-site requests and the Host allowlist")
struct CrossSiteTests {
    static let evil = "http://evil.example"

    @Test("a cookie-authenticated POST needs this Origin and the session's CSRF token; a bearer token needs neither")
    func csrf() async throws {
        try await withService { client, db, parts in
            let ids = try await parts.store.insertAnomalies([storedAnomaly(1, src: "198.18.0.1", dst: "198.18.0.2", severity: .high)])
            let id = try #require(ids.values.first)
            let alice = try await client.signIn("alice", "correct horse battery")
            let ack = "/api/anomalies/\(id)/ack"
            // The attacker's page: a text/plain form post, the browser adds the SameSite-less cookie.
            for headers in [
                ["Origin": Self.evil, "Content-Type": "text/plain", "X-CSRF-Token": alice.csrf],
                ["Origin": Self.evil, "Content-Type": "text/plain"],
                ["Sec-Fetch-Site": "cross-site", "X-CSRF-Token": alice.csrf],
                ["Origin": "null", "X-CSRF-Token": alice.csrf],
            ] {
                let r = try await client.call(ack, .post, cookie: alice.cookie, headers: headers)
                #expect(r.status == .forbidden, "\(headers)")
                #expect((try r.object()["error"] as? String)?.isEmpty == false)
            }
            #expect(try await client.call("/api/model/retrain", .post, cookie: alice.cookie,
                                          headers: ["Origin": Self.evil, "X-CSRF-Token": alice.csrf]).status == .forbidden)
            // Same origin but no token, a wrong token, or no Origin at all: still refused.
            #expect(try await client.call(ack, .post, cookie: alice.cookie, headers: ["Origin": "http://localhost"]).status == .forbidden)
            // Wrong in its first character whatever that is (a fixed "0" would be the real token one time in 16).
            let wrong = (alice.csrf.first == "0" ? "1" : "0") + alice.csrf.dropFirst()
            #expect(try await client.call(ack, .post, cookie: alice.cookie, headers: ["Origin": "http://localhost", "X-CSRF-Token": wrong]).status == .forbidden)
            #expect(try await client.call(ack, .post, cookie: alice.cookie, headers: ["X-CSRF-Token": alice.csrf]).status == .forbidden)
            #expect(try await parts.store.anomaly(id: id)?.acknowledged == false)
            // The dashboard's own request.
            #expect(try await client.call(ack, .post, cookie: alice.cookie, headers: alice.sameOrigin).status == .ok)
            #expect(try await client.call(ack, .post, cookie: alice.cookie,
                                          headers: ["Sec-Fetch-Site": "same-origin", "X-CSRF-Token": alice.csrf]).status == .ok)
            // A bearer token cannot be sent cross-site by a browser, so Origin does not matter.
            #expect(try await client.call(ack, .post, token: db.adminToken, headers: ["Origin": Self.evil]).status == .ok)
            #expect(try await client.call("/api/traffic", .post, token: db.agentToken, json: goodRecords,
                                          headers: ["Origin": Self.evil]).status == .accepted)
            // Reads are not state-changing: no token needed.
            #expect(try await client.call("/api/anomalies", cookie: alice.cookie).status == .ok)
            // Signing in from another site is refused too (login CSRF).
            let login = try await client.call("/api/login", .post, json: #"{"username": "alice", "password": "correct horse battery"}"#,
                                              headers: ["Origin": Self.evil])
            #expect(login.status == .forbidden)
        }
    }

    @Test("without credentials a cross-site text/plain POST to /api/traffic is refused, --no-auth included")
    func anonymousIngest() async throws {
        let evilPost = ["Origin": Self.evil, "Content-Type": "text/plain"]
        try await withService { client, _, _ async throws in
            let r = try await client.executeRequest(uri: "/api/traffic", method: .post,
                                                    headers: [.origin: Self.evil, .contentType: "text/plain"], body: ByteBuffer(string: goodRecords))
            // Refused by the cross-site check before authentication would say 401; never 202.
            #expect(r.status == .forbidden)
        }
        try await withService(configure: { $0.noAuth = true }) { client, _, _ async throws in
            #expect(try await client.call("/api/traffic", .post, json: goodRecords, headers: evilPost).status == .forbidden)
            #expect(try await client.call("/api/model/retrain", .post, headers: ["Sec-Fetch-Site": "cross-site"]).status == .forbidden)
            // Local tools (curl, scripts) send no Origin.
            #expect(try await client.call("/api/traffic", .post, json: goodRecords).status == .accepted)
        }
    }

    @Test("a Host that is not this server's name is refused (DNS rebinding); IP literals, localhost and --allowed-host are served")
    func hostAllowlist() async throws {
        try await withService(.live, configure: { $0.allowedHosts = ["sensor.example.net", "Other.Example:9000"] }) { client, db, _ in
            let port = try #require(client.port)
            let url = "http://127.0.0.1:\(port)/api/anomalies"
            func get(host: String, auth: Bool = true) async throws -> (status: Int, body: String) {
                try await curl(["-H", "Host: \(host)"] + (auth ? ["-H", "Authorization: Bearer \(db.viewerToken)"] : []) + [url])
            }
            let rebound = try await get(host: "rebind.evil.example:\(port)")
            #expect(rebound.status == 421, "\(rebound)")
            #expect(rebound.body.contains("rebind.evil.example") && rebound.body.contains("--allowed-host"), "\(rebound.body)")
            #expect(try await get(host: "rebind.evil.example", auth: false).status == 421)
            #expect(try await curl(["-H", "Host: rebind.evil.example", "-X", "POST", "-H", "Content-Type: text/plain", "--data", "[]",
                              "http://127.0.0.1:\(port)/api/traffic"]).status == 421)
            #expect(try await curl(["-H", "Host: rebind.evil.example", "http://127.0.0.1:\(port)/"]).status == 421, "the dashboard too")
            // A bracketed address with a name stuck after it is no address.
            for host in ["[::1]evil.example", "[::1]:80evil"] { #expect(try await get(host: host).status == 421, "\(host)") }
            for host in ["127.0.0.1:\(port)", "localhost:\(port)", "LOCALHOST", "[::1]:\(port)", "10.1.2.3:\(port)",
                         "sensor.example.net:\(port)", "other.example"] {
                #expect(try await get(host: host).status == 200, "\(host)")
            }
        }
    }

    @Test("a sign-in link followed from another site only asks (login CSRF); typed, pasted, from this site or without fetch metadata it signs in")
    func signInLinkCrossSite() async throws {
        try await withService { client, db, _ in
            for site in ["cross-site", "same-site"] {
                let r = try await client.call("/?token=\(db.viewerToken)", headers: ["Sec-Fetch-Site": site])
                #expect(r.status == .ok && r.headers[.setCookie] == nil, "\(site): \(r.status)")
                #expect(r.headers[.contentType]?.hasPrefix("text/html") == true)
                #expect(r.text.contains("viewer-token") && r.text.contains("href=\"/?token=\(db.viewerToken)\""), "\(r.text)")
            }
            let unknown = try await client.call("/?token=fft_%3Cscript%3E", headers: ["Sec-Fetch-Site": "cross-site"])
            #expect(unknown.status == .unauthorized && !unknown.text.contains("<script>"), "\(unknown.text)")
            for headers in [["Sec-Fetch-Site": "none"], ["Sec-Fetch-Site": "same-origin"], [:]] {
                let r = try await client.call("/?token=\(db.viewerToken)", headers: headers)
                #expect(r.status == .seeOther && r.headers[.setCookie] != nil, "\(headers): \(r.status)")
            }
        }
    }

    @Test("a bad filter is echoed bounded and escaped, never raw")
    func echoesQuoted() async throws {
        try await withService { client, db, _ in
            let hostile = String(repeating: "x", count: 200) + "%0A%E2%80%AE"
            for path in ["/api/anomalies?ip=\(hostile)", "/api/flows?ip=\(hostile)", "/api/anomalies?severity=\(hostile)",
                         "/api/anomalies?kind=\(hostile)"] {
                let r = try await client.call(path, token: db.viewerToken)
                let message = try #require(try r.object()["error"] as? String, "\(path): \(r.text)")
                #expect(r.status == .badRequest && message.count < 200, "\(path): \(message)")
                #expect(!message.contains("\n") && !message.contains("\u{202E}"), "\(path): \(message)")
            }
        }
    }
}
