import FlowForestCore
import FlowForestPipeline
import FlowForestServer
import FlowForestStore
import FlowForestTestSupport
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore

/// A detector that learns forever: for tests where detection is not the point.
struct NeverDetects: FlowDetector {
    func process(_ batch: FlowBatch, changes: [FlowChange], flows: FlowLedger) -> [Anomaly] { [] }
    func retrain(nowNs: UInt64) {}
    func setExpected(_ rules: [Suppression]) {}
    var apiStatus: ModelStatus { ModelStatus(state: .learning) }
    func modelJSON() -> String? { nil }
}

/// A fresh SQLite file with an admin, a viewer and an agent token, an admin
/// user (alice) and a viewer user (victor).
struct TestDatabase {
    let directory: URL
    let location: StoreLocation
    var adminToken = ""
    var viewerToken = ""
    var agentToken = ""

    static func make(credentials: Bool = true) async throws -> TestDatabase {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("flowforest-server-\(getpid())-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        var db = TestDatabase(directory: dir, location: StoreLocation(dir.appendingPathComponent("ff.db").path))
        if credentials {
            try await Store.withStore(db.location, logger: quietLogger) { store in
                db.adminToken = try await store.addToken(name: "admin-token", role: .admin)
                db.viewerToken = try await store.addToken(name: "viewer-token", role: .viewer)
                db.agentToken = try await store.addToken(name: "agent-token", role: .agent)
                try await store.addUser(name: "alice", password: "correct horse battery", role: .admin)
                try await store.addUser(name: "victor", password: "viewer password", role: .viewer)
            }
        }
        return db
    }

    func remove() { try? FileManager.default.removeItem(at: directory) }
}

let quietLogger: Logger = {
    var l = Logger(label: "flowforest-test")
    l.logLevel = .error
    return l
}()

func testConfiguration(_ db: TestDatabase) -> ServerConfiguration {
    var c = ServerConfiguration()
    c.host = "127.0.0.1"
    c.port = 0
    c.database = db.location
    c.sensorName = "test-sensor"
    c.tickInterval = .milliseconds(200)
    c.writer.flushInterval = .milliseconds(20)
    c.writer.retryDelay = .milliseconds(100)
    c.writer.maxRetryDelay = .milliseconds(500)
    c.ingestFlowTable = FlowTableConfiguration(idleTimeoutNs: 300_000_000, activeTimeoutNs: 60_000_000_000)
    // HummingbirdTesting's live client keeps one connection and does not
    // reconnect when the server closes it idle, as browsers and curl do;
    // ConnectionLimitTests sets its own.
    c.connections.idleTimeout = .seconds(3600)
    return c
}

extension TestClientProtocol {
    @discardableResult
    func call(_ uri: String, _ method: HTTPRequest.Method = .get, token: String? = nil, cookie: String? = nil,
              json: String? = nil, headers extra: [String: String] = [:]) async throws -> TestResponse {
        var headers: HTTPFields = [:]
        for (name, value) in extra { headers[HTTPField.Name(name)!] = value }
        if let token { headers[.authorization] = "Bearer \(token)" }
        if let cookie { headers[.cookie] = cookie }
        if json != nil { headers[.contentType] = "application/json" }
        return try await executeRequest(uri: uri, method: method, headers: headers, body: json.map { ByteBuffer(string: $0) })
    }
}

extension TestResponse {
    var text: String { String(buffer: body) }
    func object() throws -> [String: Any] {
        (try JSONSerialization.jsonObject(with: Data(buffer: body)) as? [String: Any]) ?? [:]
    }
}

/// Traffic records in the ingest JSON shape.
func trafficJSON(_ records: [(src: String, dst: String, sport: Int, dport: Int, proto: String, length: Int, time: Double, flags: [String])]) -> String {
    let items = records.map { r in
        let flags = r.flags.isEmpty ? "" : ", \"tcp_flags\": [\(r.flags.map { "\"\($0)\"" }.joined(separator: ", "))]"
        return "{\"src_ip\": \"\(r.src)\", \"dst_ip\": \"\(r.dst)\", \"src_port\": \(r.sport), \"dst_port\": \(r.dport), \"protocol\": \"\(r.proto)\", \"length\": \(r.length), \"timestamp\": \(r.time)\(flags)}"
    }
    return "[" + items.joined(separator: ",") + "]"
}

