import FlowForestLab
import Foundation

/// One replay of the benchmark's datagrams into one collector, measured.
struct CollectorBench: Sendable {
    enum Collector: String, Codable, Sendable { case flowforest, nfcapd }

    let datagrams: CollectorBenchDatagrams
    let core: Int
    let daemon: String
    let model: String?

    struct Result: Codable, Sendable {
        var collector: Collector
        var records: Int
        /// Seconds from the first datagram until the collector had every record.
        var seconds: Double
        var recordsPerSecond: Double
        /// FlowForest: seconds until every flow had ended (and gone to detection).
        var secondsToFlowsEnded: Double?
        /// The collector's CPU time per record, microseconds: for FlowForest
        /// until every flow had ended, which its counter shows as the
        /// pipeline takes the batch, before detection scores it.
        var cpuMicrosecondsPerRecord: Double
        /// Records the collector reports holding afterwards (FlowForest's counter, nfdump's count).
        var recordsCounted: Int
        var socketDrops: Int
        /// FlowForest: seconds until every flow had been scored and stored,
        /// and the CPU time per record until then (detection and the store included).
        var secondsToStored: Double? = nil
        var cpuMicrosecondsPerRecordStored: Double? = nil

        func line(round: Int) -> String {
            var ended = secondsToFlowsEnded.map { String(format: ", every flow ended after %.2f s", $0) } ?? ""
            if let secondsToStored, let cpuMicrosecondsPerRecordStored {
                ended += String(format: ", scored and stored after %.2f s: %.2f µs CPU/record in all", secondsToStored, cpuMicrosecondsPerRecordStored)
            }
            let name = collector.rawValue.padding(toLength: 10, withPad: " ", startingAt: 0)
            return "round \(round)  \(name) " + String(format: "%9.0f records/s  %.2f µs CPU/record", recordsPerSecond, cpuMicrosecondsPerRecord)
                + "  \(recordsCounted) of \(records) records counted, \(socketDrops) socket drops\(ended)"
        }
    }

