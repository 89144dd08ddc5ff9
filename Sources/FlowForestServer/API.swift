import CoreMetrics
import FlowForestCore
import FlowForestPipeline
import FlowForestStore
import Foundation
import Hummingbird
import Logging
import ServiceLifecycle

/// The HTTP routes of docs/api.md; records in the shared JSON shapes.
struct API: Sendable {
    let configuration: ServerConfiguration
    let store: Store
    let writer: StoreWriter
    let pipeline: Pipeline
    let ingest: IngestTable
    let hub: EventHub
    let sessions: SessionStore
    let metrics: FlowForestMetrics
    let logger: Logger
    let throttle: LoginThrottle
    let hashing: BlockingWorkPool
    /// Decodes ingest bodies (up to 8 MiB of JSON, most of a second of CPU each).
    let decoding: BlockingWorkPool
    let handles: APIMetrics
    /// Store reads the API runs at once.
    let reads: ReadAdmission
    let startedAt = ContinuousClock.now

    func addRoutes(to router: Router<AppRequestContext>) {
        if let dashboard = Bundle.module.url(forResource: "Dashboard", withExtension: nil)?.path {
            router.add(middleware: FileMiddleware(dashboard, searchForIndexHtml: true, logger: logger))
        }
        router.get("openapi.yaml") { _, _ in try Self.openAPIDocument() }
        // Who may call a route is its group's middleware, never a check in
        // the handler: a route added to a group cannot forget it.
        let scraped = configuration.openMetrics ? router.group() : router.group().add(middleware: RequirePermission(.read))
        scraped.get("metrics") { _, context in try await metricsResponse(context) }
        // Every state-changing route is in this group, behind the cross-site guard.
        let api = router.group("api").add(middleware: CrossSiteGuard())
        api.get("session") { _, context in try session(context) }
        api.post("login") { request, context in try await login(request, context) }
        api.post("logout") { request, _ in logout(request) }
        (configuration.openMetrics ? api : api.group().add(middleware: RequirePermission(.read)))
            .get("health") { _, context in try await health(context) }

        let read = api.group().add(middleware: RequirePermission(.read))
        // The lists and lookups that query the store take their turn.
        let stored = read.group().add(middleware: StoreReadLimit(admission: reads))
        stored.get("anomalies") { request, context in try await listAnomalies(request, context) }
        stored.get("anomalies/:id") { _, context in try await oneAnomaly(context) }
        stored.get("incidents") { request, context in try await listIncidents(request, context) }
        stored.get("incidents/:id") { _, context in try await oneIncident(context) }
        stored.get("suppressions") { _, context in try await listSuppressions(context) }
        stored.get("suppressions/:id") { _, context in try await oneSuppression(context) }
        stored.get("flows") { request, context in try await flows(request, context) }
        stored.get("hosts") { request, context in try await hosts(request, context) }
        read.get("model") { _, context in try await model(context) }
        read.get("status") { _, context in try await status(context) }
        read.get("stats/history") { _, context in try statsHistory(context) }
        read.get("events") { _, context in try events(context) }

        let administer = api.group().add(middleware: RequirePermission(.administer))
        administer.post("anomalies/:id/ack") { _, context in try await acknowledge(context) }
        administer.post("suppressions") { request, context in try await createSuppression(request, context) }
        administer.put("suppressions/:id") { request, context in try await replaceSuppression(request, context) }
        administer.delete("suppressions/:id") { _, context in try await deleteSuppression(context) }
        administer.post("model/retrain") { _, context in try await retrain(context) }

        api.group().add(middleware: RequirePermission(.ingest))
            .post("traffic") { request, context in try await traffic(request, context) }
    }

    // MARK: Documents

