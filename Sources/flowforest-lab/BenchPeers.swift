import EBPFCapture
import FlowForestLab
import Foundation

/// The tools FlowForest is compared with, run on the same traffic in the
/// same lab as the capture modes, each read from its own counters or output.
enum PeerTool {
    case tcpdump, softflowd, pmacctd(largeBuffers: Bool), nfpcapd

    init?(_ mode: BenchCommand.Mode) {
        switch mode {
        case .tcpdump: self = .tcpdump
        case .softflowd: self = .softflowd
        case .pmacctd: self = .pmacctd(largeBuffers: false)
        case .pmacctdLarge: self = .pmacctd(largeBuffers: true)
        case .nfpcapd: self = .nfpcapd
        default: return nil
        }
    }

    /// The command line, in `dir` (the run's scratch directory).
    func arguments(interface: String, dir: URL) throws -> [String] {
        switch self {
        case .tcpdump:
            return ["tcpdump", "-i", interface, "-n", "-w", "/dev/null"]
        case .softflowd:
            // NetFlow v9 to a port nobody listens on: the export is not measured, the tracking is.
            return ["softflowd", "-d", "-i", interface, "-n", "127.0.0.1:9995", "-v", "9",
                    "-c", dir.appendingPathComponent("ctl").path, "-p", dir.appendingPathComponent("pid").path]
        case .pmacctd(let large):
            // Flows by 5-tuple, kept in the memory plugin and read with `pmacct -s`.
            var config = """
                daemonize: false
                pcap_interface: \(interface)
                aggregate: src_host, dst_host, src_port, dst_port, proto
                plugins: memory
                imt_path: \(dir.appendingPathComponent("pipe").path)
                imt_buckets: 65537
                imt_mem_pools_number: 0

                """
            if large {
                // 64 MiB kernel socket buffer, 256 MiB queue to the plugin in 2.5 MiB chunks.
                config += "pmacctd_pipe_size: 67108864\nplugin_pipe_size: 268435456\nplugin_buffer_size: 2684354\n"
            }
            let file = dir.appendingPathComponent("pmacctd.conf")
            try config.write(to: file, atomically: true, encoding: .utf8)
            return ["pmacctd", "-f", file.path]
        case .nfpcapd:
            let flows = dir.appendingPathComponent("flows")
            try FileManager.default.createDirectory(at: flows, withIntermediateDirectories: true)
            return ["nfpcapd", "-i", interface, "-w", flows.path, "-t", "3600"]
        }
    }

    /// True once the tool is capturing.
    func ready(dir: URL, log: URL) -> Bool {
        switch self {
        case .tcpdump: return (try? String(contentsOf: log, encoding: .utf8))?.contains("listening on") ?? false
        case .softflowd: return FileManager.default.fileExists(atPath: dir.appendingPathComponent("ctl").path)
        case .pmacctd: return FileManager.default.fileExists(atPath: dir.appendingPathComponent("pipe").path)
        case .nfpcapd:
            return !((try? FileManager.default.contentsOfDirectory(atPath: dir.appendingPathComponent("flows").path)) ?? []).isEmpty
        }
    }

    /// The signal that ends it cleanly (pmacct blocks SIGTERM).
    var stopSignal: Int32 {
        switch self {
        case .tcpdump, .pmacctd: SIGINT
        case .softflowd, .nfpcapd: SIGTERM
        }
    }

    /// The note shown in the table.
    var note: String {
        switch self {
        case .tcpdump: "tcpdump -w /dev/null: packets captured; losses: dropped by kernel"
        case .softflowd: "softflowd -v 9: packets processed; losses: libpcap and interface drops"
        case .pmacctd(let large): large
            ? "pmacctd memory plugin, 64 MiB socket + 256 MiB plugin queue: packets in its table; no loss counter"
            : "pmacctd memory plugin, default buffers: packets in its table; no loss counter"
        case .nfpcapd: "nfpcapd: packets in the flows it wrote (nfdump -I); no loss counter"
        }
    }
}

