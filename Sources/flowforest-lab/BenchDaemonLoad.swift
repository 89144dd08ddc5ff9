import FlowForestLab
import Foundation

/// What mode daemon shows of the service under the bench's traffic: the
/// HTTP API's latency while the data plane is saturated, how current the
/// accounting is right after the traffic, and what the detector reported.
struct DaemonLoad: Codable {
    /// `/api/health` requests answered 200 during the traffic, and their
    /// latency (curl's `time_total`), ms.
    var healthRequests = 0
    var healthFailures = 0
    var healthP99Ms: Double?
    var healthMaxMs: Double?
    /// Share of the packets the interface counted that were in flows or
    /// overflow aggregates two poll intervals (2 s) after the traffic stopped.
    var accountedAfterTwoIntervals: Double?
    /// The same share once two of the daemon's polls had ended after the
    /// traffic stopped (however long they took): the figure that does not
    /// depend on the machine's speed.
    var accountedAfterTwoPolls: Double?
    /// Seconds after the traffic stopped until every packet was explained
    /// (in a flow, an aggregate, or a counted loss).
    var explainedAfterSeconds: Double?
    /// Anomalies the daemon reported over the run, and seconds from the
    /// traffic's start until the first one showed in `/metrics`.
    var anomalies = 0
    var firstAnomalySeconds: Double?
    /// Kernel memory of the daemon's eBPF maps (flow map, aggregates, ring
    /// buffer, counters), MiB: preallocated, so it does not grow with flows,
    /// and not part of the resident memory.
    var kernelMapsMiB: Double?
    /// Of those, what the daemon maps (the flow slots it reads in place, the ring buffer), MiB:
    /// counted in its resident memory too (mappings only grow, so the
    /// figure after the traffic is the one at the peak).
    var mappedKernelMiB: Double?
    /// The daemon's CPU, % of a core, under the bench's probes alone with
    /// no traffic, measured just before it: part of the row's CPU answers
    /// those probes (by default a health request every 20 ms and a scrape
    /// every 200 ms, far more than any monitoring sends).
    var probesAloneCpuPercent: Double?
    /// Wall time the detector took per poll (`flowforest_score_duration_seconds`),
    /// ms: the pipeline thread's main share of the row's CPU, steadier
    /// from run to run than the whole process's CPU.
    var detectionMsPerPoll: Double?
    /// The probes' intervals in this row.
    var probes: Bench.Probes?

    var summary: String {
        func f(_ v: Double?, _ digits: Int) -> String { v.map { String(format: "%.\(digits)f", $0) } ?? "-" }
        return "health p99 \(f(healthP99Ms, 1)) ms (max \(f(healthMaxMs, 1)), \(healthFailures) failed of \(healthRequests)); "
            + "acct% 2 s after \(f(accountedAfterTwoIntervals.map { $0 * 100 }, 3)), 2 polls after \(f(accountedAfterTwoPolls.map { $0 * 100 }, 3)), all explained after \(f(explainedAfterSeconds, 1)) s; "
            + "detection \(f(detectionMsPerPoll, 1)) ms per poll; anomalies \(anomalies), first after \(f(firstAnomalySeconds, 1)) s; kernel maps \(f(kernelMapsMiB, 0)) MiB, "
            + "\(f(mappedKernelMiB, 0)) MiB of them mapped (in RSS); CPU under the probes alone \(f(probesAloneCpuPercent, 2)) % "
            + "(health every \(probes.map { String($0.healthEveryMs) } ?? "-") ms, scrape every \(probes.map { String($0.scrapeEveryMs) } ?? "-") ms)"
    }
}

/// Requests `/api/health` back to back (`everyMs` apart, 2 s timeout each) from
/// inside the sensor namespace while the traffic runs, as a monitoring probe
/// would: one new connection per request.
struct HealthProbe {
    let process: Process
    let lab: NetworkLab
    let output: URL
    let stopFile: URL

