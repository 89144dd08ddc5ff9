import ArgumentParser
import CoreMetrics
import FlowForestCore
import FlowForestIPFIX
import Logging

/// IPFIX export options shared by `run` and `analyze`.
struct ExportOptions: ParsableArguments {
    @Option(name: .customLong("export-ipfix"), help: ArgumentHelp(
        "Export flows as IPFIX to a collector, udp://HOST:PORT or tcp://HOST:PORT (repeatable).", valueName: "url"))
    var collectors: [String] = []

    @Flag(name: .customLong("ipfix-biflow"), help: "One RFC 5103 biflow record per flow instead of a record per direction.")
    var biflow = false

    @Option(name: .customLong("observation-domain"), help: "IPFIX observation domain id.")
    var observationDomain: UInt32 = 1

    @Option(name: .customLong("ipfix-template-interval"), help: "Seconds between template resends over UDP.")
    var templateInterval: Double = 60

    func validate() throws {
        for text in collectors {
            do { _ = try ExportDestination(text) } catch { throw ValidationError("\(error)") }
        }
        guard templateInterval >= 1, templateInterval <= 3600 else {
            throw ValidationError("--ipfix-template-interval must be between 1 and 3600 seconds, got \(templateInterval)")
        }
    }

    /// One exporter per collector; resolving a collector that does not exist is an error here.
    func makeExporters(metricsFactory: any MetricsFactory, logger: Logger) throws -> [IPFIXExporter] {
        try collectors.map { text in
            do {
                return try IPFIXExporter(destination: ExportDestination(text), observationDomain: observationDomain, biflow: biflow,
                                         templateInterval: templateInterval, metricsFactory: metricsFactory, logger: logger)
            } catch {
                throw failure("\(error)")
            }
        }
    }
}