extension Bench {
    /// The floor: a tc program that returns at once, attached as tc mode
    /// attaches. Its rate ratio is the hook's own cost on this machine.
    func measureFloor(lab: NetworkLab, namespace: String, interface: String, traffic: Traffic) async throws -> Row {
        let floor = try TCHookFloor(interfaces: [interface], namespace: namespace, objectPath: objectPath, logger: logger)
        defer { floor.detach() }
        let rx0 = try lab.counter("rx_packets", interface: interface, in: namespace)
        let tx0 = try lab.counter("tx_packets", interface: interface, in: namespace)
        let sent = try await onOwnThread { try traffic.send() }
        let seen = try lab.counter("rx_packets", interface: interface, in: namespace) - rx0
            + (try lab.counter("tx_packets", interface: interface, in: namespace) - tx0)
        return Row(
            frameBytes: 0, flows: 0, generators: 0, mode: BenchCommand.Mode.tcEmpty.rawValue, packetsSent: sent.packets,
            generatorPps: sent.packetsPerSecond, baselinePps: 0, rateRatio: 0, packetsSeen: seen, packetsAccounted: 0,
            accountedShare: 0, countedLosses: 0,
            note: "empty tc program (\(floor.hooks[interface] ?? "tc")): the hook's own cost, counts nothing")
    }

    /// Runs a peer tool on the sensor end of the veth, sends the scenario's
    /// traffic, waits until the tool is idle again, and reads what it
    /// accounted. CPU is the whole process tree's (pmacctd's plugin runs
    /// in a child process).
    func measurePeer(_ tool: PeerTool, mode: BenchCommand.Mode, lab: NetworkLab, namespace: String, interface: String,
                     traffic: Traffic) async throws -> Row {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("flowforest-bench-\(mode.rawValue)-\(getpid())")
        try? FileManager.default.removeItem(at: dir)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let log = dir.appendingPathComponent("log")
        let process = try lab.spawn(in: namespace, try tool.arguments(interface: interface, dir: dir), stdout: log, stderr: log)
        var stopped = false
        defer { if !stopped { _ = lab.stop(process, signal: tool.stopSignal, timeout: 15) } }
        try await Wait.until("\(mode.rawValue) to start capturing on \(interface)", timeout: 30,
                             detail: { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }) {
            guard process.isRunning else { throw BenchError("\(mode.rawValue) exited: \((try? String(contentsOf: log, encoding: .utf8)) ?? "")") }
            return tool.ready(dir: dir, log: log)
        }
        let pid = process.processIdentifier
        let rx0 = try lab.counter("rx_packets", interface: interface, in: namespace)
        let tx0 = try lab.counter("tx_packets", interface: interface, in: namespace)
        let cpu0 = Self.treeCPU(pid)
        let sent = try await onOwnThread { try traffic.send() }
        let cpuSent = Self.cpuSeconds(from: cpu0, to: Self.treeCPU(pid), newThreads: true)
        try await Self.waitIdle(pid, what: mode.rawValue)
        let seen = try lab.counter("rx_packets", interface: interface, in: namespace) - rx0
            + (try lab.counter("tx_packets", interface: interface, in: namespace) - tx0)
        let (accounted, losses) = try read(tool, lab: lab, namespace: namespace, dir: dir, log: log, process: process) { stopped = true }
        return Row(
            frameBytes: 0, flows: 0, generators: 0, mode: mode.rawValue, packetsSent: sent.packets,
            generatorPps: sent.packetsPerSecond, baselinePps: 0, rateRatio: 0, packetsSeen: seen, packetsAccounted: accounted,
            accountedShare: seen > 0 ? Double(accounted) / Double(seen) : 0, countedLosses: losses,
            sensorCpuMsPerMpkt: sent.packets > 0 ? cpuSent * 1000 / (Double(sent.packets) / 1e6) : nil,
            sensorCpuPercent: sent.seconds > 0 ? cpuSent / sent.seconds * 100 : nil, note: tool.note)
    }