/// A signed-in dashboard session: its `Cookie` header and CSRF token.
struct SignedIn {
    var cookie: String
    var csrf: String
    /// Headers of a same-origin browser request carrying the CSRF token.
    var sameOrigin: [String: String] { ["Origin": "http://localhost", "X-CSRF-Token": csrf] }
}

extension TestClientProtocol {
    func signIn(_ user: String, _ password: String) async throws -> SignedIn {
        let r = try await call("/api/login", .post, json: #"{"username": "\#(user)", "password": "\#(password)"}"#)
        guard r.status == .ok, let setCookie = r.headers[.setCookie], let csrf = try r.object()["csrf_token"] as? String else {
            throw TestFailure("sign-in of \(user) failed: \(r.status) \(r.text)")
        }
        return SignedIn(cookie: String(setCookie.split(separator: ";")[0]), csrf: csrf)
    }
}

/// One real HTTP request with curl (which lets a test send any Host and
/// Origin): the status and body. Waits without holding a thread, so the
/// in-process server keeps running while curl does.
func curl(_ arguments: [String]) async throws -> (status: Int, body: String) {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("flowforest-curl-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let body = dir.appendingPathComponent("body"), status = dir.appendingPathComponent("status")
    let process = try ChildProcess.spawn("/usr/bin/curl", ["-s", "--max-time", "60", "-o", body.path, "-w", "%{http_code}"] + arguments,
                                         stdout: .file(status.path))
    await process.exit()
    let code = Int((try? String(contentsOf: status, encoding: .utf8)) ?? "") ?? 0
    return (code, (try? String(contentsOf: body, encoding: .utf8)) ?? "")
}

/// The value of an unlabelled metric series in a Prometheus exposition.
func metricValue(_ exposition: String, _ name: String) -> Double? {
    exposition.split(separator: "\n").first { $0.hasPrefix(name + " ") || $0.hasPrefix(name + "{}") }
        .flatMap { Double($0.split(separator: " ").last ?? "") }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Runs `body` against the router of a service over a fresh SQLite store holding 25 anomalies.
func withAPI(_ body: @escaping @Sendable (any TestClientProtocol, TestDatabase) async throws -> Void) async throws {
    let db = try await TestDatabase.make()
    defer { db.remove() }
    let store = try await Store.open(db.location, logger: quietLogger)
    do {
        var batch: [PendingAnomaly] = []
        for i in 0..<25 {
            batch.append(storedAnomaly(i, src: i % 2 == 0 ? "198.18.0.5" : "198.18.0.6", dst: "198.18.9.9",
                                       severity: i % 5 == 0 ? .critical : .medium, kind: i < 10 ? .flow : .host))
        }
        try await store.insertAnomalies(batch)
        let app = try await buildApplication(configuration: testConfiguration(db), flowSource: nil, logger: quietLogger,
                                             detector: NeverDetects(), store: store)
        try await app.test(.router) { client in try await body(client, db) }
        await store.close()
    } catch {
        await store.close()
        throw error
    }
}

/// A service over a fresh SQLite store, with its parts, for `body`.
func withService(
    _ mode: TestingSetup = .router, detector: any FlowDetector = NeverDetects(), configure: (inout ServerConfiguration) -> Void = { _ in },
    _ body: @escaping @Sendable (any TestClientProtocol, TestDatabase, ServiceParts) async throws -> Void
) async throws {
    let db = try await TestDatabase.make()
    defer { db.remove() }
    var configuration = testConfiguration(db)
    configure(&configuration)
    let (app, parts) = try await buildApplicationParts(configuration: configuration, flowSource: nil, logger: quietLogger,
                                                       detector: detector)
    do {
        try await app.test(mode) { client in try await body(client, db, parts) }
        if mode.isRouter { await parts.store.close() }
    } catch {
        if mode.isRouter { await parts.store.close() }
        throw error
    }
}

extension TestingSetup {
    // Router tests run no services, so the store the application opened stays open.
    var isRouter: Bool { "\(self)".contains("router") }
}

