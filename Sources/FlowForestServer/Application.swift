public import FlowForestCore
public import FlowForestPipeline
public import FlowForestStore
import Foundation
public import Hummingbird
public import Logging
import Metrics
import ServiceLifecycle

/// Everything `flowforest run` configures about the service.
public struct ServerConfiguration: Sendable {
    /// Address and port to listen on (`--listen`, default 127.0.0.1:8080).
    public var host = "127.0.0.1"
    public var port = 8080
    /// Where anomalies, flows, models and credentials are kept.
    public var database: StoreLocation = .sqlite(path: "./flowforest.db")
    /// Written on every row, so several sensors can share one database.
    public var sensorName: String = ProcessInfo.processInfo.hostName
    /// Serve `/metrics` and `/api/health` without credentials.
    public var openMetrics = false
    /// Largest `POST /api/traffic` body, and most records in one.
    public var maxIngestBytes = 8 * 1024 * 1024
    public var maxIngestRecords = 100_000
    /// How far ahead of the server clock an ingested packet may be stamped
    /// (`--ingest-max-skew`, default 5 minutes). Ingested flows end by the
    /// server's clock too, so no stamp holds a flow open; the window keeps
    /// times the detector would misread out of the store.
    public var ingestMaxSkew: Duration = .seconds(300)
    /// How far behind the server clock an ingested packet may be stamped
    /// (`--ingest-max-age`, default 1 day: an agent's buffer across an outage).
    public var ingestMaxAge: Duration = .seconds(86_400)
    /// Flow timeouts and the flow limit (`--max-flows`) of the ingest flow
    /// table; the pipeline's ledger holds as many flows, and holds a quiet
    /// one longer than these timeouts let any source go without its record.
    public var ingestFlowTable = FlowTableConfiguration()
    /// How often ingested flows are advanced and stats events are sent.
    public var tickInterval: Duration = .seconds(1)
    /// How far back `GET /api/stats/history` reaches: one sample per tick, held in memory.
    public var statsHistory: Duration = .seconds(3600)
    public var writer = StoreWriterConfiguration()
    /// The API's store reads (lists, lookups) at once; 32 more wait, and
    /// more than that are answered 503 (``ReadAdmission``).
    public var storeReads = 4
    /// How anomalies group into incidents (`--incident-gap`).
    public var incidents = IncidentConfiguration()
    /// Rules of `--suppress FILE`, in force besides the stored ones.
    public var suppressions: [Suppression] = []
    /// Where incidents are sent (`--alertmanager`, `--webhook`).
    public var alerts = AlertConfiguration()
    /// Dashboard session lifetime.
    public var sessionLifetime: Duration = .seconds(12 * 3600)
    /// How long a session is trusted before the store is asked again whether
    /// its user or token still stands (removed, re-added, revoked).
    public var sessionRecheck: Duration = .seconds(30)
    /// Mark the session cookie `Secure` (when served through HTTPS).
    public var secureCookies = false
    /// Sign-in throttling: failures allowed per client address and per user
    /// name before each further one blocks them for `loginFirstDelay`,
    /// doubling up to `loginMaxDelay`.
    public var loginFreeFailures = 5
    public var loginFirstDelay: Duration = .seconds(1)
    public var loginMaxDelay: Duration = .seconds(900)
    /// `--no-auth`: serve requests without credentials as an anonymous admin.
    /// For development on loopback only; refused on any other address.
    public var noAuth = false
    /// `--allowed-host`: host names (besides localhost, IP literals and the
    /// `--listen` host) requests may name in `Host`.
    public var allowedHosts: [String] = []
    /// Connections per client and in all, and the idle timeout.
    public var connections = ConnectionLimits()
    /// Where the first-start sign-in link goes (standard error by default).
    public var announce: @Sendable (String) -> Void = { message in
        FileHandle.standardError.write(Data((message + "\n").utf8))
    }
    /// Packet times ingest accepts with the server clock at `nowNs`: never
    /// outside ``Timestamp/endNs``.
    func ingestWindow(nowNs: UInt64) -> Range<UInt64> {
        func ns(_ d: Duration) -> UInt64 {
            let c = d.components
            guard c.seconds >= 0 else { return 0 }
            // Durations beyond the representable range mean "unbounded".
            let (s, overflow) = UInt64(c.seconds).multipliedReportingOverflow(by: 1_000_000_000)
            return overflow ? UInt64.max : s &+ UInt64(max(0, c.attoseconds / 1_000_000_000))
        }
        let past = ns(ingestMaxAge), future = ns(ingestMaxSkew)
        let lower = min(nowNs > past ? nowNs - past : 0, Timestamp.endNs - 1)
        let (upper, overflow) = nowNs.addingReportingOverflow(future)
        let end = overflow || upper >= Timestamp.endNs ? Timestamp.endNs : upper + 1
        return lower..<max(end, lower + 1)
    }