    /// What the tool accounted and the losses it counted, from its own
    /// statistics; stops it where its figures come at exit.
    private func read(_ tool: PeerTool, lab: NetworkLab, namespace: String, dir: URL, log: URL, process: Process,
                      stopped: () -> Void) throws -> (UInt64, UInt64) {
        switch tool {
        case .tcpdump:
            _ = lab.stop(process, signal: tool.stopSignal, timeout: 15)
            stopped()
            let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
            return (Self.number(before: "packets captured", in: text) ?? 0, Self.number(before: "packets dropped by kernel", in: text) ?? 0)
        case .softflowd:
            let text = try lab.check(in: namespace, ["softflowctl", "-c", dir.appendingPathComponent("ctl").path, "statistics"]).stdout
            let processed = Self.number(after: "Packets processed:", in: text)
            guard let processed else { throw BenchError("softflowctl statistics without a packet count: \(text)") }
            let drops = (Self.number(after: "Packets dropped by libpcap:", in: text) ?? 0)
                + (Self.number(after: "Packets dropped by interface:", in: text) ?? 0)
            return (processed, drops)
        case .pmacctd:
            let text = try lab.check(in: namespace, ["pmacct", "-p", dir.appendingPathComponent("pipe").path, "-s", "-O", "json"],
                                     timeout: 120).stdout
            return (Self.sumJSON("packets", in: text), 0)
        case .nfpcapd:
            _ = lab.stop(process, signal: tool.stopSignal, timeout: 30)
            stopped()
            let text = try lab.check(in: namespace, ["nfdump", "-R", dir.appendingPathComponent("flows").path, "-I"]).stdout
            guard let packets = Self.number(after: "Packets:", in: text) else { throw BenchError("nfdump -I without a packet count: \(text)") }
            return (packets, 0)
        }
    }

    /// On-CPU nanoseconds of every thread of `pid` and its descendants,
    /// keyed "pid/tid".
    static func treeCPU(_ pid: Int32) -> [String: UInt64] {
        var children: [Int32: [Int32]] = [:]
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let p = Int32(entry), let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { continue }
            // Fields after the command: state, ppid, ...
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            if fields.count > 1, let ppid = Int32(fields[1]) { children[ppid, default: []].append(p) }
        }
        var out: [String: UInt64] = [:]
        var queue = [pid]
        while let p = queue.popLast() {
            for (tid, ns) in threadCPU("\(p)") { out["\(p)/\(tid)"] = ns }
            queue += children[p] ?? []
        }
        return out
    }

    /// Waits until the process tree's CPU time stops growing for half a
    /// second: the tool has worked through what the kernel queued for it.
    static func waitIdle(_ pid: Int32, what: String) async throws {
        var last = treeCPU(pid).values.reduce(0, +)
        var quietSince = Date()
        try await Wait.until("\(what) to work through its queued packets (CPU idle for 0.5 s)", timeout: 60, every: 0.1) {
            let now = treeCPU(pid).values.reduce(0, +)
            // Under 1 ms of CPU in a 100 ms step counts as idle.
            if now &- last > 1_000_000 { quietSince = Date() }
            last = now
            return Date().timeIntervalSince(quietSince) >= 0.5
        }
    }

    /// The integer just before `label` ("123 packets captured").
    static func number(before label: String, in text: String) -> UInt64? {
        guard let range = text.range(of: label) else { return nil }
        return text[..<range.lowerBound].split(whereSeparator: { $0 == " " || $0 == "\n" }).last.flatMap { UInt64($0) }
    }

    /// The integer just after `label` ("Packets processed: 123").
    static func number(after label: String, in text: String) -> UInt64? {
        guard let range = text.range(of: label) else { return nil }
        let digits = text[range.upperBound...].drop(while: { $0 == " " || $0 == "\t" }).prefix(while: \.isNumber)
        return UInt64(digits)
    }

    /// Sum of one numeric field over JSON objects, one per line.
    static func sumJSON(_ field: String, in text: String) -> UInt64 {
        text.split(separator: "\n").reduce(0) { total, line in
            guard let data = line.data(using: .utf8),
                  let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                  let value = object[field] as? NSNumber else { return total }
            return total + value.uint64Value
        }
    }
}
