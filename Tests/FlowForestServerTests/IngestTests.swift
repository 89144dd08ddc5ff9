import FlowForestCore
import FlowForestDetection
import FlowForestPipeline
import FlowForestServer
import FlowForestStore
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

let now = Date().timeIntervalSince1970
let goodRecords = trafficJSON([
    ("198.18.0.1", "198.18.0.2", 40000, 443, "tcp", 60, now, ["SYN"]),
    ("198.18.0.2", "198.18.0.1", 443, 40000, "tcp", 60, now + 0.001, ["SYN", "ACK"]),
    ("198.18.0.1", "198.18.0.2", 40000, 443, "6", 52, now + 0.002, ["ACK"]),
    ("198.18.0.1", "198.18.0.3", 5353, 53, "udp", 80, now + 0.003, []),
])

@Suite("Remote ingest")
struct IngestTests {
    @Test("a valid batch is accepted and becomes open flows")
    func validBatch() async throws {
        try await withService { client, db, _ in
            let r = try await client.call("/api/traffic", .post, token: db.agentToken, json: goodRecords)
            #expect(r.status == .accepted)
            let o = try r.object()
            #expect(o["accepted"] as? Int == 4)
            #expect(o["flows_started"] as? Int == 2)
            // RFC 3339 timestamps and protocol numbers are accepted too.
            let time = Timestamp.rfc3339(milliseconds: Int64(Date().timeIntervalSince1970 * 1000))
            let rfc = #"[{"src_ip": "2001:2::1", "dst_ip": "2001:2::2", "src_port": 1, "dst_port": 2, "protocol": 17, "length": 100, "timestamp": "\#(time)"}]"#
            #expect(try await client.call("/api/traffic", .post, token: db.agentToken, json: rfc).status == .accepted)
        }
    }

