import FlowForestCore
import FlowForestServer
import FlowForestStore
import Foundation
import Hummingbird
import HTTPTypes
import HummingbirdTesting
import Testing

@Suite("HTTP API")
struct APITests {
    @Test("anomalies are listed newest first with the shared JSON shape")
    func listAnomalies() async throws {
        try await withAPI { client, db in
            let r = try await client.call("/api/anomalies?limit=5", token: db.viewerToken)
            #expect(r.status == .ok)
            let o = try r.object()
            let items = try #require(o["anomalies"] as? [[String: Any]])
            #expect(items.count == 5)
            #expect(items.compactMap { $0["id"] as? Int } == [25, 24, 23, 22, 21])
            let first = items[0]
            for key in ["id", "sensor", "time", "kind", "src_ip", "dst_ip", "src_port", "dst_port", "protocol", "score",
                        "severity", "label", "explanation", "features", "acknowledged"] {
                #expect(first.keys.contains(key), "missing \(key)")
            }
            #expect(first["src_port"] is NSNull)
            #expect(first["protocol"] as? String == "tcp")
            #expect((first["time"] as? String)?.hasSuffix("Z") == true)
            #expect(o["next_cursor"] is String)
        }
    }

    @Test("filters by address, severity, kind and time")
    func filters() async throws {
        try await withAPI { client, db in
            func ids(_ query: String) async throws -> [Int] {
                let r = try await client.call("/api/anomalies?\(query)", token: db.viewerToken)
                #expect(r.status == .ok, "\(query): \(r.text)")
                return (try r.object()["anomalies"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? Int }
            }
            // Even i (ids 1, 3, ...) came from .5; both match the shared destination.
            let r1 = try await ids("ip=198.18.0.5&limit=100")
            #expect(r1.count == 13)
            let r2 = try await ids("ip=198.18.9.9&limit=100")
            #expect(r2.count == 25)
            let r3 = try await ids("ip=198.18.0.77")
            #expect(r3.isEmpty)
            let r4 = try await ids("severity=critical")
            #expect(r4 == [21, 16, 11, 6, 1])
            let r5 = try await ids("severity=critical&kind=flow")
            #expect(r5 == [6, 1])
            let r6 = try await ids("kind=host&limit=100")
            #expect(r6.count == 15)
            // A value repeated thousands of times filters as that value once.
            let repeated = try await ids("severity=" + Array(repeating: "critical", count: 40_000).joined(separator: ",")
                                         + "&kind=" + Array(repeating: "flow", count: 40_000).joined(separator: ","))
            #expect(repeated == [6, 1])
            // Times: i-th anomaly at 1_790_000_000 + i seconds.
            let r7 = try await ids("since=1790000010&until=1790000013")
            #expect(r7 == [13, 12, 11])
            let r8 = try await ids("since=2026-09-21T14:13:40Z&limit=100")
            #expect(r8 == Array((21...25).reversed()))
        }
    }

    @Test("cursor pagination walks every anomaly once")
    func pagination() async throws {
        try await withAPI { client, db in
            var seen: [Int] = []
            var cursor: String?
            repeat {
                let uri = "/api/anomalies?limit=10" + (cursor.map { "&cursor=\($0)" } ?? "")
                let o = try await client.call(uri, token: db.viewerToken).object()
                seen += (o["anomalies"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? Int }
                cursor = o["next_cursor"] as? String
            } while cursor != nil
            #expect(seen == Array((1...25).reversed()))
        }
    }

    @Test("bad query parameters are 400 naming the parameter")
    func badParameters() async throws {
        try await withAPI { client, db in
            for (query, parameter) in [("ip=1.2.3", "ip"), ("severity=urgent", "severity"), ("kind=planet", "kind"),
                                       ("since=yesterday", "since"), ("limit=0", "limit"), ("limit=abc", "limit"),
                                       ("cursor=!!", "cursor")] {
                let r = try await client.call("/api/anomalies?\(query)", token: db.viewerToken)
                #expect(r.status == .badRequest, "\(query)")
                #expect((try r.object()["error"] as? String)?.hasPrefix(parameter + ":") == true, "\(query): \(r.text)")
            }
        }
    }

    // Each of these trapped the daemon (UInt64 overflow past 2554) or was
    // silently accepted; now they are 400 naming the parameter, on every route.
    @Test("hostile times and limits are 400 on anomalies, incidents, flows and hosts, never a crash",
          arguments: ["/api/anomalies", "/api/incidents", "/api/flows", "/api/hosts"])
    func hostileParameters(route: String) async throws {
        try await withAPI { client, db in
            var cases = [("since=2555-01-01T00:00:00Z", "since"), ("since=2600-01-01T00:00:00Z", "since"),
                         ("since=9999-12-31T23:59:59Z", "since"), ("since=2500-01-01T00:00:00Z", "since"),
                         ("since=2026-02-31T00:00:00Z", "since"), ("since=2026-11-25T10:00:00%2B99:99", "since"),
                         ("since=20000000000", "since"), ("since=1e300", "since"), ("since=nan", "since"),
                         ("since=-1", "since"), ("since=%2B5", "since"), ("since=0x10", "since"),
                         ("limit=%2B5", "limit"), ("limit=-1", "limit"), ("limit=%205", "limit"), ("limit=5e2", "limit"),
                         ("limit=1001", "limit"), ("limit=99999999999999999999999", "limit"), ("limit=5%00", "limit")]
            if route == "/api/anomalies" || route == "/api/incidents" { cases += [("until=2555-01-01T00:00:00Z", "until"), ("until=18446744073.709551615", "until")] }
            for (query, parameter) in cases {
                let r = try await client.call("\(route)?\(query)", token: db.viewerToken)
                #expect(r.status == .badRequest, "\(route)?\(query): \(r.text)")
                #expect((try r.object()["error"] as? String)?.hasPrefix(parameter + ":") == true, "\(route)?\(query): \(r.text)")
            }
            // The edges of the range and plain limits still work.
            for query in ["since=2499-12-31T23:59:59.999Z", "since=0", "since=1764063455.25", "limit=1000", "limit=0005"] {
                let r = try await client.call("\(route)?\(query)", token: db.viewerToken)
                #expect(r.status == .ok, "\(route)?\(query): \(r.text)")
            }
        }
    }

    @Test("an encoded NUL in a dashboard path is refused rather than cut short; TRACE is 405")
    func hostilePaths() async throws {
        try await withAPI { client, db in
            #expect(try await client.call("/app.js", token: db.viewerToken).status == .ok)
            for path in ["/app.js%00.html", "/app.js%00", "/index.html%0a", "/api/health%00"] {
                let r = try await client.call(path, token: db.viewerToken)
                #expect(r.status == .badRequest || r.status == .notFound, "\(path): \(r.status)")
                #expect(!r.text.contains("function"), "\(path) served a script")
            }
            // Allow names what each path answers: the dashboard's files, a GET route, a POST route.
            for (path, allow) in [("/", "GET, HEAD"), ("/app.js", "GET, HEAD"), ("/api/health", "GET, HEAD"), ("/api/anomalies/1/ack", "POST")] {
                for method in [HTTPRequest.Method("TRACE")!, HTTPRequest.Method("CONNECT")!] {
                    let r = try await client.call(path, method, token: db.viewerToken)
                    #expect(r.status == .methodNotAllowed, "\(method) \(path)")
                    #expect(r.headers[.allow] == allow, "\(method) \(path)")
                }
            }
        }
    }

    @Test("a documented path asked with a method it does not answer is 405 with Allow, before authentication")
    func unsupportedMethods() async throws {
        try await withAPI { client, db in
            let cases: [(String, String, String)] = [
                ("/api/health", "DELETE", "GET, HEAD"), ("/api/traffic", "PUT", "POST"), ("/api/anomalies/7", "PATCH", "GET, HEAD"),
                ("/api/anomalies/7/ack", "GET", "POST"), ("/", "QUERY", "GET, HEAD"), ("/metrics", "OPTIONS", "GET, HEAD"),
                ("/api/suppressions", "PATCH", "GET, HEAD, POST"),
            ]
            for (path, method, allow) in cases {
                for token in [db.viewerToken, nil] {
                    let r = try await client.call(path, HTTPRequest.Method(method)!, token: token)
                    #expect(r.status == .methodNotAllowed, "\(method) \(path): \(r.status) \(r.text)")
                    #expect(r.headers[.allow] == allow, "\(method) \(path)")
                }
            }
            // HEAD where GET is served: GET's status and headers, no body.
            for path in ["/api/health", "/api/anomalies", "/openapi.yaml", "/metrics"] {
                let head = try await client.call(path, .head, token: db.viewerToken)
                #expect(head.status == .ok, "HEAD \(path): \(head.status)")
                #expect(head.text.isEmpty, "HEAD \(path) sent a body")
            }
            #expect(try await client.call("/api/anomalies/7/ack", .head, token: db.viewerToken).status == .methodNotAllowed)
            #expect(try await client.call("/api/anomalies", .head).status == .unauthorized)
            // Unknown paths keep the router's answer.
            #expect(try await client.call("/api/nothing-here", .delete, token: db.viewerToken).status == .notFound)
            #expect(try await client.call("/api/anomalies/", .delete, token: db.viewerToken).status == .notFound)
        }
    }

    @Test("one anomaly carries features and explanation; unknown ids are 404")
    func oneAnomaly() async throws {
        try await withAPI { client, db in
            let r = try await client.call("/api/anomalies/3", token: db.viewerToken)
            #expect(r.status == .ok)
            let o = try r.object()
            #expect(o["id"] as? Int == 3)
            #expect((o["features"] as? [String: Double])?["distinct_dst_ports_10s"] == 412)
            let explanation = try #require(o["explanation"] as? [[String: Any]])
            #expect(explanation.first?["text"] as? String == "distinct destination ports 412 (baseline p99: 9)")
            #expect(try await client.call("/api/anomalies/999", token: db.viewerToken).status == .notFound)
            #expect(try await client.call("/api/anomalies/x", token: db.viewerToken).status == .badRequest)
        }
    }

    @Test("an admin acknowledges; the anomaly stays acknowledged")
    func acknowledge() async throws {
        try await withAPI { client, db in
            let r = try await client.call("/api/anomalies/4/ack", .post, token: db.adminToken)
            #expect(r.status == .ok)
            #expect(try r.object()["acknowledged"] as? Bool == true)
            let open = try await client.call("/api/anomalies?acknowledged=false&limit=100", token: db.viewerToken).object()
            #expect((open["anomalies"] as? [[String: Any]])?.count == 24)
            #expect(try await client.call("/api/anomalies/4", token: db.viewerToken).object()["acknowledged"] as? Bool == true)
            #expect(try await client.call("/api/anomalies/999/ack", .post, token: db.adminToken).status == .notFound)
        }
    }

    @Test("health, model and the OpenAPI document are served")
    func healthModelOpenAPI() async throws {
        try await withAPI { client, db in
            let health = try await client.call("/api/health", token: db.viewerToken)
            #expect(health.status == .ok)
            #expect(try health.object()["store"] as? String == "ok")
            #expect(try health.object()["database"] as? String == "sqlite")
            let model = try await client.call("/api/model", token: db.viewerToken)
            #expect(try model.object()["state"] as? String == "learning")
            let spec = try await client.call("/openapi.yaml")
            #expect(spec.status == .ok)
            #expect(spec.text.hasPrefix("openapi: 3."))
        }
    }
}
