import FlowForestLab
import Foundation

extension Bench {
    /// Runs `flowforest run --mode tc` (the daemon beside this executable) in the sensor
    /// namespace, sends the scenario's traffic, and takes the whole
    /// process's CPU time over it: capture, detector, store and HTTP server
    /// together, as an operator's `top` would show it.
    func measureDaemon(lab: NetworkLab, namespace: String, interface: String, traffic: Traffic) async throws -> Row {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("flowforest-bench-daemon-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let (daemon, pid) = try await startDaemon(lab: lab, namespace: namespace, interface: interface, dir: dir)
        defer { _ = lab.stop(daemon, signal: SIGTERM, timeout: 15) }
        let scrape: @Sendable () throws -> String = { try lab.check(in: namespace, ["curl", "-sf", "http://127.0.0.1:8080/metrics"]).stdout }
        // Packet series appear with the first packet; the build info is there from the start.
        try await Wait.until("flowforest run to serve /metrics", timeout: 30) {
            (try? scrape())?.contains("flowforest_build_info") ?? false
        }
        let before = try scrape()
        let rx0 = try lab.counter("rx_packets", interface: interface, in: namespace)
        let tx0 = try lab.counter("tx_packets", interface: interface, in: namespace)
        func seen() throws -> UInt64 {
            try lab.counter("rx_packets", interface: interface, in: namespace) - rx0
                + (try lab.counter("tx_packets", interface: interface, in: namespace) - tx0)
        }
        var load = DaemonLoad()
        load.probes = probes
        load.probesAloneCpuPercent = try await probesAlone(lab: lab, namespace: namespace, pid: pid, dir: dir, scrape: scrape)
        let cpu0 = Self.threadCPU("\(pid)")
        let probe = try HealthProbe(lab: lab, namespace: namespace, url: "http://127.0.0.1:8080/api/health", directory: dir,
                                    everyMs: probes.healthEveryMs)
        let start = Date()
        let scrapeEveryMs = probes.scrapeEveryMs
        let detection = Task {
            await firstAnomaly(after: Self.value(before, "flowforest_anomalies_total"), start: start, limit: 120, everyMs: scrapeEveryMs,
                               scrape: scrape)
        }
        defer { detection.cancel() }
        let sent: Trafgen.Result
        do { sent = try await onOwnThread { try traffic.send() } } catch { probe.finish(into: &load); throw error }
        let stopped = Date()
        let cpu = Self.cpuSeconds(from: cpu0, to: Self.threadCPU("\(pid)"), newThreads: true)
        let pollsAtStop = Self.value(try scrape(), "flowforest_drain_duration_seconds_count")
        probe.finish(into: &load)
        load.kernelMapsMiB = kernelMapBytes(pid).map { Double($0) / 1_048_576 }
        load.mappedKernelMiB = mappedKernelBytes(pid).map { Double($0) / 1_048_576 }
        let after = try await settle(before: before, stopped: stopped, pollsAtStop: pollsAtStop, load: &load, scrape: scrape, seen: seen)
        if load.anomalies > 0 { load.firstAnomalySeconds = await detection.value }
        func delta(_ name: String) -> UInt64 { Self.sum(after.text, name) &- Self.sum(before, name) }
        let accounted = delta("flowforest_packets_total") + delta("flowforest_overflow_packets_total")
        // Mean milliseconds of a duration histogram's observations between the two scrapes.
        func meanMs(_ histogram: String) -> Double? {
            let count = Self.value(after.text, histogram + "_count") - Self.value(before, histogram + "_count")
            let seconds = Self.value(after.text, histogram + "_sum") - Self.value(before, histogram + "_sum")
            return count > 0 ? seconds / count * 1000 : nil
        }
        load.detectionMsPerPoll = meanMs("flowforest_score_duration_seconds")
        return Row(
            frameBytes: 0, flows: 0, generators: 0, mode: BenchCommand.Mode.daemon.rawValue, packetsSent: sent.packets,
            generatorPps: sent.packetsPerSecond, baselinePps: 0, rateRatio: 0, packetsSeen: after.seen, packetsAccounted: accounted,
            accountedShare: after.seen > 0 ? Double(accounted) / Double(after.seen) : 0,
            countedLosses: delta("flowforest_map_full_packets_total") + delta("flowforest_capture_drops_total"),
            sensorCpuMsPerMpkt: sent.packets > 0 ? cpu * 1000 / (Double(sent.packets) / 1e6) : nil,
            sensorCpuPercent: sent.seconds > 0 ? cpu / sent.seconds * 100 : nil,
            peakRssMiB: Self.peakResident(pid).map { Double($0) / 1_048_576 },
            drainMsPerPoll: meanMs("flowforest_drain_duration_seconds"),
            daemonLoad: load,
            note: "whole flowforest run (tc); \(load.summary)")
    }

    /// The daemon's CPU, % of a core, under the bench's own probes alone
    /// (`/api/health` on a new connection and `/metrics`, at the intervals
    /// of ``probes``) for a few seconds before any traffic: what of the
    /// row's CPU answers the bench rather than counts flows, measured, not assumed.
    private func probesAlone(lab: NetworkLab, namespace: String, pid: Int32, dir: URL,
                             scrape: @escaping @Sendable () throws -> String) async throws -> Double {
        let quiet = dir.appendingPathComponent("probes-alone")
        try FileManager.default.createDirectory(at: quiet, withIntermediateDirectories: true)
        let cpu0 = Self.threadCPU("\(pid)")
        let start = Date()
        let probe = try HealthProbe(lab: lab, namespace: namespace, url: "http://127.0.0.1:8080/api/health", directory: quiet,
                                    everyMs: probes.healthEveryMs)
        let scrapeEveryMs = probes.scrapeEveryMs
        let scraping = Task { _ = await firstAnomaly(after: .infinity, start: Date(), limit: 4, everyMs: scrapeEveryMs, scrape: scrape) }
        await scraping.value
        var ignored = DaemonLoad()
        probe.finish(into: &ignored)
        let seconds = Date().timeIntervalSince(start)
        return Self.cpuSeconds(from: cpu0, to: Self.threadCPU("\(pid)"), newThreads: true) / seconds * 100
    }

    /// Starts `flowforest run --mode tc` in the sensor namespace and waits
    /// until it captures; returns the spawned process and the daemon's own pid.
    private func startDaemon(lab: NetworkLab, namespace: String, interface: String, dir: URL) async throws -> (Process, Int32) {
        let exe = try Daemon.located()
        let log = dir.appendingPathComponent("run.log")
        // The namespace has its own loopback, so the default port is free there.
        let daemon = try lab.spawn(in: namespace, [
            exe, "run", "--mode", "tc", "--interface", interface, "--print-flows", "none",
            "--listen", "127.0.0.1:8080", "--database", dir.appendingPathComponent("bench.db").path,
            // curl reads /metrics and /api/health without a token; nothing else is used.
            "--open-metrics",
        ] + (objectPath.map { ["--bpf-object", $0] } ?? []) + (mapSize.map { ["--map-size", String($0)] } ?? []), stderr: log)
        do {
            try await Wait.until("flowforest run to start capturing", timeout: 30,
                                 detail: { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }) {
                guard daemon.isRunning else { throw BenchError("flowforest run exited: \((try? String(contentsOf: log, encoding: .utf8)) ?? "")") }
                return (try? String(contentsOf: log, encoding: .utf8))?.contains("capture started") ?? false
            }
            // The spawned process is the parent that waits for the daemon; CPU and memory are the daemon's.
            guard let pid = Command.command(under: daemon) else { throw BenchError("flowforest run: no process under its waiting parent") }
            return (daemon, pid)
        } catch {
            _ = lab.stop(daemon, signal: SIGTERM, timeout: 15)
            throw error
        }
    }

    /// After the traffic: the share accounted two poll intervals (2 s) after
    /// it stopped and the share once two of the daemon's polls had ended
    /// after it (`pollsAtStop` is the poll count read at the stop, so the
    /// second poll after it began after the stop), each from the first scrape
    /// that qualifies; then waits until the daemon's counters explain every
    /// packet the interface counted. Returns the last scrape and the packets seen.
    private func settle(before: String, stopped: Date, pollsAtStop: Double, load: inout DaemonLoad, scrape: () throws -> String,
                        seen: () throws -> UInt64) async throws -> (text: String, seen: UInt64) {
        func accounted(_ text: String, of total: UInt64) -> Double? {
            guard total > 0 else { return nil }
            let n = ["flowforest_packets_total", "flowforest_overflow_packets_total"].map { Self.sum(text, $0) &- Self.sum(before, $0) }
            return Double(n.reduce(0, +)) / Double(total)
        }
        var atTwoSeconds: Double??, atTwoPolls: Double??
        // A daemon that stops polling leaves the figures empty (and the wait
        // below says what it did not explain) rather than end the run.
        try? await Wait.until("two polls of the daemon after the traffic", timeout: 30, every: 0.1) {
            // Whether this scrape counts as 2 s after is decided by when it began.
            let late = Date().timeIntervalSince(stopped) >= 2
            let text = try scrape(), total = try seen()
            if atTwoSeconds == nil, late { atTwoSeconds = .some(accounted(text, of: total)) }
            if atTwoPolls == nil, Self.value(text, "flowforest_drain_duration_seconds_count") >= pollsAtStop + 2 {
                atTwoPolls = .some(accounted(text, of: total))
            }
            return atTwoSeconds != nil && atTwoPolls != nil
        }
        load.accountedAfterTwoIntervals = atTwoSeconds ?? nil
        load.accountedAfterTwoPolls = atTwoPolls ?? nil
        var after = "", total: UInt64 = 0
        func delta(_ name: String) -> UInt64 { Self.sum(after, name) &- Self.sum(before, name) }
        let explained = ["flowforest_packets_total", "flowforest_overflow_packets_total", "flowforest_packets_not_flows_total",
                         "flowforest_map_full_packets_total", "flowforest_capture_drops_total"]
        try await Wait.until("the daemon to count every packet the interface counted", timeout: 30,
                             detail: { "\(explained.map(delta).reduce(0, +)) of \(total)" }) {
            after = try scrape()
            total = try seen()
            return explained.map(delta).reduce(0, +) >= total
        }
        load.explainedAfterSeconds = Date().timeIntervalSince(stopped)
        load.anomalies = Int(Self.value(after, "flowforest_anomalies_total") - Self.value(before, "flowforest_anomalies_total"))
        return (after, total)
    }

    /// Sum of every series of a metric in a Prometheus text exposition, as a real number.
    static func value(_ exposition: String, _ name: String) -> Double {
        exposition.split(separator: "\n").reduce(0) { total, line in
            guard line.hasPrefix(name + "{") || line.hasPrefix(name + " "),
                  let value = line.split(separator: " ").last.flatMap({ Double($0) }) else { return total }
            return total + value
        }
    }

    /// A process's peak resident memory (VmHWM of /proc/PID/status), bytes.
    static func peakResident(_ pid: Int32) -> UInt64? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
              let kib = line.split(separator: " ").dropFirst().first.flatMap({ UInt64($0) }) else { return nil }
        return kib * 1024
    }

    /// Sum of every series of a counter in a Prometheus text exposition.
    static func sum(_ exposition: String, _ name: String) -> UInt64 {
        exposition.split(separator: "\n").reduce(0) { total, line in
            guard line.hasPrefix(name + "{") || line.hasPrefix(name + " "),
                  let value = line.split(separator: " ").last.flatMap({ Double($0) }) else { return total }
            return total + UInt64(value)
        }
    }
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
