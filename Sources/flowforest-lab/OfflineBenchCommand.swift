import ArgumentParser
import FlowForestLab
import Foundation

struct OfflineBenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-offline",
        abstract: "`flowforest analyze` against nfdump's nfpcapd on the same capture file, in one run.",
        discussion: """
            Writes a synthetic pcap file (Ethernet/IPv4 in 198.18.0.0/15: TCP downloads and uploads
            with handshake, data and FIN both ways, DNS-like queries and UDP streams, over 40 s of
            packet time), then reads it, round after round, with `flowforest analyze FILE --format
            json` (the flowforest beside this executable; flows only: analyze scores only with
            --model, which adds a third tool) and with `nfpcapd -r FILE -w DIR`:

              packets/s     packets in the file / the tool's wall time, start to exit
              CPU s         user + system time of the tool (all its threads, from wait4)
              ratio         a tool's median packets/s / nfpcapd's
              by CPU s      nfpcapd's median CPU seconds / the tool's (wall time follows the
                            machine's other load, CPU time far less)

            Afterwards each run's counts are checked: FlowForest's flows must hold every packet and
            byte written and be as many as the flows written; nfdump -I of nfpcapd's files must count
            every packet and byte (its flow count differs by design: one record per direction, and
            one per packet for DNS). A difference fails the command after the table.

            Example:
              flowforest-lab bench-offline --json offline.json
            """
    )

    @Option(help: "Packets in the capture file.")
    var packets: Int = 2_000_000

    @Option(help: "Flows in the capture file (at least 8 packets each on average).")
    var flows: Int = 50_000

    @Option(help: "Directory for the capture file, kept afterwards (default: a temporary one, removed).")
    var out: String?

    @Option(help: "Rounds; each runs every tool once, and the medians are reported.")
    var rounds: Int = 3

    @Option(help: "A model from `flowforest train`: also time analyze scoring with it.")
    var model: String?

    @Option(help: "Write the results as JSON to this file.")
    var json: String?

    func validate() throws {
        guard (10...2_000_000).contains(flows) else { throw ValidationError("--flows must be between 10 and 2000000") }
        guard packets >= flows * OfflineBenchCapture.minimumPacketsPerFlow, packets <= 50_000_000 else {
            throw ValidationError("--packets must be at least 8 per flow (\(flows * 8)) and at most 50000000")
        }
        guard (1...20).contains(rounds) else { throw ValidationError("--rounds must be between 1 and 20") }
    }

    func run() async throws {
        guard Self.onPath("nfpcapd"), Self.onPath("nfdump") else { throw failure("nfpcapd and nfdump (Debian package nfdump) are not installed: run `make deps`") }
        let daemon = try Daemon.located()
        if let model, !FileManager.default.fileExists(atPath: model) { throw failure("--model \(model): no such file") }
        let dir = URL(fileURLWithPath: out ?? FileManager.default.temporaryDirectory.appendingPathComponent("flowforest-bench-offline-\(getpid())").path)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let capture = dir.appendingPathComponent("offline-bench.pcap")
        defer {
            if out == nil { try? FileManager.default.removeItem(at: dir) }
        }
        // An interrupted bench leaves no tool running and no work directory
        // (with --out, the capture file stays).
        let keep = out != nil
        let interruption = InterruptTeardown("bench-offline") {
            ChildProcesses.shared.terminateAll()
            if keep {
                Self.removeWorkDirectories(in: dir)
            } else {
                try? FileManager.default.removeItem(at: dir)
            }
        }
        defer { interruption.cancel() }
        let totals = try await write(capture)
        let bench = OfflineBench(capture: capture, totals: totals, daemon: daemon, model: model.map { URL(fileURLWithPath: $0).path }, dir: dir)
        let tools: [OfflineBench.Tool] = model == nil ? [.flowforest, .nfpcapd] : [.flowforest, .flowforestModel, .nfpcapd]
        var results: [OfflineBench.Result] = []
        for round in 1...rounds {
            for tool in tools {
                let r = try await onOwnThread { try bench.measure(tool, round: round) }
                print(r.line())
                results.append(r)
            }
        }
        let summary = OfflineBench.Summary(capture: totals, daemon: daemon, results: results)
        print(summary.table)
        if let json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            encoder.keyEncodingStrategy = .convertToSnakeCase
            try encoder.encode(summary).write(to: URL(fileURLWithPath: json))
            print("results written to \(json)")
        }
        guard summary.countsExact else {
            throw failure("counts differ from the file's \(totals.packets) packets, \(totals.bytes) bytes, \(totals.flows) flows (see the rounds above)")
        }
        print("counts exact: every run counted the file's \(totals.packets) packets and \(totals.bytes) bytes (FlowForest also its \(totals.flows) flows)")
    }

    /// Writes the capture file, with a progress line while it does.
    private func write(_ capture: URL) async throws -> OfflineBenchCapture.Totals {
        let (packets, flows) = (packets, flows)
        let started = Date()
        let totals = try await onOwnThread {
            let progress = ProgressLine(label: "writing \(capture.path)", total: packets)
            defer { progress.clear() }
            return try OfflineBenchCapture(packets: packets, flows: flows).write(to: capture) { progress.update($0) }
        }
        print("\(capture.path): \(totals.packets) packets, \(totals.bytes) IP bytes, \(totals.flows) flows (\(totals.tcpFlows) TCP, \(totals.udpFlows) UDP) over "
              + String(format: "%.1f s of packet time, %.0f MiB; written in %.1f s", totals.spanSeconds, Double(totals.fileBytes) / 1_048_576,
                       Date().timeIntervalSince(started)))
        return totals
    }

    /// The tools' work directories in `dir` ("TOOL-ROUND", ``OfflineBench/measure(_:round:)``):
    /// nothing else of a directory the user named.
    private static func removeWorkDirectories(in dir: URL) {
        for tool in OfflineBench.Tool.allCases {
            for round in 1...20 { try? FileManager.default.removeItem(at: dir.appendingPathComponent("\(tool.rawValue)-\(round)")) }
        }
    }

    private static func onPath(_ tool: String) -> Bool {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin"
        return (path.split(separator: ":") + ["/usr/bin", "/usr/sbin"]).contains { FileManager.default.isExecutableFile(atPath: "\($0)/\(tool)") }
    }
}

/// A progress line on standard error for long work: rewritten in place on
/// a terminal, one line every few seconds otherwise (logs stay short).
final class ProgressLine: @unchecked Sendable {
    private let label: String
    private let total: Int
    private let start = Date()
    private var last = Date.distantPast
    private var printed = false
    private let isTerminal = isatty(STDERR_FILENO) == 1

    init(label: String, total: Int) {
        self.label = label
        self.total = total
    }

    func update(_ done: Int) {
        let now = Date()
        guard now.timeIntervalSince(start) > 1, now.timeIntervalSince(last) >= (isTerminal ? 0.2 : 5) else { return }
        last = now
        let line = "\(label): \(done * 100 / max(total, 1))% (\(done) of \(total) packets)"
        FileHandle.standardError.write(Data((isTerminal ? "\r\u{1B}[K" + line : line + "\n").utf8))
        printed = true
    }

    func clear() {
        if printed && isTerminal { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
    }
}