    init(lab: NetworkLab, namespace: String, url: String, directory: URL, everyMs: Int) throws {
        self.lab = lab
        output = directory.appendingPathComponent("health.txt")
        stopFile = directory.appendingPathComponent("health.stop")
        let loop = #"while [ ! -e "$0" ]; do curl -s -o /dev/null -m 2 -w '%{http_code} %{time_total}\n' "$1"; sleep "$2"; done"#
        let pause = String(format: "%.3f", Double(everyMs) / 1000)
        // Bounded whatever happens to the bench: the probe ends after 15 minutes.
        process = try lab.spawn(in: namespace, ["sh", "-c", loop, stopFile.path, url, pause], stdout: output, limit: 900)
    }

    /// Ends the loop after its current request and returns what it measured.
    func finish(into load: inout DaemonLoad) {
        FileManager.default.createFile(atPath: stopFile.path, contents: nil)
        lab.wait(process, timeout: 5)
        let lines = ((try? String(contentsOf: output, encoding: .utf8)) ?? "").split(separator: "\n")
        var latencies: [Double] = []
        for line in lines {
            let fields = line.split(separator: " ")
            guard fields.count == 2, let seconds = Double(fields[1]) else { continue }
            load.healthRequests += 1
            // A timeout or refused connection is code 000; its time is not an answer's latency.
            if fields[0] == "200" { latencies.append(seconds * 1000) } else { load.healthFailures += 1 }
        }
        latencies.sort()
        if !latencies.isEmpty {
            // Nearest rank.
            let rank = Int((0.99 * Double(latencies.count)).rounded(.up)) - 1
            load.healthP99Ms = latencies[min(max(rank, 0), latencies.count - 1)]
            load.healthMaxMs = latencies.last
        }
    }
}

/// Scrapes `/metrics` every `everyMs` until `flowforest_anomalies_total` grows
/// past `baseline`; returns the seconds from `start`, or nil after `limit` seconds.
func firstAnomaly(after baseline: Double, start: Date, limit: Double, everyMs: Int,
                  scrape: @escaping @Sendable () throws -> String) async -> Double? {
    while Date().timeIntervalSince(start) < limit && !Task.isCancelled {
        if let text = try? scrape(), Bench.value(text, "flowforest_anomalies_total") > baseline {
            return Date().timeIntervalSince(start)
        }
        try? await Task.sleep(for: .milliseconds(everyMs))
    }
    return nil
}

/// Resident memory of a process's mappings of eBPF maps (the flow slots it
/// reads in place, the ring buffer), bytes: the `Rss` of every `anon_inode:bpf-map` mapping
/// in `/proc/PID/smaps`.
func mappedKernelBytes(_ pid: Int32) -> UInt64? {
    // Read to the end: String(contentsOfFile:) stops after the first page of a /proc file.
    guard let handle = FileHandle(forReadingAtPath: "/proc/\(pid)/smaps") else { return nil }
    defer { try? handle.close() }
    let smaps = String(decoding: handle.readDataToEndOfFile(), as: UTF8.self)
    var total: UInt64 = 0, inMap = false
    for line in smaps.split(separator: "\n") {
        let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
        guard let first = fields.first else { continue }
        if first.contains("-") && !first.hasSuffix(":") {
            inMap = line.hasSuffix("bpf-map")
        } else if inMap && first == "Rss:", fields.count >= 2, let kib = UInt64(fields[1]) {
            total += kib * 1024
        }
    }
    return total
}

/// Kernel memory charged to a process's eBPF maps: the `memlock` of every
/// map descriptor it holds (`/proc/PID/fdinfo`), bytes.
func kernelMapBytes(_ pid: Int32) -> UInt64? {
    guard let fds = try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fdinfo") else { return nil }
    var total: UInt64 = 0
    for fd in fds {
        guard let info = try? String(contentsOfFile: "/proc/\(pid)/fdinfo/\(fd)", encoding: .utf8), info.contains("map_type:"),
              let line = info.split(separator: "\n").first(where: { $0.hasPrefix("memlock:") }),
              let bytes = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).last.flatMap({ UInt64($0) }) else { continue }
        total += bytes
    }
    return total
}