    /// Version reported by health and `flowforest_build_info`.
    public var version = "0.1.0"

    public init() {}

    /// Parses `HOST:PORT` (`[::1]:8080` for IPv6); nil when malformed.
    public static func parseListen(_ text: String) -> (host: String, port: Int)? {
        var host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else { return nil }
            host = text[text.index(after: text.startIndex)..<close]
            portText = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":") else { return nil }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
        }
        if host.isEmpty { host = "0.0.0.0" }
        guard let port = Int(portText), (0...65535).contains(port) else { return nil }
        return (String(host), port)
    }

    /// True for addresses only this machine can reach: `localhost`, or an
    /// address literal in 127.0.0.0/8 or ::1 (a name such as
    /// `127.example.com` is not one).
    public var isLoopback: Bool {
        if host == "localhost" { return true }
        guard let address = IPAddress(host) else { return false }
        if let v4 = address.ipv4Value { return v4 >> 24 == 127 }
        return address == IPAddress(high: 0, low: 1)
    }

    /// The dashboard's address for a browser on this machine.
    public var baseURL: String {
        let h = ["0.0.0.0", "::", ""].contains(host) ? "127.0.0.1" : host
        return h.contains(":") ? "http://[\(h)]:\(port)" : "http://\(h):\(port)"
    }
}

/// Why the service refused to start.
public enum ServerStartError: Error, CustomStringConvertible {
    /// `--no-auth` with a `--listen` address other machines can reach.
    case noAuthNotLoopback(host: String, port: Int)
    /// The database once had credentials and now has none.
    case credentialsLost(database: String)

    public var description: String {
        switch self {
        case .noAuthNotLoopback(let host, let port):
            return "refusing --no-auth on \(host):\(port): without authentication anyone who can reach that address could read and change FlowForest data. "
                + "--no-auth is for development on a loopback address (127.0.0.1, ::1 or localhost) only."
        case .credentialsLost(let database):
            return "refusing to start: the database \(database) had credentials and now has none (were its users and tokens deleted?). "
                + "FlowForest will not come up without authentication. Add one with `flowforest token add NAME --role admin` "
                + "or `flowforest user add NAME --role admin` using the same --database, then start again."
        }
    }
}

/// The running parts of one service instance, for tests and the CLI.
public struct ServiceParts: Sendable {
    public let store: Store
    public let writer: StoreWriter
    public let metrics: FlowForestMetrics
    /// The admin token created at first start (also in the announced sign-in link), else nil.
    public let firstStartToken: String?
}

/// Builds the FlowForest service: HTTP API, dashboard, server-sent events
/// and `/metrics`, with the capture consumer, detector, store writer and
/// event hub as lifecycle services of the returned application.
///
/// - Parameters:
///   - flowSource: local capture, or nil to serve stored data and remote ingest only.
///   - detector: scores every batch; learning until it has a model.
///   - store: an opened store to use; by default one is opened at `configuration.database`.
///   - metrics: the registry `/metrics` renders; pass the one capture sources report to.
/// Never serves without authentication unless `configuration.noAuth` (loopback
/// only). A database with no credential gets an admin token, announced once
/// as a sign-in link (`http://HOST:PORT/?token=fft_...`); a database that had
/// credentials and lost them is refused.
///
/// - Throws: ``ServerStartError`` for `--no-auth` off loopback or a database
///   whose credentials are gone; store errors.
public func buildApplication(
    configuration: ServerConfiguration,
    flowSource: (any FlowSource)?,
    logger: Logger,
    detector: any FlowDetector,
    store: Store? = nil,
    metrics: FlowForestMetrics = FlowForestMetrics()
) async throws -> some ApplicationProtocol {
    let (app, _) = try await buildApplicationParts(
        configuration: configuration, flowSource: flowSource, logger: logger,
        detector: detector, store: store, metrics: metrics)
    return app
}