    static func openAPIDocument() throws -> Response {
        guard let url = Bundle.module.url(forResource: "openapi", withExtension: "yaml"),
              let data = try? Data(contentsOf: url) else {
            throw APIError(.internalServerError, "openapi.yaml missing from the build")
        }
        return Response(status: .ok, headers: [.contentType: "application/yaml"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    func metricsResponse(_ context: AppRequestContext) async throws -> Response {
        _ = await storeHealth()
        return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                        body: .init(byteBuffer: ByteBuffer(string: metrics.render())))
    }

    /// The store's state: `ok`; `degraded` when writes fail or the SQLite
    /// file was deleted or replaced under the running store; `unavailable`
    /// when it does not answer. Also sets `flowforest_store_healthy`.
    ///
    /// A write or a ping that succeeded within the last second answers for
    /// the database: a ping would wait behind the writer's inserts (SQLite
    /// runs one statement at a time), and health must answer at once under
    /// a flood that keeps the writer busy, and cheaply at a probe's rate.
    func storeHealth() async -> (state: String, reason: String?) {
        let result: (String, String?)
        if let problem = store.fileProblem() {
            result = ("degraded", problem)
        } else if writer.wroteSuccessfully(within: .seconds(1)) {
            result = ("ok", nil)
        } else if !store.answered(within: .seconds(1)), !(await store.ping()) {
            result = ("unavailable", "the database does not answer")
        } else if let failure = writer.failure {
            result = ("degraded", failure)
        } else {
            result = ("ok", nil)
        }
        handles.storeHealthy.record(result.0 == "ok" ? 1 : 0)
        return result
    }

    func health(_ context: AppRequestContext) async throws -> Response {
        let (state, reason) = await storeHealth()
        let uptime = ContinuousClock.now - startedAt
        var body = [
            "status": state == "ok" ? "ok" : "degraded",
            "store": state,
            "database": store.kind,
            "sensor": configuration.sensorName,
            "version": configuration.version,
            "model": pipeline.latestModelStatus.state.modelStateName,
            "store_pending": String(writer.pendingTotal),
            "uptime_seconds": String(uptime.components.seconds),
        ]
        if let reason { body["reason"] = reason }
        return try json(body, status: state == "ok" ? .ok : .serviceUnavailable)
    }

    // MARK: Sessions

    func session(_ context: AppRequestContext) throws -> Response {
        // Any role may ask who it is; the CSRF token comes with cookie sessions only.
        guard let p = context.principal else {
            throw APIError(.unauthorized, "not signed in", headers: [.wwwAuthenticate: "Bearer"])
        }
        var body = ["user": p.name, "role": p.role.rawValue]
        if let session = context.session { body["csrf_token"] = session.csrfToken }
        return try json(body)
    }

    struct LoginForm: Decodable {
        var username: String
        var password: String
    }

    /// Signs a user in. Throttled per client address and user name (429 with
    /// `Retry-After` while blocked), and the password hash is checked on the
    /// bounded hashing pool, so guessing neither succeeds fast nor stalls
    /// other requests.
    func login(_ request: Request, _ context: AppRequestContext) async throws -> Response {
        let body = try await request.body.collect(upTo: 16 * 1024)
        let form: LoginForm
        if request.headers[.contentType]?.hasPrefix("application/x-www-form-urlencoded") == true {
            guard let f = try? URLEncodedFormDecoder().decode(LoginForm.self, from: String(buffer: body)) else {
                throw APIError(.badRequest, "login needs username and password")
            }
            form = f
        } else {
            guard let f = try? JSONDecoder().decode(LoginForm.self, from: Data(buffer: body)) else {
                throw APIError(.badRequest, "login needs a JSON body {\"username\", \"password\"}")
            }
            form = f
        }
        let keys = LoginThrottle.keys(address: context.clientAddress, user: form.username)
        if let wait = throttle.begin(keys) {
            let seconds = max(1, Int(wait.components.seconds) + (wait.components.attoseconds > 0 ? 1 : 0))
            handles.loginFailed(.throttled)
            throw APIError(.tooManyRequests, "too many failed sign-ins; retry in \(seconds) s", headers: [.retryAfter: String(seconds)])
        }
        let credential: (hash: String, principal: Principal)?
        let matches: Bool
        do {
            // A name with NUL is no user's (PostgreSQL cannot even compare it): a failed sign-in.
            credential = form.username.utf8.contains(0) ? nil
                : try await storeCall { try await store.userCredential(name: form.username) }
            // An unknown name costs the same hash as a known one, so timing does not tell which names exist.
            matches = try await hashing.verify(form.password, against: credential?.hash ?? PasswordHash.dummy)
        } catch {
            throttle.abandoned(keys)
            throw error
        }
        guard matches, let credential else {
            throttle.failed(keys)
            handles.loginFailed(.wrongPassword)
            logger.notice("failed sign-in", metadata: ["user": "\(API.quoted(form.username))", "client": "\(context.clientAddress)"])
            throw APIError(.unauthorized, "wrong user name or password")
        }
        throttle.succeeded(keys)
        let principal = credential.principal
        let (id, csrf) = sessions.create(for: principal, credential: .user(name: form.username, passwordHash: credential.hash))
        var response = try json(["user": principal.name, "role": principal.role.rawValue, "csrf_token": csrf])
        response.setCookie(sessions.cookie(id, secure: configuration.secureCookies))
        logger.info("user signed in", metadata: ["user": "\(principal.name)"])
        return response
    }

    func logout(_ request: Request) -> Response {
        if let cookie = request.cookies[SessionCookie.name] { sessions.remove(cookie.value) }
        var response = Response(status: .noContent)
        response.setCookie(sessions.cookie("", secure: configuration.secureCookies))
        return response
    }

    // MARK: Anomalies

    /// `values` in their first order, each once.
    static func distinct<T: Hashable>(_ values: [T]) -> [T] {
        var seen = Set<T>()
        return values.filter { seen.insert($0).inserted }
    }

    func listAnomalies(_ request: Request, _ context: AppRequestContext) async throws -> Response {
        let q = request.uri.queryParameters
        var query = AnomalyQuery()
        if let ip = q["ip"].map(String.init) {
            guard let a = IPAddress(ip) else { throw APIError(.badRequest, "ip: not an IPv4 or IPv6 address: \(Self.quoted(ip))") }
            query.address = a
        }
        query.sinceMs = try q["since"].map { try Self.parseTime(String($0), parameter: "since") }
        query.untilMs = try q["until"].map { try Self.parseTime(String($0), parameter: "until") }
        // Each value once: "low,low,…" a thousand times is four values at
        // most, not a query with a parameter per repeat.
        if let s = q["severity"] {
            query.severities = try Self.distinct(s.split(separator: ",", omittingEmptySubsequences: false).map {
                guard let v = Severity(rawValue: String($0)) else { throw APIError(.badRequest, "severity: expected low, medium, high or critical, got \(Self.quoted(String($0)))") }
                return v
            })
        }
        if let k = q["kind"] {
            query.kinds = try Self.distinct(k.split(separator: ",", omittingEmptySubsequences: false).map {
                guard let v = AnomalyKind(rawValue: String($0)) else { throw APIError(.badRequest, "kind: expected flow, host or destination, got \(Self.quoted(String($0)))") }
                return v
            })
        }
        if let a = q["acknowledged"] {
            guard a == "true" || a == "false" else { throw APIError(.badRequest, "acknowledged: expected true or false") }
            query.acknowledged = a == "true"
        }
        query.sensor = try Self.parseName(q["sensor"], parameter: "sensor", maxLength: 255)
        query.interface = try Self.parseInterface(q["interface"])
        query.limit = try Self.parseLimit(q["limit"].map(String.init), default: 100)
        if let c = q["cursor"] {
            guard let id = Self.decodeCursor(String(c)) else { throw APIError(.badRequest, "cursor: not a cursor from a previous page") }
            query.beforeID = id
        }
        let page = try await storeCall { try await store.anomalies(query) }
        return try json(AnomalyList(anomalies: page.anomalies, nextCursor: page.nextCursor.map(Self.encodeCursor)))
    }

    struct AnomalyList: Encodable {
        var anomalies: [Anomaly]
        var nextCursor: String?
        enum CodingKeys: String, CodingKey { case anomalies, nextCursor = "next_cursor" }
        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(anomalies, forKey: .anomalies)
            try c.encode(nextCursor, forKey: .nextCursor)
        }
    }

    func anomalyID(_ context: AppRequestContext) throws -> Int64 {
        guard let text = context.parameters.get("id"), let id = Self.positiveInteger(text) else {
            throw APIError(.badRequest, "id: expected a positive integer")
        }
        return id
    }

    func oneAnomaly(_ context: AppRequestContext) async throws -> Response {
        let id = try anomalyID(context)
        guard let a = try await storeCall({ try await store.anomaly(id: id) }) else {
            throw APIError(.notFound, "no anomaly \(id)")
        }
        return try json(a)
    }

    func acknowledge(_ context: AppRequestContext) async throws -> Response {
        let p = try context.authenticated()
        let id = try anomalyID(context)
        guard try await storeCall({ try await store.acknowledgeAnomaly(id: id, by: p.name) }) else {
            throw APIError(.notFound, "no anomaly \(id)")
        }
        guard let a = try await storeCall({ try await store.anomaly(id: id, .write) }) else { throw APIError(.notFound, "no anomaly \(id)") }
        return try json(a)
    }

    // MARK: Flows and hosts

    struct FlowsResponse: Encodable {
        var active: [FlowJSON]
        var recent: [FlowJSON]
        var topTalkers: [HostSummary]
        enum CodingKeys: String, CodingKey { case active, recent, topTalkers = "top_talkers" }
    }

    /// The `interface` filter: an interface, or an exporter's address with or
    /// without "%" and its ingress interface index. Characters as JSON Schema
    /// counts them (code points), the spec's maxLength.
    static func parseInterface(_ value: Substring?) throws -> String? {
        try parseName(value, parameter: "interface", maxLength: 64)
    }

    /// A name to match (sensor, interface): 1 to `maxLength` characters
    /// without control characters, which no stored name holds and which
    /// PostgreSQL refuses in text (NUL): 400 rather than a database error.
    static func parseName(_ value: Substring?, parameter: String, maxLength: Int) throws -> String? {
        guard let value else { return nil }
        guard (1...maxLength).contains(value.unicodeScalars.count),
              !value.unicodeScalars.contains(where: isUnsafeInText) else {
            throw APIError(.badRequest, "\(parameter): 1 to \(maxLength) characters, no control characters")
        }
        return String(value)
    }

    func flows(_ request: Request, _ context: AppRequestContext) async throws -> Response {
        let q = request.uri.queryParameters
        let limit = try Self.parseLimit(q["limit"].map(String.init), default: 100)
        var address: IPAddress?
        if let ip = q["ip"].map(String.init) {
            guard let a = IPAddress(ip) else { throw APIError(.badRequest, "ip: not an IPv4 or IPv6 address: \(Self.quoted(ip))") }
            address = a
        }
        let interface = try Self.parseInterface(q["interface"])
        let sinceMs = try q["since"].map { try Self.parseTime(String($0), parameter: "since") } ?? (Store.nowMs() - 3_600_000)
        let sensor = configuration.sensorName
        let active = await pipeline.busiestOpenFlows()
            .filter { address == nil || $0.record.sourceAddress == address || $0.record.destinationAddress == address }
            .filter { interface == nil || $0.record.interfaceName == interface || $0.record.interfaceName?.hasPrefix(interface! + "%") == true }
            .prefix(limit)
            .map { $0.record.json(sensor: sensor) }
        let recent = try await storeCall { try await store.recentFlows(address: address, interface: interface, sinceMs: sinceMs, limit: limit) }
        let top = try await storeCall { try await store.hosts(sinceMs: sinceMs, limit: 10) }
        return try json(FlowsResponse(active: Array(active), recent: recent.map { $0.record.json(sensor: $0.sensor) }, topTalkers: top))
    }

    func hosts(_ request: Request, _ context: AppRequestContext) async throws -> Response {
        let q = request.uri.queryParameters
        let limit = try Self.parseLimit(q["limit"].map(String.init), default: 50)
        let sinceMs = try q["since"].map { try Self.parseTime(String($0), parameter: "since") } ?? (Store.nowMs() - 3_600_000)
        let hosts = try await storeCall { try await store.hosts(sinceMs: sinceMs, limit: limit) }
        return try json(["hosts": hosts])
    }

    // MARK: Stats

    struct StatsHistoryBody: Encodable {
        var intervalSeconds: Double
        var samples: [LiveStats]
        enum CodingKeys: String, CodingKey { case intervalSeconds = "interval_seconds", samples }
    }

    /// The stats samples of the last hour, oldest first, as the `stats` events sent them.
    func statsHistory(_ context: AppRequestContext) throws -> Response {
        let c = configuration.tickInterval.components
        return try json(StatsHistoryBody(intervalSeconds: Double(c.seconds) + Double(c.attoseconds) / 1e18, samples: hub.history.samples))
    }

    // MARK: Model

    func model(_ context: AppRequestContext) async throws -> Response {
        return try json(pipeline.latestModelStatus)
    }

    func retrain(_ context: AppRequestContext) async throws -> Response {
        let p = try context.authenticated()
        logger.info("retrain requested", metadata: ["by": "\(p.name)"])
        return try json(await pipeline.retrain())
    }

    // MARK: Ingest

    struct IngestResult: Encodable {
        var accepted: Int
        var flowsStarted: UInt64
        var activeFlows: Int
        enum CodingKeys: String, CodingKey { case accepted, flowsStarted = "flows_started", activeFlows = "active_flows" }
    }

    /// True for `application/json`, with any parameters (`; charset=utf-8`).
    static func isJSON(_ contentType: String?) -> Bool {
        guard let contentType else { return false }
        let type = contentType.split(separator: ";", maxSplits: 1).first ?? ""
        return type.trimmingCharacters(in: .whitespaces).lowercased() == "application/json"
    }

    /// The body, or nil when it is longer than `limit` bytes; past the limit
    /// it is still read, and dropped, up to `readLimit` bytes in all.
    static func collect(_ body: RequestBody, limit: Int, readLimit: Int) async throws -> ByteBuffer? {
        var buffer = ByteBuffer()
        var total = 0
        for try await chunk in body {
            total += chunk.readableBytes
            if total <= limit {
                buffer.writeImmutableBuffer(chunk)
            } else if total > readLimit {
                return nil
            }
        }
        return total <= limit ? buffer : nil
    }

    /// An ingest body's packets, decoded on the ``decoding`` pool (503 when
    /// it is at its limit, or `agent` already holds its share of it); 413
    /// for too many records, 400 for anything invalid.
    private func decode(_ body: ByteBuffer, by agent: String?) async throws -> [PacketSummary] {
        let (maxRecords, window) = (configuration.maxIngestRecords, configuration.ingestWindow(nowNs: wallClockNs()))
        let decoded: Result<[PacketSummary], IngestError>
        do {
            decoded = try await decoding.run(key: agent) {
                Result { () throws(IngestError) in try IngestRecord.decodeAll(Data(buffer: body), maxRecords: maxRecords, window: window) }
            }
        } catch {
            handles.rejected(.decoderBusy)
            throw error
        }
        switch decoded {
        case .success(let packets):
            return packets
        case .failure(let error):
            if case .tooMany = error {
                handles.rejected(.tooManyRecords)
                throw APIError(.contentTooLarge, error.description)
            }
            handles.rejected(.invalid)
            throw APIError(.badRequest, error.description)
        }
    }

    func traffic(_ request: Request, _ context: AppRequestContext) async throws -> Response {
        let principal = try context.authenticated()
        guard context.viaToken else {
            throw APIError(.forbidden, "ingest needs an API token ('Authorization: Bearer <token>'), not a dashboard session")
        }
        guard Self.isJSON(request.headers[.contentType]) else {
            handles.rejected(.invalid)
            throw APIError(.unsupportedMediaType, "POST /api/traffic takes application/json, not "
                           + (request.headers[.contentType].map { "\"\(API.quoted($0))\"" } ?? "a body without Content-Type"))
        }
        let limit = configuration.maxIngestBytes
        // Up to four times the limit an oversized body is read and dropped
        // before the answer, so a client that writes all of it before reading
        // (with `Connection: close`) gets the 413 rather than a stalled write.
        let readLimit = 4 * limit
        if let length = request.headers[.contentLength].flatMap(Int.init), length > limit {
            handles.rejected(.tooLarge)
            if length <= readLimit { _ = try? await Self.collect(request.body, limit: 0, readLimit: readLimit) }
            throw APIError(.contentTooLarge, "body of \(length) bytes exceeds the limit of \(limit)")
        }
        guard let body = try await Self.collect(request.body, limit: limit, readLimit: readLimit) else {
            handles.rejected(.tooLarge)
            throw APIError(.contentTooLarge, "body exceeds the limit of \(limit) bytes")
        }
        // Under --no-auth every request is the one anonymous principal: no share to keep.
        let packets = try await decode(body, by: configuration.noAuth ? nil : principal.name)
        // The flow records this request will lead to must fit the store
        // queue beside those every open ingest flow still owes it; refuse
        // rather than drop.
        let writer = self.writer
        guard let added = await ingest.add(packets, storeRoom: { writer.flowRoom }) else {
            handles.rejected(.storeBusy)
            throw APIError(.serviceUnavailable, "store queue full; retry later", headers: [.retryAfter: "5"])
        }
        handles.ingestRecords.increment(by: Int64(packets.count))
        logger.debug("ingest", metadata: ["by": "\(principal.name)", "records": "\(packets.count)", "refused": "\(added.refused)"])
        return try json(IngestResult(accepted: packets.count, flowsStarted: added.flowsStarted, activeFlows: added.activeFlows),
                        status: .accepted)
    }

    // MARK: Events

    /// How often an open event stream asks whether its credential still
    /// stands (a session's store check runs at most once per
    /// ``SessionStore/recheck``; a token's goes to the store each time).
    static let streamRecheck: Duration = .seconds(5)

    func events(_ context: AppRequestContext) throws -> Response {
        let hub = self.hub
        let stillAuthorized = context.stillAuthorized
        return Response(
            status: .ok,
            headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"],
            body: ResponseBody { writer in
                // Subscribed when the body is written: a HEAD request's
                // body never is, and would otherwise hold a subscription.
                let subscription = hub.subscribe()
                let id = subscription.id
                // Graceful shutdown ends the stream so the server can stop;
                // so does signing out, a revoked token or an expired session
                // (the browser's reconnect then gets its 401).
                let watch = Task {
                    guard let stillAuthorized else { return }
                    while !Task.isCancelled {
                        try await Task.sleep(for: Self.streamRecheck)
                        if await !stillAuthorized() {
                            hub.unsubscribe(id)
                            return
                        }
                    }
                }
                defer { watch.cancel() }
                try await withGracefulShutdownHandler {
                    for await message in subscription.stream {
                        try await writer.write(ByteBuffer(string: message))
                        subscription.sent(message)
                    }
                } onGracefulShutdown: {
                    hub.unsubscribe(id)
                }
                hub.unsubscribe(id)
                try await writer.finish(nil)
            })
    }

    // MARK: Helpers

    func json(_ value: some Encodable, status: HTTPResponse.Status = .ok) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = try encoder.encode(value)
        return Response(status: status, headers: [.contentType: "application/json; charset=utf-8"],
                        body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// Runs a store call; a database outage becomes 503 rather than 500.
    func storeCall<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch {
            logger.warning("store query failed", metadata: ["error": "\(error)"])
            throw APIError(.serviceUnavailable, "database unavailable: \(error)", headers: [.retryAfter: "5"])
        }
    }

    /// RFC 3339 or decimal epoch seconds from ``Timestamp/rangeDescription``, to ms.
    ///
    /// A query bound whose offset moves it just past either end of the range
    /// is clamped there (see ``Timestamp/parseRFC3339Clamped(_:)``): it is a
    /// valid instant, and as a filter it still means what it says.
    static func parseTime(_ text: String, parameter: String) throws -> Int64 {
        // Both parsers return values below Timestamp.endNs, so ms fits Int64.
        if let ns = Timestamp.parseEpochSeconds(text) ?? Timestamp.parseRFC3339Clamped(text) { return Int64(ns / 1_000_000) }
        throw APIError(.badRequest, "\(parameter): expected an RFC 3339 time or epoch seconds from \(Timestamp.rangeDescription), got \(Self.quoted(text))")
    }

    /// Digits only (no sign, space or exponent), 1...1000.
    static func parseLimit(_ text: String?, default value: Int) throws -> Int {
        guard let text else { return value }
        guard (1...4).contains(text.utf8.count), text.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }),
              let n = Int(text), (1...1000).contains(n) else {
            throw APIError(.badRequest, "limit: expected 1...1000, got \(Self.quoted(text))")
        }
        return n
    }

    /// Hostile text echoed in an error: bounded, control characters escaped.
    static func quoted(_ text: String) -> String {
        var out = ""
        for scalar in text.unicodeScalars.prefix(80) {
            out += isUnsafeInText(scalar) ? scalar.escaped(asASCII: true) : String(scalar)
        }
        return text.unicodeScalars.count > 80 ? out + "…" : out
    }

    /// Characters that break or disguise a line of text someone reads:
    /// C0 and C1 controls and DEL, the line and paragraph separators, and
    /// the bidirectional overrides and isolates (which reorder what follows).
    static func isUnsafeInText(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0..<0x20, 0x7F...0x9F, 0x2028, 0x2029, 0x202A...0x202E, 0x2066...0x2069: return true
        default: return false
        }
    }

    /// The id below which the next page starts, in decimal: the spec can
    /// then state the cursor's exact format (`^[1-9][0-9]{0,17}$`).
    static func encodeCursor(_ id: Int64) -> String { String(id) }

    static func decodeCursor(_ text: String) -> Int64? {
        guard text.utf8.count <= 18, text.utf8.first != UInt8(ascii: "0") else { return nil }
        return positiveInteger(text)
    }

    /// Digits only (no sign, space or exponent), at most 18 of them, above 0.
    static func positiveInteger(_ text: String) -> Int64? {
        guard (1...18).contains(text.utf8.count), text.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }),
              let n = Int64(text), n > 0 else { return nil }
        return n
    }
}
