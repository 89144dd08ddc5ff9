import FlowForestLab
import Foundation

/// One capture file read by each tool in turn, each run timed by the kernel
/// and its counts checked against what the file holds.
struct OfflineBench: Sendable {
    enum Tool: String, Codable, Sendable, CaseIterable {
        case flowforest
        /// `flowforest analyze --model`: the same with scoring.
        case flowforestModel = "flowforest+model"
        case nfpcapd
    }

    let capture: URL
    let totals: OfflineBenchCapture.Totals
    let daemon: String
    let model: String?
    /// Scratch space for the tools' output, emptied after each run.
    let dir: URL

    struct Result: Codable, Sendable {
        var tool: Tool
        var round: Int
        var seconds: Double
        var cpuSeconds: Double
        var userSeconds: Double
        var systemSeconds: Double
        var maxRssMib: Double
        var packetsPerSecond: Double
        var packetsCounted: Int
        var bytesCounted: Int
        var flowsCounted: Int
        /// Packets and bytes equal those written (FlowForest: flows too).
        var exact: Bool

        func line() -> String {
            let name = tool.rawValue.padding(toLength: 17, withPad: " ", startingAt: 0)
            return "round \(round)  \(name)" + String(format: "%11.0f packets/s  %7.2f s  %7.2f CPU s  %6.0f MiB", packetsPerSecond, seconds, cpuSeconds, maxRssMib)
                + "  counted \(packetsCounted) packets, \(bytesCounted) bytes, \(flowsCounted) flows" + (exact ? "" : "  COUNTS DIFFER")
        }
    }