/// ``buildApplication(configuration:flowSource:logger:detector:store:metrics:)``
/// plus the store, writer and metrics it runs with.
public func buildApplicationParts(
    configuration: ServerConfiguration,
    flowSource: (any FlowSource)?,
    logger: Logger,
    detector: any FlowDetector,
    store: Store? = nil,
    metrics: FlowForestMetrics = FlowForestMetrics()
) async throws -> (some ApplicationProtocol, ServiceParts) {
    let ownsStore = store == nil
    let givenStore = store
    let store: Store
    if let givenStore {
        store = givenStore
    } else {
        store = try await Store.open(configuration.database, logger: logger)
    }
    let firstStartToken: String?
    do {
        firstStartToken = try await prepareAuthentication(configuration, store: store, logger: logger)
        // This run's pipeline starts with no incident open; those a previous run left open are over.
        let closed = try await store.closeOpenIncidents(sensor: configuration.sensorName)
        if closed > 0 { logger.info("closed incidents left open by the previous run", metadata: ["count": "\(closed)"]) }
    } catch {
        if ownsStore { await store.close() }
        throw error
    }

    let factory = metrics.factory
    Gauge(label: "process_start_time_seconds", factory: factory).record(processStartTime())
    Gauge(label: "flowforest_build_info", dimensions: [("version", configuration.version)], factory: factory).record(1)

    // Data flows one way: capture and ingest feed the pipeline, the pipeline
    // feeds the writer, and the hub reads what the writer stored.
    let writer = StoreWriter(store: store, configuration: configuration.writer, logger: logger, metricsFactory: factory)
    // --max-flows bounds the open flows user space holds, every source together.
    let pipeline = Pipeline(sensor: configuration.sensorName, detector: detector, sink: StoreSink(writer: writer),
                            maxFlows: configuration.ingestFlowTable.maxFlows,
                            longestSilenceNs: configuration.ingestFlowTable.longestSilenceNs,
                            incidents: configuration.incidents, logger: logger, metricsFactory: factory)
    let ingest = IngestTable(configuration: configuration.ingestFlowTable, metricsFactory: factory)
    let rates = RateTracker()
    let hub = EventHub(statsInterval: configuration.tickInterval, historyLength: configuration.statsHistory, anomalies: writer.storedAnomalies,
                       incidents: writer.storedIncidents.subscribe(), metricsFactory: factory) {
        // The latest batch's figures: a stats event never waits for the batch being scored.
        let now = pipeline.snapshot
        let (pps, bps) = rates.rates(packets: now.packetsTotal, bytes: now.bytesTotal)
        return LiveStats(
            time: Timestamp.rfc3339(nanoseconds: wallClockNs()), packetsPerSecond: pps, bytesPerSecond: bps,
            activeFlows: now.activeFlows, anomaliesTotal: now.anomaliesTotal,
            storePending: writer.pendingTotal, storeErrorsTotal: writer.errorCount,
            model: now.modelStatus.state.modelStateName)
    }

    let sessions = SessionStore(lifetime: configuration.sessionLifetime, recheck: configuration.sessionRecheck)
    let api = API(
        configuration: configuration, store: store, writer: writer, pipeline: pipeline, ingest: ingest,
        hub: hub, sessions: sessions, metrics: metrics, logger: logger,
        throttle: LoginThrottle(freeFailures: configuration.loginFreeFailures, firstDelay: configuration.loginFirstDelay,
                                maxDelay: configuration.loginMaxDelay),
        hashing: .passwordHashing(),
        // One body at a time beside the rest of the server, a few waiting, at
        // most two places per agent so one cannot hold them all; more get 503.
        decoding: BlockingWorkPool(label: "flowforest.ingest-decoding", width: 1, maxWaiting: 4, maxPerKey: 2,
                                   busy: "too many ingest requests being decoded; retry shortly"),
        handles: APIMetrics(factory: metrics.factory),
        reads: ReadAdmission(width: configuration.storeReads, factory: metrics.factory))
    // The stored rules and the file's are in force from the first batch.
    await api.applySuppressions()
    let router = Router(context: AppRequestContext.self)
    router.middlewares.add(SecurityHeaders())
    router.middlewares.add(HostGuard(listenHost: configuration.host, allowedHosts: configuration.allowedHosts))
    router.middlewares.add(RequestGuard())
    router.middlewares.add(AuthMiddleware(store: store, sessions: sessions, noAuth: configuration.noAuth,
                                          secureCookies: configuration.secureCookies))
    api.addRoutes(to: router)

    // Shutdown runs in reverse: capture and ingest stop first and hand their
    // last flows on, the incidents still open close, the event hub ends
    // streams, the writer flushes, and the store closes last.
    var services: [any Service] = []
    if ownsStore { services.append(store) }
    // Alert routes stop after the writer (services stop in reverse order):
    // they deliver what it stored last, then end with its feed.
    services += alertRoutes(configuration, feed: writer.storedIncidents, factory: factory, logger: logger)
    services.append(writer)
    services.append(hub)
    services.append(IncidentShutdownService(pipeline: pipeline))
    services.append(IngestService(table: ingest, pipeline: pipeline, interval: configuration.tickInterval))
    if let flowSource {
        services.append(CaptureService(source: flowSource, pipeline: pipeline, logger: logger))
    }
    let connections = ConnectionCounter(limits: configuration.connections, factory: factory)
    let idle = configuration.connections.idleTimeout.components
    let app = Application(
        responder: HeadAsGet(base: router.buildResponder()),
        server: .http1(configuration: .init(
            additionalChannelHandlers: [connections.handler()],
            idleTimeout: .seconds(idle.seconds) + .nanoseconds(idle.attoseconds / 1_000_000_000))),
        configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "FlowForest"),
        services: services,
        logger: logger)
    return (app, ServiceParts(store: store, writer: writer, metrics: metrics, firstStartToken: firstStartToken))
}