    func measure(_ collector: Collector) throws -> Result {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("flowforest-bench-collector-\(getpid())-\(collector.rawValue)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let port = try UDPSocketTable.freePort()
        switch collector {
        case .flowforest: return try measureFlowForest(port: port, dir: dir)
        case .nfcapd: return try measureNfcapd(port: port, dir: dir)
        }
    }

    private func start(_ arguments: [String], log: URL) throws -> Process {
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/taskset")
        p.arguments = ["-c", "\(core)"] + arguments
        let handle = try FileHandle(forWritingTo: log)
        (p.standardOutput, p.standardError) = (handle, handle)
        try Command.startUnblocked(p)
        ChildProcesses.shared.started(p.processIdentifier)
        return p
    }

    private func stop(_ p: Process, signal: Int32) {
        if p.isRunning { kill(p.processIdentifier, signal) }
        p.waitUntilExit()
        ChildProcesses.shared.reaped(p.processIdentifier)
    }

    private func measureFlowForest(port: UInt16, dir: URL) throws -> Result {
        let api = try UDPSocketTable.freeTCPPort()
        let log = dir.appendingPathComponent("run.log")
        let p = try start([daemon, "run", "--no-capture", "--collect", "udp://127.0.0.1:\(port)", "--print-flows", "none",
                           "--open-metrics", "--listen", "127.0.0.1:\(api)", "--database", dir.appendingPathComponent("bench.db").path,
                           "--sensor-name", "bench"] + (model.map { ["--model", $0] } ?? []), log: log)
        defer { stop(p, signal: SIGINT) }
        func metrics() throws -> String { try Command.check(["curl", "-sf", "--max-time", "5", "http://127.0.0.1:\(api)/metrics"]).stdout }
        try Wait.blockingUntil("flowforest run to collect on port \(port)", timeout: 30, every: 0.1,
                               detail: { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }) {
            guard p.isRunning else { throw BenchError("flowforest run exited: \((try? String(contentsOf: log, encoding: .utf8)) ?? "")") }
            return try UDPSocketTable.socket(port: port) != nil && ((try? metrics())?.contains("flowforest_build_info") ?? false)
        }
        let before = try metrics(), drops0 = try UDPSocketTable.socket(port: port)?.drops ?? 0
        let cpu0 = Self.cpuSeconds(p.processIdentifier)
        let started = Date()
        try UDPSocketTable.send(datagrams.datagrams, port: port)
        var recordsAt: Date?, endedAt: Date?, text = ""
        func delta(_ name: String) -> Int { Int(Bench.sum(text, name) &- Bench.sum(before, name)) }
        try Wait.blockingUntil("flowforest run to collect every record and end every flow", timeout: 120, every: 0.01,
                               detail: { "\(delta("flowforest_collector_records_total")) of \(datagrams.records) records, \(delta("flowforest_flows_ended_total")) of \(datagrams.flows) flows ended" }) {
            text = try metrics()
            if recordsAt == nil, delta("flowforest_collector_records_total") >= datagrams.records { recordsAt = Date() }
            if endedAt == nil, delta("flowforest_flows_ended_total") >= datagrams.flows { endedAt = Date() }
            return recordsAt != nil && endedAt != nil
        }
        let cpu = Self.cpuSeconds(p.processIdentifier) - cpu0
        let drops = (try UDPSocketTable.socket(port: port)?.drops ?? 0) - drops0
        let seconds = recordsAt!.timeIntervalSince(started)
        // The batch is scored after its flows count as ended, and stored after that:
        // the figure above leaves both out when the whole set fits in one poll.
        try Wait.blockingUntil("flowforest run to score and store every flow", timeout: 300, every: 0.1,
                               detail: { "\(Self.flowRowsWritten(text) - Self.flowRowsWritten(before)) of \(datagrams.flows) flows stored" }) {
            text = try metrics()
            return Self.flowRowsWritten(text) - Self.flowRowsWritten(before) >= UInt64(datagrams.flows)
                && Bench.sum(text, "flowforest_store_pending_rows") == 0
        }
        let cpuStored = Self.cpuSeconds(p.processIdentifier) - cpu0
        return Result(collector: .flowforest, records: datagrams.records, seconds: seconds, recordsPerSecond: Double(datagrams.records) / seconds,
                      secondsToFlowsEnded: endedAt!.timeIntervalSince(started), cpuMicrosecondsPerRecord: cpu * 1e6 / Double(datagrams.records),
                      recordsCounted: delta("flowforest_collector_records_total"), socketDrops: drops,
                      secondsToStored: Date().timeIntervalSince(started), cpuMicrosecondsPerRecordStored: cpuStored * 1e6 / Double(datagrams.records))
    }

    /// Flow rows the store has written, from a `/metrics` exposition.
    static func flowRowsWritten(_ exposition: String) -> UInt64 {
        let series = #"flowforest_store_rows_written_total{table="flows"} "#
        return exposition.split(separator: "\n").first { $0.hasPrefix(series) }
            .flatMap { $0.split(separator: " ").last.flatMap { Double($0) } }.map { UInt64($0) } ?? 0
    }

    private func measureNfcapd(port: UInt16, dir: URL) throws -> Result {
        let files = dir.appendingPathComponent("nfcapd")
        try FileManager.default.createDirectory(at: files, withIntermediateDirectories: true)
        let log = dir.appendingPathComponent("nfcapd.log")
        let p = try start(["/usr/bin/nfcapd", "-b", "127.0.0.1", "-p", "\(port)", "-w", files.path, "-B", "8388608"], log: log)
        var stopped = false
        defer { if !stopped { stop(p, signal: SIGTERM) } }
        try Wait.blockingUntil("nfcapd to listen on port \(port)", timeout: 30, every: 0.05,
                               detail: { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }) {
            guard p.isRunning else { throw BenchError("nfcapd exited: \((try? String(contentsOf: log, encoding: .utf8)) ?? "")") }
            return try UDPSocketTable.socket(port: port) != nil
        }
        let drops0 = try UDPSocketTable.socket(port: port)?.drops ?? 0
        let cpu0 = Self.cpuSeconds(p.processIdentifier)
        let started = Date()
        try UDPSocketTable.send(datagrams.datagrams, port: port)
        // nfcapd decodes each datagram as it reads it: an empty queue means it has every record.
        try Wait.blockingUntil("nfcapd to read every datagram", timeout: 120, every: 0.001) {
            try UDPSocketTable.socket(port: port)?.receiveQueue == 0
        }
        let seconds = Date().timeIntervalSince(started)
        let cpu = Self.cpuSeconds(p.processIdentifier) - cpu0
        let drops = (try UDPSocketTable.socket(port: port)?.drops ?? 0) - drops0
        stop(p, signal: SIGTERM)
        stopped = true
        let counted = try Command.check(["nfdump", "-R", files.path, "-q", "-N", "-o", "fmt:%ipkt"], timeout: 300).stdout
            .split(separator: "\n").count
        return Result(collector: .nfcapd, records: datagrams.records, seconds: seconds, recordsPerSecond: Double(datagrams.records) / seconds,
                      secondsToFlowsEnded: nil, cpuMicrosecondsPerRecord: cpu * 1e6 / Double(datagrams.records),
                      recordsCounted: counted, socketDrops: drops)
    }

    /// User plus system CPU seconds of a process and its threads.
    static func cpuSeconds(_ pid: Int32) -> Double {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return 0 }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // After the command: state is field 3, utime 14 and stime 15 (1-based, man 5 proc).
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// Medians per collector over the rounds, and their ratio.
    struct Summary: Codable {
        var results: [Result]
        var model: Bool
        var flowforestRecordsPerSecond: Double
        var nfcapdRecordsPerSecond: Double
        var ratio: Double

        init(results: [Result], model: Bool) {
            self.results = results
            self.model = model
            func median(_ c: Collector) -> Double {
                let v = results.filter { $0.collector == c }.map(\.recordsPerSecond).sorted()
                return v.isEmpty ? 0 : v[v.count / 2]
            }
            flowforestRecordsPerSecond = median(.flowforest)
            nfcapdRecordsPerSecond = median(.nfcapd)
            ratio = nfcapdRecordsPerSecond > 0 ? flowforestRecordsPerSecond / nfcapdRecordsPerSecond : 0
        }

        var text: String {
            String(format: "median: flowforest %.0f records/s (detection ", flowforestRecordsPerSecond) + (model ? "scoring with a model" : "learning")
                + String(format: "), nfcapd %.0f records/s, ratio %.2f", nfcapdRecordsPerSecond, ratio)
        }
    }
}
