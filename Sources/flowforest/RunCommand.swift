import EBPFCapture
import ArgumentParser
import FlowForestCollector
import FlowForestCore
import FlowForestDetection
import FlowForestIPFIX
import FlowForestServer
import FlowForestStore
import Foundation
import Logging
import PcapCapture
import ServiceLifecycle

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the sensor: capture live traffic into flows.",
        discussion: """
            Captures on the given interfaces (default: the interface of the default route)
            and reports each flow as it ends. SIGINT or SIGTERM stops capture cleanly:
            open flows are flushed and every hook is detached.

            Examples:
              sudo flowforest run
              sudo flowforest run --mode pcap --interface eth0 --print-flows json
              flowforest run --no-capture --collect udp://0.0.0.0:2055
            """
    )

    enum Mode: String, ExpressibleByArgument, CaseIterable {
        case auto, tc, xdp, socket, pcap
    }

    enum FlowPrinting: String, ExpressibleByArgument, CaseIterable {
        case log, json, none
    }

    @Option(help: "Capture mode: auto (tc, then socket, then pcap), tc, xdp, socket or pcap.")
    var mode: Mode = .auto

    @Option(name: .customLong("interface"), help: "Interface to capture on; repeat for several (default: the default-route interface).")
    var interfaces: [String] = []

    @Option(name: .customLong("poll-interval"), help: "Seconds between reads of the capture state.")
    var pollInterval: Double = 1

    @Flag(name: .customLong("no-promiscuous"), help: "pcap mode: do not put the interface into promiscuous mode.")
    var noPromiscuous = false

    @Option(name: .customLong("map-size"), help: "eBPF modes: flows the kernel map holds; past 7/8 of it only answered TCP connections start flows and other new flows are folded into per-victim overflow aggregates.")
    var mapSize: Int = 131_072

    @Option(name: .customLong("bpf-object"), help: "eBPF modes: a compiled flowforest.bpf.o to load instead of the object built into this binary.")
    var bpfObject: String?

    @Option(name: .customLong("tc-hook"), help: "tc mode: auto (tcx on Linux 6.6+, else clsact), tcx or clsact.")
    var tcHook: EBPFTCHook = .auto

    @Option(name: .customLong("namespace"), help: "eBPF modes: the network namespace (from `ip netns list`) whose interfaces --interface names.")
    var namespace: String?

    @Option(name: .customLong("print-flows"), help: "How ended flows are reported: log (stderr), json (one JSON object per line on stdout) or none.")
    var printFlows: FlowPrinting = .log

    @Option(name: .customLong("listen"), help: "HOST:PORT of the API, dashboard and /metrics (env FLOWFOREST_LISTEN; default 127.0.0.1:8080). A database without credentials gets an admin token at first start, logged once as a sign-in link: add one first to serve beyond loopback.")
    var listen: String?

    @OptionGroup var databaseOption: DatabaseOption

    @Option(name: .customLong("sensor-name"), help: "Name stored with every row, for several sensors in one database (env FLOWFOREST_SENSOR_NAME; default: the host name).")
    var sensorName: String?

    @Option(name: .customLong("model"), help: "Detection model from `flowforest train` (env FLOWFOREST_MODEL); without one the detector learns from live traffic first.")
    var model: String?

    @Option(name: .customLong("learning-seconds"), help: "Without a model: seconds of live traffic the detector learns from before it alerts (env FLOWFOREST_LEARNING_SECONDS; default 600).")
    var learningSeconds: Double?

    @Option(name: .customLong("ingest-max-skew"), help: "Seconds ahead of this server's clock a POST /api/traffic timestamp may be (env FLOWFOREST_INGEST_MAX_SKEW; default 300).")
    var ingestMaxSkew: Double?

    @Option(name: .customLong("ingest-max-age"), help: "Seconds behind this server's clock a POST /api/traffic timestamp may be (env FLOWFOREST_INGEST_MAX_AGE; default 86400).")
    var ingestMaxAge: Double?

    @Flag(name: .customLong("open-metrics"), help: "Serve /metrics and /api/health without credentials (env FLOWFOREST_OPEN_METRICS=1).")
    var openMetrics = false

    @Flag(name: .customLong("no-auth"), help: "Serve without authentication (every request is an admin): development on a loopback --listen only; refused otherwise (env FLOWFOREST_NO_AUTH=1).")
    var noAuth = false

    @Option(name: .customLong("allowed-host"), help: "A host name browsers may use for this server (the Host header), besides localhost, IP addresses and the --listen host; repeat for several (env FLOWFOREST_ALLOWED_HOSTS, comma-separated). Other names get 421, which stops DNS rebinding.")
    var allowedHosts: [String] = []

    @Flag(name: .customLong("secure-cookies"), help: "Mark the dashboard session cookie Secure (when served behind HTTPS).")
    var secureCookies = false

    @Flag(name: .customLong("no-capture"), help: "Capture nothing: serve stored data, remote ingest (POST /api/traffic) and --collect only.")
    var noCapture = false


    @OptionGroup var flowOptions: FlowOptions
    @OptionGroup var incidentOptions: IncidentOptions
    @OptionGroup var alertOptions: AlertOptions
    @OptionGroup var suppressOptions: SuppressOptions
    @OptionGroup var exportOptions: ExportOptions
    @OptionGroup var collectOptions: CollectOptions
    @OptionGroup var logOptions: LogOptions

    func validate() throws {
        guard pollInterval >= 0.05, pollInterval <= 60 else { throw ValidationError("--poll-interval must be between 0.05 and 60 seconds") }
        guard tcHook == .auto || mode == .tc || mode == .auto else {
            throw ValidationError("--tc-hook applies to --mode tc (and auto) only, not \(mode.rawValue)")
        }
    }

    func run() async throws {
        let logger = logOptions.makeLogger()
        let file = try databaseOption.configFile()
        let ignored = file.keys.filter { !Self.fileSettings.contains($0) }.sorted()
        if let config = databaseOption.config, !ignored.isEmpty {
            logger.warning("--config \(config): \(ignored.joined(separator: ", ")) ignored: flowforest run reads only \(Self.fileSettings.sorted().joined(separator: ", ")) from a file; other settings are flags")
        }
        let server = try serverConfiguration(file: file)
        // Capture first: a wrong interface or a missing privilege is reported
        // before anything (the database included) is created.
        let capture = noCapture ? nil : try openCapture(logger: logger)
        // The collector's sockets too: a port in use is reported before the database is touched.
        let metrics = FlowForestMetrics()
        let collector = try collectOptions.makeSource(flowConfiguration: flowOptions.configuration, pollInterval: pollInterval,
                                                      metricsFactory: metrics.factory, logger: logger)
        // And the IPFIX collectors' addresses: a host that does not resolve is reported before the database is touched.
        let exporters = try exportOptions.makeExporters(metricsFactory: metrics.factory, logger: logger)
        let detector = try await makeDetector(server: server, file: file, logger: logger)
        let sources: [any FlowSource] = [capture, collector].compactMap { $0 }
        guard !sources.isEmpty else {
            // No flows to export without a source.
            for exporter in exporters { exporter.finish() }
            try await serve(server, source: nil, detector: detector, metrics: metrics, logger: logger)
            return
        }
        let source = sources.count == 1 ? sources[0] : MergedFlowSource(sources: sources)
        // Announced under the mode the pipeline counts the batches by (`tc+collect`
        // for both), so /api/status and flowforest_capture_info name one entry.
        var watched: [String] = []
        if capture != nil { watched += interfaces.isEmpty ? [DefaultRoute.interface()].compactMap { $0 } : interfaces }
        if let collector { watched += collector.endpoints.map(\.description) }
        metrics.recordCapture(mode: source.mode, interfaces: watched)
        let reporter = FlowReporter(printing: printFlows, logger: logger)
        try await serve(server, source: ReportingSource(base: source, reporter: reporter, exporters: exporters),
                        detector: detector, metrics: metrics, logger: logger)
    }

    /// A setting from its flag, else the environment, else the --config file.
    private func setting(_ flag: String?, _ name: String, file: [String: String]) -> String? {
        flag ?? ProcessInfo.processInfo.environment[name] ?? file[name]
    }

    private func isOn(_ flag: Bool, _ name: String, file: [String: String]) -> Bool {
        flag || ["1", "true", "yes"].contains(setting(nil, name, file: file)?.lowercased() ?? "")
    }

    /// The service's settings, every value checked; nothing is created yet.
    private func serverConfiguration(file: [String: String]) throws -> ServerConfiguration {
        var server = ServerConfiguration()
        let listenText = setting(listen, "FLOWFOREST_LISTEN", file: file) ?? "127.0.0.1:8080"
        guard let (host, port) = ServerConfiguration.parseListen(listenText) else {
            throw failure("--listen: expected HOST:PORT (e.g. 127.0.0.1:8080 or [::1]:8080), got \(listenText)")
        }
        server.host = host
        server.port = port
        server.database = databaseOption.location(config: file)
        server.sensorName = setting(sensorName, "FLOWFOREST_SENSOR_NAME", file: file) ?? ProcessInfo.processInfo.hostName
        server.openMetrics = isOn(openMetrics, "FLOWFOREST_OPEN_METRICS", file: file)
        server.secureCookies = secureCookies
        server.noAuth = isOn(noAuth, "FLOWFOREST_NO_AUTH", file: file)
        server.allowedHosts = allowedHosts + (setting(nil, "FLOWFOREST_ALLOWED_HOSTS", file: file) ?? "").split(separator: ",")
            .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        if server.noAuth && !server.isLoopback {
            throw failure(ServerStartError.noAuthNotLoopback(host: server.host, port: server.port).description)
        }
        if let d = try seconds(ingestMaxSkew, "FLOWFOREST_INGEST_MAX_SKEW", "--ingest-max-skew", file: file) { server.ingestMaxSkew = d }
        if let d = try seconds(ingestMaxAge, "FLOWFOREST_INGEST_MAX_AGE", "--ingest-max-age", file: file) { server.ingestMaxAge = d }
        // Ingested flows follow the same timeouts and --max-flows as captured ones.
        server.ingestFlowTable = flowOptions.configuration
        server.incidents = incidentOptions.configuration
        server.alerts = try alertOptions.configuration()
        server.suppressions = try suppressOptions.rules(nowMs: Int64(Date().timeIntervalSince1970 * 1000))
        return server
    }

    private func seconds(_ flag: Double?, _ name: String, _ option: String, file: [String: String]) throws -> Duration? {
        guard let text = flag.map({ String($0) }) ?? setting(nil, name, file: file) else { return nil }
        // Up to ten years: enough for any replay, far from overflowing ns.
        guard let value = Double(text), value.isFinite, value >= 0, value <= 315_360_000 else {
            throw failure("\(option) must be between 0 and 315360000 seconds, got \(text)")
        }
        return .milliseconds(Int64(value * 1000))
    }

    /// The detector, with the model given by --model, else the one this
    /// sensor last stored, else none (it learns). Opens the database.
    private func makeDetector(server: ServerConfiguration, file: [String: String], logger: Logger) async throws -> Detector {
        var detection = DetectorConfiguration()
        detection.trackerLimits = flowOptions.trackerLimits
        if let text = learningSeconds.map({ String($0) }) ?? setting(nil, "FLOWFOREST_LEARNING_SECONDS", file: file) {
            guard let seconds = Double(text), seconds >= 1, seconds <= 86_400 * 7 else {
                throw failure("--learning-seconds must be between 1 and 604800, got \(text)")
            }
            detection.learningSeconds = seconds
        }
        var model: DetectionModel?
        if let path = setting(self.model, "FLOWFOREST_MODEL", file: file) {
            do { model = try DetectionModel.load(from: path) } catch { throw failure("--model \(path): \(error)") }
        }
        if case .sqlite(let path) = server.database {
            let dir = (path as NSString).deletingLastPathComponent
            if !dir.isEmpty { try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
        }
        if model == nil { model = await storedModel(server: server, logger: logger) }
        return Detector(configuration: detection, model: model, sensor: server.sensorName, logger: logger)
    }

    /// The model this sensor last trained or retrained, if the database has
    /// one this build can use.
    private func storedModel(server: ServerConfiguration, logger: Logger) async -> DetectionModel? {
        let sensor = server.sensorName
        let stored = try? await Store.withStore(server.database, logger: logger) { try await $0.latestModel(sensor: sensor)?.body }
        guard let body = stored ?? nil else { return nil }
        do {
            let model = try DetectionModel.decode(Data(body.utf8))
            logger.info("using the stored model", metadata: ["sensor": "\(sensor)"])
            return model
        } catch {
            // A model of an earlier build (other features) cannot score this build's vectors.
            logger.warning("the stored model does not fit this build; learning anew", metadata: ["sensor": "\(sensor)", "error": "\(error)"])
            return nil
        }
    }

    private func openCapture(logger: Logger) throws -> any FlowSource {
        let names = interfaces.isEmpty ? [DefaultRoute.interface()].compactMap { $0 } : interfaces
        guard !names.isEmpty else {
            throw failure("no --interface given and no default route to pick one from")
        }
        if namespace != nil && mode == .pcap {
            throw failure("--namespace works with the eBPF modes (tc, xdp, socket) only")
        }
        do {
            return try CaptureSelection.open(.init(
                mode: mode, interfaces: names, flowConfiguration: flowOptions.configuration, pollInterval: pollInterval,
                promiscuous: !noPromiscuous, mapEntries: mapSize, objectPath: bpfObject, namespace: namespace, tcHook: tcHook), logger: logger)
        } catch {
            throw failure("\(error)")
        }
    }

    /// Runs the service (capture consumer, detector, store writer, API) until SIGTERM or SIGINT.
    private func serve(_ server: ServerConfiguration, source: (any FlowSource)?, detector: Detector,
                       metrics: FlowForestMetrics, logger: Logger) async throws {
        do {
            let app = try await buildApplication(configuration: server, flowSource: source, logger: logger,
                                                 detector: detector, metrics: metrics)
            logger.info("serving", metadata: ["listen": "\(server.host):\(server.port)", "database": "\(server.database)",
                                              "sensor": "\(server.sensorName)"])
            let base = server.host.contains(":") ? "http://[\(server.host)]:\(server.port)" : "http://\(server.host):\(server.port)"
            logger.notice("dashboard at \(base)/ — metrics at \(base)/metrics — API at \(base)/api (see /openapi.yaml)")
            let group = ServiceGroup(configuration: .init(
                services: [.init(service: app)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
            try await group.run()
        } catch let error as ExitCode {
            throw error
        } catch {
            throw failure("\(error)")
        }
    }

    /// The variables a `--config` file may set (each also read from the environment).
    static let fileSettings: Set<String> = [
        "FLOWFOREST_LISTEN", "FLOWFOREST_DATABASE", "FLOWFOREST_SENSOR_NAME", "FLOWFOREST_MODEL", "FLOWFOREST_LEARNING_SECONDS",
        "FLOWFOREST_INGEST_MAX_SKEW", "FLOWFOREST_INGEST_MAX_AGE", "FLOWFOREST_OPEN_METRICS", "FLOWFOREST_NO_AUTH",
        "FLOWFOREST_ALLOWED_HOSTS",
    ]
}

/// Passes a capture source's batches on to the service, reports ended flows
/// as `--print-flows` asks and hands records to the IPFIX exporters.
struct ReportingSource: FlowSource {
    let base: any FlowSource
    let reporter: FlowReporter
    let exporters: [IPFIXExporter]
    var mode: String { base.mode }

    func batches() -> AsyncThrowingStream<FlowBatch, any Error> {
        let upstream = base.batches()
        let (reporter, exporters) = (self.reporter, self.exporters)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        // Holds no batch, like the capture's own stream: a batch is handed over
        // when the pipeline asks, so a slow pipeline holds capture back and
        // this stage adds one batch in flight, not two.
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: FlowBatch.self, bufferingPolicy: .bufferingOldest(0))
        do {
            let task = Task {
                do {
                    for try await batch in upstream {
                        reporter.report(batch, encoder: encoder)
                        // Live, a full export queue drops (and counts) rather than hold up capture.
                        for exporter in exporters { exporter.export(batch.records, wait: false) }
                        guard await continuation.yieldWhenRoom(batch) else { break }
                    }
                    // The final flush of flows open at shutdown goes out before the exporters stop.
                    for exporter in exporters { exporter.finish() }
                    continuation.finish()
                } catch {
                    for exporter in exporters { exporter.finish() }
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
        return stream
    }

    func stop() { base.stop() }
}

/// Prints ended flows as `--print-flows` asks.
struct FlowReporter: Sendable {
    let printing: RunCommand.FlowPrinting
    let logger: Logger

    func report(_ batch: FlowBatch, encoder: JSONEncoder) {
        // By index: the state is read in place, not from a copy of each record.
        guard printing != .none else { return }
        for i in batch.records.indices where batch.records[i].state == .ended {
            let record = batch.records[i]
            switch printing {
            case .none:
                break
            case .json:
                if var data = try? encoder.encode(record.json()) {
                    data.append(0x0A)
                    FileHandle.standardOutput.write(data)
                }
            case .log:
                logger.info("flow ended", metadata: [
                    "flow": "\(IPProtocol.name(record.ipProtocol)) \(record.sourceAddress):\(record.sourcePort) -> \(record.destinationAddress):\(record.destinationPort)",
                    "fwd": "\(record.forward.packets) pkts \(record.forward.bytes) B",
                    "rev": "\(record.reverse.packets) pkts \(record.reverse.bytes) B",
                    "reason": "\(record.endReason?.rawValue ?? "-")",
                ])
            }
        }
    }
}