    func measure(_ tool: Tool, round: Int) throws -> Result {
        let work = dir.appendingPathComponent("\(tool.rawValue)-\(round)")
        try? FileManager.default.removeItem(at: work)
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: work) }
        let out = work.appendingPathComponent("stdout"), err = work.appendingPathComponent("stderr")
        let flows = work.appendingPathComponent("flows")
        let arguments: [String]
        switch tool {
        case .flowforest: arguments = [daemon, "analyze", capture.path, "--format", "json", "--log-level", "warning"]
        case .flowforestModel: arguments = [daemon, "analyze", capture.path, "--format", "json", "--log-level", "warning", "--model", model ?? ""]
        case .nfpcapd:
            try FileManager.default.createDirectory(at: flows, withIntermediateDirectories: true)
            arguments = ["nfpcapd", "-r", capture.path, "-w", flows.path]
        }
        let run = try ChildRun.run(arguments, stdout: out, stderr: err)
        guard run.status == 0 else {
            throw BenchError("\(arguments.joined(separator: " ")) exited \(run.status): \(String(((try? String(contentsOf: err, encoding: .utf8)) ?? "").suffix(800)))")
        }
        let counted = tool == .nfpcapd ? try Self.nfdumpCounts(flows) : try Self.flowforestCounts(out)
        // Flows only for FlowForest: nfpcapd writes one record per direction, and one per DNS packet.
        let exact = counted.packets == totals.packets && counted.bytes == totals.bytes
            && (tool == .nfpcapd || counted.flows == totals.flows)
        return Result(tool: tool, round: round, seconds: run.wallSeconds, cpuSeconds: run.cpuSeconds, userSeconds: run.userSeconds,
                      systemSeconds: run.systemSeconds, maxRssMib: Double(run.maxRSSKiB) / 1024,
                      packetsPerSecond: Double(totals.packets) / run.wallSeconds,
                      packetsCounted: counted.packets, bytesCounted: counted.bytes, flowsCounted: counted.flows, exact: exact)
    }

    /// Packets, bytes and flows in `flowforest analyze --format json`'s
    /// report: its flows summed, and checked against its own statistics.
    static func flowforestCounts(_ report: URL) throws -> (packets: Int, bytes: Int, flows: Int) {
        struct Direction: Decodable { var packets: Int; var bytes: Int }
        struct Flow: Decodable { var fwd: Direction; var rev: Direction }
        struct Stats: Decodable { var packets_seen: Int; var packets_accounted: Int; var bytes_accounted: Int }
        struct Report: Decodable { var flows: [Flow]; var stats: Stats }
        let r = try JSONDecoder().decode(Report.self, from: Data(contentsOf: report))
        let packets = r.flows.reduce(0) { $0 + $1.fwd.packets + $1.rev.packets }
        let bytes = r.flows.reduce(0) { $0 + $1.fwd.bytes + $1.rev.bytes }
        // The flows listed must hold what the statistics say was accounted.
        guard packets == r.stats.packets_accounted, bytes == r.stats.bytes_accounted else {
            throw BenchError("flowforest analyze: its flows hold \(packets) packets and \(bytes) bytes, its statistics \(r.stats.packets_accounted) and \(r.stats.bytes_accounted)")
        }
        return (packets, bytes, r.flows.count)
    }

    /// Packets, bytes and flows in nfpcapd's files, from their statistics (`nfdump -I`).
    static func nfdumpCounts(_ flows: URL) throws -> (packets: Int, bytes: Int, flows: Int) {
        let text = try Command.check(["nfdump", "-R", flows.path, "-I"], timeout: 300).stdout
        guard let packets = Bench.number(after: "Packets:", in: text), let bytes = Bench.number(after: "Bytes:", in: text),
              let count = Bench.number(after: "Flows:", in: text) else {
            throw BenchError("nfdump -I without packet, byte and flow counts: \(text)")
        }
        return (Int(packets), Int(bytes), Int(count))
    }

    /// Medians per tool over the rounds and FlowForest's rate against nfpcapd's.
    struct Summary: Codable {
        struct Median: Codable {
            var tool: Tool
            var packetsPerSecond: Double
            var seconds: Double
            var cpuSeconds: Double
            /// This tool's packets/s over nfpcapd's.
            var ratio: Double
            /// nfpcapd's CPU seconds over this tool's: the same comparison by
            /// CPU time, which other load on the machine moves far less.
            var cpuRatio: Double
        }

        var date: String
        var cpus: Int
        var daemon: String
        var capture: OfflineBenchCapture.Totals
        var results: [Result]
        var medians: [Median]
        /// FlowForest's (no model) median packets/s over nfpcapd's.
        var ratio: Double
        var countsExact: Bool

        init(capture: OfflineBenchCapture.Totals, daemon: String, results: [Result]) {
            date = ISO8601DateFormatter().string(from: Date())
            cpus = ProcessInfo.processInfo.activeProcessorCount
            self.daemon = daemon
            self.capture = capture
            self.results = results
            func median(_ values: [Double]) -> Double { values.isEmpty ? 0 : values.sorted()[values.count / 2] }
            let tools = Tool.allCases.filter { t in results.contains { $0.tool == t } }
            let nfpcapd = median(results.filter { $0.tool == .nfpcapd }.map(\.packetsPerSecond))
            let nfpcapdCPU = median(results.filter { $0.tool == .nfpcapd }.map(\.cpuSeconds))
            medians = tools.map { t in
                let rows = results.filter { $0.tool == t }
                let pps = median(rows.map(\.packetsPerSecond)), cpu = median(rows.map(\.cpuSeconds))
                return Median(tool: t, packetsPerSecond: pps, seconds: median(rows.map(\.seconds)), cpuSeconds: cpu,
                              ratio: nfpcapd > 0 ? pps / nfpcapd : 0, cpuRatio: cpu > 0 ? nfpcapdCPU / cpu : 0)
            }
            ratio = medians.first { $0.tool == .flowforest }?.ratio ?? 0
            countsExact = results.allSatisfy(\.exact)
        }

        var table: String {
            var lines = ["medians        packets/s    seconds     CPU s   ratio to nfpcapd (packets/s)   by CPU s"]
            for m in medians {
                lines.append(m.tool.rawValue.padding(toLength: 17, withPad: " ", startingAt: 0)
                             + String(format: "%11.0f  %9.2f  %8.2f   %5.2f                         %5.2f", m.packetsPerSecond, m.seconds, m.cpuSeconds, m.ratio, m.cpuRatio))
            }
            return lines.joined(separator: "\n")
        }
    }
}
