import ArgumentParser
import FlowForestCore
import Foundation
import Logging
import PcapCapture

struct AnalyzeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "analyze",
        abstract: "Run the pipeline over a capture file and print its flows.",
        discussion: """
            Reads a pcap or pcapng file through the same parser and flow table as live
            capture (time is packet time) and prints each flow once, with its final totals.

            Examples:
              flowforest analyze traffic.pcap
              flowforest analyze traffic.pcapng --format json > flows.json
              flowforest analyze traffic.pcap --format csv > flows.csv
            """
    )

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case table, json, csv
    }

    @Argument(help: "The capture file (pcap or pcapng).")
    var file: String

    @Option(help: "Output format: table, json or csv.")
    var format: Format = .table

    @OptionGroup var flowOptions: FlowOptions
    @OptionGroup var logOptions: LogOptions

    func run() async throws {
        let logger = logOptions.makeLogger()
        let source = PcapFileSource(path: file, configuration: flowOptions.configuration, logger: logger)
        var flows: [FlowRecord] = []
        var statistics = CaptureStatistics()
        let progress = ProgressLine(label: "analyze: \(file)")
        do {
            for try await batch in source.batches() {
                for record in batch.records where record.state == .ended { flows.append(record) }
                statistics = batch.statistics
                progress.update(fraction: batch.progress, detail: "\(statistics.packetsSeen) packets, \(statistics.flowsStarted) flows")
            }
        } catch {
            progress.clear()
            throw failure("\(error)")
        }
        progress.clear()
        flows.sort { ($0.firstSeenNs, $0.id) < ($1.firstSeenNs, $1.id) }
        try write(flows: flows, statistics: statistics)
    }

    private func write(flows: [FlowRecord], statistics: CaptureStatistics) throws {
        var out = StandardOutput()
        switch format {
        case .table:
            print(FlowText.tableHeader, to: &out)
            for flow in flows { print(FlowText.tableRow(flow), to: &out) }
            print("\(flows.count) flows, \(statistics.packetsAccounted) of \(statistics.packetsSeen) packets in flows (\(statistics.notIP) not IP, \(statistics.malformed) malformed)", to: &out)
        case .csv:
            print(FlowText.csvHeader, to: &out)
            for flow in flows { print(FlowText.csvRow(flow), to: &out) }
        case .json:
            struct Report: Encodable {
                var flows: [FlowJSON]
                var anomalies: [Anomaly]
                var stats: CaptureStatistics
            }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            let data = try encoder.encode(Report(flows: flows.map { $0.json() }, anomalies: [], stats: statistics))
            FileHandle.standardOutput.write(data)
            print("", to: &out)
        }
    }
}
