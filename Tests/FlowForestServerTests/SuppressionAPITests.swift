import FlowForestCore
import FlowForestPipeline
@testable import FlowForestServer
import FlowForestStore
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

@Suite("Suppression API", .serialized)
struct SuppressionAPITests {
    @Test("an admin's rule silences a recurring scan: its anomalies are stored marked suppressed, no incident, no webhook post")
    func ruleSilencesScan() async throws {
        let receiver = HookReceiver()
        try await receiver.start()
        do {
            try await withService(.live, detector: ScansEveryEndedFlow(), configure: { c in
                c.incidents = IncidentConfiguration(quietGap: .seconds(1))
                c.alerts.webhooks = [URL(string: receiver.url)!]
                c.alerts.webhookSecret = Array("k".utf8)
            }) { client, db, parts in
                let body = #"{"actor": "198.18.0.0/24", "label": "port scan", "reason": "the nightly vulnerability scanner"}"#
                let created = try await client.call("/api/suppressions", .post, token: db.adminToken, json: body)
                #expect(created.status == .created, "\(created.text)")
                let rule = try created.object()
                #expect(rule["created_by"] as? String == "admin-token" && rule["source"] as? String == "api")
                #expect(rule["actor"] as? String == "198.18.0.0/24" && rule["target"] is NSNull && rule["ports"] as? [Int] == [])
                let spec = OpenAPIDocument(try await client.call("/openapi.yaml").text)
                #expect(Set(rule.keys) == spec.required["Suppression"])

                // The scanner (198.18.0.7) is covered; another host's scan (198.18.5.7) is not.
                let now = Date().timeIntervalSince1970
                let traffic = trafficJSON([22, 23].flatMap { port in
                    [("198.18.0.7", "198.18.0.8", 40000, port, "tcp", 60, now, ["SYN"]), ("198.18.5.7", "198.18.0.8", 40000, port, "tcp", 60, now, ["SYN"])]
                })
                #expect(try await client.call("/api/traffic", .post, token: db.agentToken, json: traffic).status == .accepted)
                try await waitFor("the other scan's incident to open and close at the webhook", seconds: 30) { receiver.received.count >= 2 }
                let anomalies = try #require(try await client.call("/api/anomalies?limit=100", token: db.viewerToken).object()["anomalies"] as? [[String: Any]])
                let silenced = anomalies.filter { $0["src_ip"] as? String == "198.18.0.7" }
                #expect(silenced.count == 2 && silenced.allSatisfy { $0["suppressed"] as? Bool == true })
                #expect(anomalies.filter { $0["src_ip"] as? String == "198.18.5.7" }.allSatisfy { $0["suppressed"] as? Bool == false })
                let incidents = try #require(try await client.call("/api/incidents", token: db.viewerToken).object()["incidents"] as? [[String: Any]])
                #expect(incidents.count == 1 && (incidents.first?["actors"] as? [String]) == ["198.18.5.7"], "\(incidents)")
                let posted = receiver.received.compactMap { try? JSONSerialization.jsonObject(with: $0.body) as? [String: Any] }
                #expect(posted.allSatisfy { (($0["incident"] as? [String: Any])?["actors"] as? [String]) == ["198.18.5.7"] })
                #expect(parts.metrics.render().contains("flowforest_anomalies_suppressed_total 2"))
            }
        } catch {
            await receiver.stop()
            throw error
        }
        await receiver.stop()
    }