    @Test("invalid input is 400 naming record and field, and nothing is applied",
          arguments: [
            ("{not json", "body: not valid JSON"),
            (#"{"src_ip": "198.18.0.1"}"#, "body: expected a JSON array of records"),
            (#"[{"src_ip": "198.18.0.1", "dst_ip": "198.18.0.2", "protocol": "tcp", "length": 60, "timestamp": 1764064800}, {"src_ip": "198.18.0.300", "dst_ip": "198.18.0.2", "protocol": "tcp", "length": 60, "timestamp": 1764064800}]"#, "record 1, field src_ip: not an IPv4 or IPv6 address"),
            (#"[{"src_ip": "198.18.0.1", "dst_ip": "198.18.0.2", "src_port": "http", "protocol": "tcp", "length": 60, "timestamp": 1764064800}]"#, "record 0, field src_port: expected a number"),
            (#"[{"src_ip": "198.18.0.1", "dst_ip": "198.18.0.2", "src_port": 70000, "protocol": "tcp", "length": 60, "timestamp": 1764064800}]"#, "record 0, field src_port: port 70000"),
            (#"[{"src_ip": "198.18.0.1", "dst_ip": "198.18.0.2", "protocol": "tcpx", "length": 60, "timestamp": 1764064800}]"#, "record 0, field protocol: unknown protocol"),
            (#"[{"src_ip": "198.18.0.1", "dst_ip": "198.18.0.2", "protocol": "tcp", "length": 60}]"#, "record 0, field timestamp: missing"),
            (#"[{"src_ip": "198.18.0.1", "dst_ip": "198.18.0.2", "protocol": "tcp", "length": 60, "timestamp": "yesterday"}]"#, "record 0, field timestamp: not an RFC 3339 time"),
            (#"[{"src_ip": "198.18.0.1", "dst_ip": "2001:2::1", "protocol": "tcp", "length": 60, "timestamp": 1764064800}]"#, "record 0, field dst_ip: address family differs"),
            (#"[{"src_ip": "198.18.0.1", "dst_ip": "198.18.0.2", "protocol": "tcp", "length": 60, "timestamp": 1764064800, "colour": 1}]"#, "record 0, field colour: unknown field"),
            // Hostile input: each of these trapped the daemon or was stored as something else.
            (#"[{"src_ip": "198.18.0.1", "dst_ip": "198.18.0.2", "protocol": "tcp", "length": 60, "timestamp": 2e10}]"#, "record 0, field timestamp: epoch seconds"),
            (#"[{"src_ip": "198.18.0.1", "dst_ip": "198.18.0.2", "protocol": "tcp", "length": 60, "timestamp": 1.8446744073709552e10}]"#, "record 0, field timestamp: epoch seconds"),
            (#"[{"src_ip": "198.18.0.1", "dst_ip": "198.18.0.2", "protocol": "tcp", "length": 60, "timestamp": 1e308}]"#, "record 0, field timestamp: epoch seconds"),
            (#"[{"src_ip": "198.18.0.1", "dst_ip": "198.18.0.2", "protocol": "tcp", "length": 60, "timestamp": "2600-01-01T00:00:00Z"}]"#, "record 0, field timestamp: not an RFC 3339 time"),
            (#"[{"src_ip": "198.18.0.1", "dst_ip": "198.18.0.2", "protocol": "tcp", "length": 60, "timestamp": "2555-01-01T00:00:00Z"}]"#, "record 0, field timestamp: not an RFC 3339 time"),
            (#"[{"src_ip": "198.18.0.1", "dst_ip": "198.18.0.2", "protocol": "tcp", "length": 60, "timestamp": "2026-02-31T00:00:00Z"}]"#, "record 0, field timestamp: not an RFC 3339 time"),
            (#"[{"src_ip": "198.18.0.1", "dst_ip": "198.18.0.2", "protocol": "tcp", "length": 60, "timestamp": "2026-11-25T10:00:00+99:99"}]"#, "record 0, field timestamp: not an RFC 3339 time"),
            (#"[{"src_ip": "198.18.0.1\u0000", "dst_ip": "198.18.0.2", "protocol": "tcp", "length": 60, "timestamp": 1764064800}]"#, "record 0, field src_ip: not an IPv4 or IPv6 address"),
            (#"[{"src_ip": "198.18.0.1", "dst_ip": "198.18.0.2\u0000junk", "protocol": "tcp", "length": 60, "timestamp": 1764064800}]"#, "record 0, field dst_ip: not an IPv4 or IPv6 address"),
            (#"[{"src_ip": "2001:2::1 junk", "dst_ip": "2001:2::2", "protocol": "tcp", "length": 60, "timestamp": 1764064800}]"#, "record 0, field src_ip: not an IPv4 or IPv6 address"),
            // Flag names are ASCII: Unicode case mapping would read "ſyn" as SYN.
            (#"[{"src_ip": "198.18.0.1", "dst_ip": "198.18.0.2", "protocol": "tcp", "length": 60, "timestamp": 1764064800, "tcp_flags": ["ſyn"]}]"#, "record 0, field tcp_flags: unknown TCP flag"),
          ])
    func invalid(body: String, message: String) async throws {
        try await withService { client, db, _ in
            let r = try await client.call("/api/traffic", .post, token: db.agentToken, json: body)
            #expect(r.status == .badRequest)
            let error = try r.object()["error"] as? String ?? ""
            #expect(error.hasPrefix(message), "got: \(error)")
            // The valid first record of a refused request is not applied either.
            try await expectIngestTableEmpty(client, db)
        }
    }

    /// The ingest table holds nothing earlier requests left: one new flow
    /// posted now is the only one open (the POST answers with the table's own
    /// counts, so this needs no service to have run).
    private func expectIngestTableEmpty(_ client: some TestClientProtocol, _ db: TestDatabase) async throws {
        let now = Int(Date().timeIntervalSince1970)
        let marker = #"[{"src_ip": "198.18.7.7", "dst_ip": "198.18.7.8", "src_port": 7, "dst_port": 7, "protocol": "udp", "length": 60, "timestamp": \#(now)}]"#
        let r = try await client.call("/api/traffic", .post, token: db.agentToken, json: marker)
        #expect(r.status == .accepted)
        let o = try r.object()
        #expect(o["flows_started"] as? Int == 1 && o["active_flows"] as? Int == 1, "\(r.text)")
    }

    @Test("a body not declared application/json is 415 and applies nothing; parameters of the type are fine")
    func contentType() async throws {
        try await withService { client, db, _ in
            let now = Int(Date().timeIntervalSince1970)
            let body = #"[{"src_ip": "198.18.0.1", "dst_ip": "198.18.0.2", "protocol": "tcp", "length": 60, "timestamp": \#(now)}]"#
            for type in ["text/plain", "application/x-www-form-urlencoded", nil] as [String?] {
                var headers: HTTPFields = [.authorization: "Bearer \(db.agentToken)"]
                if let type { headers[.contentType] = type }
                let r = try await client.executeRequest(uri: "/api/traffic", method: .post, headers: headers, body: ByteBuffer(string: body))
                #expect(r.status == .unsupportedMediaType, "\(type ?? "none")")
                #expect((try r.object()["error"] as? String)?.contains("application/json") == true)
            }
            try await expectIngestTableEmpty(client, db)
            let typed = try await client.executeRequest(uri: "/api/traffic", method: .post,
                                                        headers: [.authorization: "Bearer \(db.agentToken)", .contentType: "Application/JSON; charset=utf-8"],
                                                        body: ByteBuffer(string: body))
            #expect(typed.status == .accepted)
        }
    }

    @Test("timestamps outside the window around the server clock are refused; the window is configurable")
    func skewWindow() async throws {
        let now = Date().timeIntervalSince1970
        @Sendable func body(_ time: Double) -> String { trafficJSON([("198.18.0.1", "198.18.0.2", 40000, 443, "tcp", 60, time, ["SYN"])]) }
        try await withService { client, db, _ in
            for time in [now + 3600, now - 2 * 86_400, 16_725_225_599.0, 1] {
                let r = try await client.call("/api/traffic", .post, token: db.agentToken, json: body(time))
                #expect(r.status == .badRequest, "\(time)")
                let error = try r.object()["error"] as? String ?? ""
                #expect(error.hasPrefix("record 0, field timestamp:") && error.contains("outside the accepted window"), "got: \(error)")
            }
            // A million future-stamped flows would stay open until the clock caught
            // up; the window keeps them out, so nothing is open.
            try await expectIngestTableEmpty(client, db)
            for time in [now + 60, now - 3600] {
                #expect(try await client.call("/api/traffic", .post, token: db.agentToken, json: body(time)).status == .accepted, "\(time)")
            }
        }
        try await withService(configure: { $0.ingestMaxSkew = .seconds(7200); $0.ingestMaxAge = .seconds(3 * 86_400) }) { client, db, _ in
            for time in [now + 3600, now - 2 * 86_400] {
                let r = try await client.call("/api/traffic", .post, token: db.agentToken, json: body(time))
                #expect(r.status == .accepted, "\(time): \(r.text)")
            }
        }
    }

    @Test("oversize bodies and record counts are 413")
    func oversize() async throws {
        try await withService(configure: { $0.maxIngestBytes = 2000; $0.maxIngestRecords = 3 }) { client, db, _ in
            let big = "[" + String(repeating: " ", count: 3000) + "]"
            let r = try await client.call("/api/traffic", .post, token: db.agentToken, json: big)
            #expect(r.status == .contentTooLarge)
            let many = try await client.call("/api/traffic", .post, token: db.agentToken, json: goodRecords)
            #expect(many.status == .contentTooLarge)
            #expect((try many.object()["error"] as? String)?.contains("at most 3") == true)
        }
    }

    @Test("a client that writes an oversize body whole before reading, with Connection: close, gets its 413", arguments: [true, false])
    func oversizeWithClose(declared: Bool) async throws {
        // The body is larger than the loopback socket buffers hold, so it only goes out if the server reads it.
        try await withService(.live, configure: { $0.maxIngestBytes = 4 * 1024 * 1024 }) { client, db, _ in
            let port = try #require(client.port)
            let connection = try RawConnection(from: "127.0.0.1", toPort: port)
            let body = [UInt8](repeating: UInt8(ascii: " "), count: 12 * 1024 * 1024)
            let framing = declared ? "Content-Length: \(body.count)" : "Transfer-Encoding: chunked"
            connection.send("POST /api/traffic HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\n"
                            + "Authorization: Bearer \(db.agentToken)\r\n\(framing)\r\n\r\n")
            let payload = declared ? body : Array("\(String(body.count, radix: 16))\r\n".utf8) + body + Array("\r\n0\r\n\r\n".utf8)
            // As a simple client does: every byte of the request, and only then the answer.
            #expect(await connection.sendAll(payload, within: .seconds(30)), "the server stopped reading the body")
            #expect(await connection.firstBytes(within: .seconds(10)).hasPrefix("HTTP/1.1 413"))
        }
    }

    @Test("ingested flows end, are stored and listed with the sensor name")
    func flowsAreStored() async throws {
        try await withService(.live) { client, db, parts in
            #expect(try await client.call("/api/traffic", .post, token: db.adminToken, json: goodRecords).status == .accepted)
            // Idle timeout 0.3 s, ticks every 0.2 s, writer flushes every 20 ms.
            try await waitFor("both ingested flows to end and be stored") { try await parts.store.flowCount() >= 2 }
            #expect(try await parts.store.flowCount() == 2)
            let flows = try await client.call("/api/flows", token: db.viewerToken).object()
            let recent = try #require(flows["recent"] as? [[String: Any]])
            #expect(recent.count == 2)
            let tcp = try #require(recent.first { $0["protocol"] as? String == "tcp" })
            #expect(tcp["sensor"] as? String == "test-sensor")
            #expect((tcp["fwd"] as? [String: Any])?["packets"] as? Int == 2)
            #expect((tcp["rev"] as? [String: Any])?["bytes"] as? Int == 60)
            #expect(tcp["dst_port"] as? Int == 443)
            let hosts = try await client.call("/api/hosts", token: db.viewerToken).object()
            #expect((hosts["hosts"] as? [[String: Any]])?.first?["address"] as? String == "198.18.0.1")
        }
    }

    @Test("an attack-shaped batch after normal traffic becomes stored anomalies")
    func attackBecomesAnomalies() async throws {
        var detection = DetectorConfiguration()
        detection.learningVectors = 300
        detection.minimumLearningVectors = 100
        detection.learningSeconds = 4
        let detector = Detector(configuration: detection, sensor: "test-sensor")
        try await withService(.live, detector: detector) { client, db, parts in
            // Normal: 20 clients, complete HTTPS exchanges with one server, over 20 rounds.
            var t = Date().timeIntervalSince1970 - 120
            for round in 0..<20 {
                var records: [(src: String, dst: String, sport: Int, dport: Int, proto: String, length: Int, time: Double, flags: [String])] = []
                for c in 0..<20 {
                    let client = "198.18.0.\(10 + c)", sport = 30000 + round * 20 + c
                    let size = 200 + (c * 37 + round * 11) % 900
                    t += 0.05
                    records += [
                        (client, "198.18.1.1", sport, 443, "tcp", 60, t, ["SYN"]),
                        ("198.18.1.1", client, 443, sport, "tcp", 60, t + 0.001, ["SYN", "ACK"]),
                        (client, "198.18.1.1", sport, 443, "tcp", 52, t + 0.002, ["ACK"]),
                        (client, "198.18.1.1", sport, 443, "tcp", 300, t + 0.003, ["PSH", "ACK"]),
                        ("198.18.1.1", client, 443, sport, "tcp", size, t + 0.010, ["PSH", "ACK"]),
                        (client, "198.18.1.1", sport, 443, "tcp", 52, t + 0.020, ["FIN", "ACK"]),
                        ("198.18.1.1", client, 443, sport, "tcp", 52, t + 0.021, ["FIN", "ACK"]),
                        (client, "198.18.1.1", sport, 443, "tcp", 52, t + 0.022, ["ACK"]),
                    ]
                }
                #expect(try await client.call("/api/traffic", .post, token: db.adminToken, json: trafficJSON(records)).status == .accepted)
                try await Task.sleep(for: .milliseconds(250))
            }
            try await waitFor("the detector to finish learning", seconds: 20) { try await client.call("/api/model", token: db.viewerToken).object()["state"] as? String == "detecting" }
            // The model that ended learning is stored, so a restart resumes with it.
            try await waitFor("the trained model stored") { try await parts.store.latestModel(sensor: "test-sensor") != nil }
            // Attack: one host sends SYNs to 600 ports of another, answered by RSTs.
            for burst in 0..<6 {
                var records: [(src: String, dst: String, sport: Int, dport: Int, proto: String, length: Int, time: Double, flags: [String])] = []
                let now = Date().timeIntervalSince1970
                for p in 0..<100 {
                    let port = burst * 100 + p + 1
                    records += [
                        ("198.18.0.99", "198.18.1.2", 55555, port, "tcp", 44, now + Double(p) * 0.001, ["SYN"]),
                        ("198.18.1.2", "198.18.0.99", port, 55555, "tcp", 40, now + Double(p) * 0.001 + 0.0002, ["RST", "ACK"]),
                    ]
                }
                #expect(try await client.call("/api/traffic", .post, token: db.adminToken, json: trafficJSON(records)).status == .accepted)
                try await Task.sleep(for: .milliseconds(400))
            }
            try await waitFor("an anomaly about the scanning host", seconds: 20) {
                let page = try await client.call("/api/anomalies?ip=198.18.0.99", token: db.viewerToken).object()
                return !((page["anomalies"] as? [Any]) ?? []).isEmpty
            }
            let page = try await client.call("/api/anomalies?ip=198.18.0.99", token: db.viewerToken).object()
            let first = (page["anomalies"] as? [[String: Any]])?.first
            #expect(first?["sensor"] as? String == "test-sensor")
            #expect(((first?["explanation"] as? [Any]) ?? []).isEmpty == false)
            // Nothing normal was flagged.
            let normal = try await client.call("/api/anomalies?ip=198.18.1.1", token: db.viewerToken).object()
            #expect((normal["anomalies"] as? [Any])?.isEmpty == true)
        }
    }
}
