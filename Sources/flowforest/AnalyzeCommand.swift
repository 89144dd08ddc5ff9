import ArgumentParser
import CoreMetrics
import FlowForestCore
import FlowForestDetection
import FlowForestPipeline
import Foundation
import Logging
import PcapCapture
import Synchronization

struct AnalyzeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "analyze",
        abstract: "Run the pipeline over a capture file: flows, and anomalies with a model.",
        discussion: """
            Reads a pcap or pcapng file through the same parser, flow table and detector as
            live capture (time is packet time). Prints each flow once, with its final totals;
            with --model, also the anomalies the model finds (train one with `flowforest train`).

            Examples:
              flowforest analyze traffic.pcap
              flowforest analyze traffic.pcapng --format json > report.json
              flowforest analyze traffic.pcap --format csv > flows.csv
              flowforest analyze suspect.pcap --model model.json --anomalies
              flowforest analyze traffic.pcap --export-ipfix udp://127.0.0.1:4739   # replay into a collector
            """
    )

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case table, json, csv
    }

    @Argument(help: "The capture file (pcap or pcapng).")
    var file: String

    @Option(help: "Output format: table, json or csv.")
    var format: Format = .table

    @Option(help: "A model from `flowforest train`: score the file's flows and hosts with it.")
    var model: String?

    @Flag(help: "Table and CSV: list anomalies instead of flows.")
    var anomalies = false

    @Option(name: .customLong("sensor-name"), help: "Sensor name recorded in anomalies (default: this host's name).")
    var sensorName: String = ProcessInfo.processInfo.hostName

    @OptionGroup var flowOptions: FlowOptions
    @OptionGroup var incidentOptions: IncidentOptions
    @OptionGroup var exportOptions: ExportOptions
    @OptionGroup var logOptions: LogOptions

    func run() async throws {
        let logger = logOptions.makeLogger()
        if anomalies && model == nil { throw failure("--anomalies needs --model: train one with `flowforest train FILE -o model.json`") }
        var detector: Detector?
        if let model {
            do {
                var detection = DetectorConfiguration()
                detection.trackerLimits = flowOptions.trackerLimits
                // The file is judged by the model given, start to end: the same file and model give the same anomalies.
                detection.retrainIntervalSeconds = 0
                detector = Detector(configuration: detection, model: try DetectionModel.load(from: model), sensor: sensorName, logger: logger)
            } catch {
                throw failure("\(error)")
            }
        }
        let exporters = try exportOptions.makeExporters(metricsFactory: NOOPMetricsHandler.instance, logger: logger)
        defer { for exporter in exporters { exporter.finish() } }
        let source = PcapFileSource(path: file, configuration: flowOptions.configuration, logger: logger)
        // The same pipeline as `run`, without a store: anomalies come back
        // from each batch, incidents through a sink that keeps their latest state.
        let incidents = IncidentCollector()
        let pipeline = Pipeline(sensor: sensorName, detector: detector, sink: incidents, maxFlows: flowOptions.maxFlows,
                                longestSilenceNs: flowOptions.configuration.longestSilenceNs, incidents: incidentOptions.configuration,
                                logger: logger, metricsFactory: NOOPMetricsHandler.instance)
        var found: [Anomaly] = []
        // Listed flows are spooled to a file as they end; a table or CSV of
        // anomalies only counts them (JSON always carries the flows).
        let spool = anomalies && format != .json ? nil : try makeSpool()
        var flowCount = 0
        var text = FlowJSONText(encoder: Self.encoder)
        var statistics = CaptureStatistics()
        let progress = ProgressLine(label: "analyze: \(file)")
        do {
            for try await batch in source.batches() {
                for record in batch.records where record.state == .ended {
                    flowCount += 1
                    try spool?.append(record, text: render(record, &text))
                }
                // Offline, export waits for the collector rather than drop.
                for exporter in exporters { exporter.export(batch.records, wait: true) }
                found += await pipeline.process(batch, mode: source.mode)
                statistics = batch.statistics
                progress.update(fraction: batch.progress, detail: "\(statistics.packetsSeen) packets, \(statistics.flowsStarted) flows")
            }
        } catch {
            progress.clear()
            throw failure("\(error)")
        }
        progress.clear()
        // The file's end ends every incident still recurring.
        await pipeline.closeIncidents()
        try write(flows: spool, count: flowCount, anomalies: found, incidents: incidents.incidents, statistics: statistics)
    }

    /// Keys sorted, as the JSON output has always been written.
    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }()

    private func makeSpool() throws -> FlowSpool {
        do { return try FlowSpool() } catch { throw failure("\(error)") }
    }

    /// One flow as the chosen format lists it.
    private func render(_ flow: FlowRecord, _ text: inout FlowJSONText) throws -> [UInt8] {
        switch format {
        case .table: return Array((FlowText.tableRow(flow) + "\n").utf8)
        case .csv: return Array((FlowText.csvRow(flow) + "\n").utf8)
        case .json:
            try text.appendFlow(flow)
            return text.take()
        }
    }

    private func write(flows spool: FlowSpool?, count: Int, anomalies found: [Anomaly], incidents: [Incident],
                       statistics s: CaptureStatistics) throws {
        var out = StandardOutput()
        defer { out.flush() }
        switch format {
        case .table where anomalies:
            out.write(AnomalyText.tableHeader + "\n")
            for anomaly in found { out.write(AnomalyText.tableRow(anomaly) + "\n") }
            out.write("\(found.count) anomalies in \(count) flows, \(incidents.count) incidents\n")
        case .csv where anomalies:
            out.write(AnomalyText.csvHeader + "\n")
            for anomaly in found { out.write(AnomalyText.csvRow(anomaly) + "\n") }
        case .table:
            out.write(FlowText.tableHeader + "\n")
            try spool?.forEachInOrder { out.write($0) }
            // Every packet the file held is in a flow or in one of these counts.
            out.write("\(count) flows, \(s.packetsAccounted) of \(s.packetsSeen) packets in flows (\(s.notIP) not IP, "
                      + "\(s.malformed) malformed, \(s.tableFull) over --max-flows)\n")
            if model != nil { out.write("\(found.count) anomalies in \(incidents.count) incidents (list them with --anomalies)\n") }
        case .csv:
            out.write(FlowText.csvHeader + "\n")
            try spool?.forEachInOrder { out.write($0) }
        case .json:
            // One object, keys sorted as JSONEncoder sorts them; the flows,
            // most of it, written directly (FlowJSONText).
            var text = FlowJSONText(encoder: Self.encoder)
            text.appendRaw(#"{"anomalies":"#)
            try text.appendEncoded(found)
            text.appendRaw(#","flows":["#)
            out.write(text.take())
            var first = true
            try spool?.forEachInOrder {
                if !first { out.write(CollectionOfOne(UInt8(ascii: ","))) }
                first = false
                out.write($0)
            }
            text.appendRaw(#"],"incidents":"#)
            try text.appendEncoded(incidents)
            text.appendRaw(#","stats":"#)
            try text.appendEncoded(s)
            text.appendRaw("}\n")
            out.write(text.take())
        }
    }
}

/// The analyze pipeline's sink: keeps each incident's latest state, in the
/// order incidents opened; flows and anomalies come back from the pipeline itself.
final class IncidentCollector: PipelineSink {
    private let state = Mutex<(order: [String], latest: [String: Incident])>(([], [:]))

    func enqueue(flows: [FlowRecord], sensor: String) {}
    func enqueue(anomalies: [Anomaly]) -> Bool { true }
    func saveModel(sensor: String, description: String, body: String) async throws {}

    func enqueue(incidents: [IncidentUpdate]) -> Bool {
        state.withLock { s in
            for update in incidents {
                if s.latest[update.incident.uid] == nil { s.order.append(update.incident.uid) }
                s.latest[update.incident.uid] = update.incident
            }
        }
        return true
    }

    /// Every incident seen, in the order they opened.
    var incidents: [Incident] { state.withLock { s in s.order.compactMap { s.latest[$0] } } }
}