    @Test("expires takes RFC 3339 or epoch seconds, as a string or a JSON number")
    func expiresForms() async throws {
        try await withService { client, db, _ in
            for expires in [#""2030-01-01T00:00:00Z""#, #""1893456000""#, "1893456000"] {
                let r = try await client.call("/api/suppressions", .post, token: db.adminToken,
                                              json: #"{"label": "port scan", "expires": \#(expires), "reason": "epoch"}"#)
                #expect(r.status == .created, "\(expires): \(r.text)")
                #expect(try r.object()["expires"] as? String == "2030-01-01T00:00:00.000Z", "\(expires)")
            }
        }
    }

    @Test("rules are shown, replaced and removed; writes need an admin, and a cookie session its CSRF token")
    func crudAndAuth() async throws {
        try await withService(configure: { c in
            c.suppressions = [Suppression(label: .beaconing, createdBy: "file:/etc/flowforest/suppress.json", reason: "update checks",
                                          createdMs: 0, origin: .file)]
        }) { client, db, _ in
            let body = #"{"target": "2001:db8::/32", "ports": [0, 1, 443], "expires": "2030-01-01T00:00:00Z", "reason": "backup window"}"#
            #expect(try await client.call("/api/suppressions", .post, token: db.viewerToken, json: body).status == .forbidden)
            #expect(try await client.call("/api/suppressions", .post, json: body).status == .unauthorized)
            let alice = try await client.signIn("alice", "correct horse battery")
            #expect(try await client.call("/api/suppressions", .post, cookie: alice.cookie, json: body,
                                          headers: ["Origin": "http://localhost"]).status == .forbidden)
            let made = try await client.call("/api/suppressions", .post, cookie: alice.cookie, json: body, headers: alice.sameOrigin)
            #expect(made.status == .created, "\(made.text)")
            let id = try #require(try made.object()["id"] as? Int)
            #expect(try made.object()["created_by"] as? String == "alice")
            #expect(try made.object()["expires"] as? String == "2030-01-01T00:00:00.000Z")
            #expect(try made.object()["ports"] as? [Int] == [0, 1, 443])

            let list = try #require(try await client.call("/api/suppressions", token: db.viewerToken).object()["suppressions"] as? [[String: Any]])
            #expect(list.map { $0["source"] as? String } == ["file", "api"])
            #expect(list.first?["id"] is NSNull)

            let replaced = try await client.call("/api/suppressions/\(id)", .put, token: db.adminToken,
                                                 json: #"{"target": "2001:db8::1/32", "reason": "backup window, all ports"}"#)
            #expect(replaced.status == .ok, "\(replaced.text)")
            let one = try await client.call("/api/suppressions/\(id)", token: db.viewerToken).object()
            #expect(one["target"] as? String == "2001:db8::/32" && one["ports"] as? [Int] == [] && one["expires"] is NSNull)
            #expect(try await client.call("/api/suppressions/\(id)", .delete, token: db.viewerToken).status == .forbidden)
            #expect(try await client.call("/api/suppressions/\(id)", .delete, token: db.adminToken).status == .noContent)
            #expect(try await client.call("/api/suppressions/\(id)", .delete, token: db.adminToken).status == .notFound)
            #expect(try await client.call("/api/suppressions/\(id)", .put, token: db.adminToken, json: body).status == .notFound)
            #expect(try await client.call("/api/suppressions/\(id)", token: db.viewerToken).status == .notFound)
        }
    }