/// One route per `--alertmanager` and `--webhook` URL, each reading its own copy of the incident feed.
func alertRoutes(_ configuration: ServerConfiguration, feed: IncidentFeed, factory: any MetricsFactory, logger: Logger) -> [any Service] {
    let alerts = configuration.alerts
    let links = AlertLinks(base: alerts.externalURL ?? configuration.baseURL)
    let managers: [any Service] = zip(alerts.alertmanagers, AlertMetrics.destinations(alerts.alertmanagers)).map {
        AlertmanagerRoute(url: $0, destination: $1, configuration: alerts, links: links, feed: feed.subscribe(),
                          metricsFactory: factory, logger: logger)
    }
    let hooks: [any Service] = zip(alerts.webhooks, AlertMetrics.destinations(alerts.webhooks)).map {
        WebhookRoute(url: $0, destination: $1, configuration: alerts, feed: feed.subscribe(), metricsFactory: factory, logger: logger)
    }
    return managers + hooks
}

/// Makes sure the service will not run open: `--no-auth` only on loopback;
/// a database that had credentials must still have one; a database that
/// never had one gets an admin token now, announced once as a sign-in link.
/// Returns that token.
func prepareAuthentication(_ configuration: ServerConfiguration, store: Store, logger: Logger) async throws -> String? {
    if configuration.noAuth {
        guard configuration.isLoopback else {
            throw ServerStartError.noAuthNotLoopback(host: configuration.host, port: configuration.port)
        }
        logger.warning("--no-auth: requests without credentials act as an admin; for development on loopback only")
        return nil
    }
    // A PostgreSQL pool still connecting (a busy or restarting server) may miss a query deadline; try for a while.
    var attempt = 0
    let count: Int
    while true {
        do {
            count = try await store.credentialCount()
            break
        } catch StoreError.unavailable(let reason) where attempt < 5 {
            attempt += 1
            logger.warning("store not answering at start; retrying", metadata: ["reason": "\(reason)"])
        }
    }
    guard count == 0 else { return nil }
    if try await store.credentialsWereConfigured() {
        throw ServerStartError.credentialsLost(database: "\(configuration.database)")
    }
    let name = "first-start-admin"
    let token = try await store.addToken(name: name, role: .admin)
    logger.notice("no credential existed: created the admin API token \(name); its sign-in link was printed once")
    configuration.announce("""
        FlowForest first start: created the admin API token '\(name)'. Open this link to sign in (shown only now):

            \(configuration.baseURL)/?token=\(token)

        The same token works as 'Authorization: Bearer \(token)'. Add users with `flowforest user add NAME --role admin`,
        then revoke it with `flowforest token remove \(name)`.
        """)
    return token
}

/// Per-second rates between successive stats events. The first event's
/// rate counts from when the tracker was made (the server's start, with
/// nothing counted), so traffic that arrives before the first event shows.
final class RateTracker: Sendable {
    private let last = Mutex<(packets: UInt64, bytes: UInt64, at: ContinuousClock.Instant)>((0, 0, ContinuousClock.now))

    func rates(packets: UInt64, bytes: UInt64) -> (Double, Double) {
        last.withLock { l in
            let now = ContinuousClock.now
            defer { l = (packets, bytes, now) }
            let previous = l
            let seconds = Double((now - previous.at).components.attoseconds) / 1e18 + Double((now - previous.at).components.seconds)
            guard seconds > 0 else { return (0, 0) }
            return (Double(packets &- previous.packets) / seconds, Double(bytes &- previous.bytes) / seconds)
        }
    }
}

import Synchronization

/// Process start time in seconds since the epoch, from /proc/self/stat (the
/// kernel's own record, in ticks since boot) and the time since boot
/// (CLOCK_BOOTTIME, not /proc/uptime, which the systemd unit's
/// `ProcSubset=pid` hides), else now.
func processStartTime() -> Double {
    var boottime = timespec()
    if let stat = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8),
       let close = stat.lastIndex(of: ")"),
       clock_gettime(CLOCK_BOOTTIME, &boottime) == 0 {
        let uptime = Double(boottime.tv_sec) + Double(boottime.tv_nsec) / 1e9
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // Field 22 (starttime, in clock ticks since boot) is index 19 after the command name.
        if fields.count > 19, let ticks = Double(fields[19]) {
            let hz = Double(sysconf(Int32(_SC_CLK_TCK)))
            let boot = Date().timeIntervalSince1970 - uptime
            return (boot + ticks / hz).rounded()
        }
    }
    return Date().timeIntervalSince1970.rounded()
}