    @Test("bad rules are 400 naming the field, and change nothing")
    func badRules() async throws {
        try await withService { client, db, _ in
            let cases: [(String, String)] = [
                (#"{"reason": "x"}"#, "a rule needs"),
                (#"{"actor": "198.18.0.0/33", "reason": "x"}"#, "actor:"),
                (#"{"actor": "198.18.0.0/015", "reason": "x"}"#, "actor:"),
                (#"{"target": "2001:db8::/129", "reason": "x"}"#, "target:"),
                (#"{"target": "fe80::1%eth0", "reason": "x"}"#, "target:"),
                (#"{"actor": 5, "reason": "x"}"#, "actor:"),
                (#"{"ports": [], "reason": "x"}"#, "ports:"),
                (#"{"ports": [70000], "reason": "x"}"#, "ports:"),
                (#"{"ports": [22.5], "reason": "x"}"#, "ports:"),
                (#"{"ports": [true], "reason": "x"}"#, "ports:"),
                (#"{"ports": [false], "reason": "x"}"#, "ports:"),
                (#"{"ports": ["22"], "reason": "x"}"#, "ports:"),
                (#"{"label": "worm", "reason": "x"}"#, "label:"),
                (#"{"label": "port scan", "expires": "soon", "reason": "x"}"#, "expires:"),
                (#"{"label": "port scan", "expires": true, "reason": "x"}"#, "expires:"),
                (#"{"label": "port scan", "expires": 1893456000.5, "reason": "x"}"#, "expires:"),
                (#"{"label": "port scan", "expires": -5, "reason": "x"}"#, "expires:"),
                (#"{"label": "port scan", "reason": ""}"#, "reason:"),
                (#"{"label": "port scan"}"#, "reason:"),
                // Logged and shown: a forged second log line, a terminal escape, a bidi override.
                (#"{"label": "port scan", "reason": "scanner\n2026-01-01T00:00:00+0000 notice flowforest: rule removed"}"#, "reason:"),
                (#"{"label": "port scan", "reason": "\u001b[2J"}"#, "reason:"),
                (#"{"label": "port scan", "reason": "a\u0085b"}"#, "reason:"),
                (#"{"label": "port scan", "reason": "scanner \u202Eevil"}"#, "reason:"),
                (#"{"label": "port scan", "reason": "x", "owner": "me"}"#, "owner: unknown field"),
                (#"[]"#, "expected a JSON object"),
                ("not json", "expected a JSON object"),
            ]
            for (body, prefix) in cases {
                let r = try await client.call("/api/suppressions", .post, token: db.adminToken, json: body)
                #expect(r.status == .badRequest, "\(body): \(r.status)")
                #expect((try r.object()["error"] as? String)?.hasPrefix(prefix) == true, "\(body): \(r.text)")
            }
            let ports = "[" + Array(repeating: "22", count: 65).joined(separator: ",") + "]"
            #expect(try await client.call("/api/suppressions", .post, token: db.adminToken, json: #"{"ports": \#(ports), "reason": "x"}"#).status == .badRequest)
            #expect(try await client.call("/api/suppressions", token: db.viewerToken).object()["suppressions"] as? [Any] != nil)
            #expect((try await client.call("/api/suppressions", token: db.viewerToken).object()["suppressions"] as? [Any])?.isEmpty == true)
            #expect(try await client.call("/api/suppressions/abc", token: db.viewerToken).status == .badRequest)
            // The address pattern the server checks is the one openapi.yaml states.
            let spec = try await client.call("/openapi.yaml").text
            #expect(spec.contains("pattern: '\(SuppressionInput.blockPattern)'"))
        }
    }

    @Test("--suppress FILE: rules are read with the same checks; a bad file names the rule and field")
    func suppressFile() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("flowforest-suppress-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let good = dir.appendingPathComponent("good.json").path, bad = dir.appendingPathComponent("bad.json").path
        // A tab and a newline in a file's reason (which the API refuses) are read as spaces.
        try #"[{"actor": "198.18.0.0/24", "ports": [22], "reason": "scanner"}, {"label": "beaconing", "reason": "updates\tof\nthe OS"}]"#
            .write(toFile: good, atomically: true, encoding: .utf8)
        try #"[{"label": "beaconing", "reason": "updates"}, {"actor": "10.0.0.0/40", "reason": "x"}]"#.write(toFile: bad, atomically: true, encoding: .utf8)
        let rules = try SuppressionInput.load(path: good, nowMs: 5)
        #expect(rules.count == 2 && rules.allSatisfy { $0.origin == .file && $0.createdBy == "file:\(good)" && $0.id == nil })
        #expect(rules[0].ports == [22] && rules[0].actor == AddressBlock("198.18.0.0/24"))
        #expect(rules[1].reason == "updates of the OS")
        #expect(throws: SuppressionInput.Invalid.self) { try SuppressionInput.load(path: bad, nowMs: 5) }
        do {
            _ = try SuppressionInput.load(path: bad, nowMs: 5)
        } catch {
            #expect(error.description.hasPrefix("--suppress \(bad): rule 1: actor: not an address or address block"))
        }
        do {
            _ = try SuppressionInput.load(path: dir.appendingPathComponent("missing.json").path, nowMs: 5)
            Issue.record("a missing file was accepted")
        } catch {
            #expect(error.description.hasSuffix("cannot read it"))
        }
    }
}
