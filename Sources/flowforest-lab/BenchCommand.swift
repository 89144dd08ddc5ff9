import ArgumentParser
import CoreMetrics
import EBPFCapture
import FlowForestCore
import FlowForestLab
import FlowForestPipeline
import Foundation
import Logging
import PcapCapture
import Synchronization

struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Compare the capture modes on a namespace lab, side by side in one run (root).",
        discussion: """
            Builds two network namespaces joined by a veth pair, drives UDP traffic with
            trafgen (netsniff-ng) at the highest rate it reaches, and measures each capture
            mode attached to the receiving end against the same generator with no sensor:

              rate ratio        generator packets/s with the sensor / without it
              accounted         packets in drained flows or overflow aggregates / packets
                                the interface saw
              BPF ns/pkt        program run time per packet (kernel BPF statistics)
              CPU ms/Mpkt       the sensor's CPU time (capture thread and batch consumer;
                                for mode daemon, the whole `flowforest run` process)
                                per million packets
              CPU %             the same over the traffic's duration

            Frames go to a MAC that is not the receiver's, so they are dropped after the
            hooks as on a mirror port. A veth never drops: a costly hook slows the
            generator instead, which is why cost shows as the rate ratio. The generator's
            own rate drifts by several per cent within minutes, so every measured run is
            bracketed by no-sensor runs and divided by their mean; with --rounds the modes
            run again in a rotated order and each row is the round with the median ratio. Mode daemon runs the
            flowforest executable beside this one. Mode tc-empty attaches a tc program that
            returns at once: the hook's own cost, the floor. Peers run on the same traffic
            and are read from their own counters: tcpdump (-w /dev/null), softflowd,
            pmacctd (default buffers, and pmacctd-large with large ones) and nfpcapd; their
            CPU is their whole process tree's.

            Example:
              sudo flowforest-lab bench --json bench.json
            """
    )

    /// `tc` attaches as `flowforest run` does (tcx where the kernel has
    /// it); `tc-clsact` forces the clsact filter, to compare the two hooks;
    /// `daemon` runs a whole `flowforest run --mode tc` process (detector
    /// and store included) and takes its CPU time.
    enum Mode: String, ExpressibleByArgument, CaseIterable, Codable {
        case tc, tcClsact = "tc-clsact", xdp, socket, pcap, daemon
        /// An empty tc program (returns at once): the hook's own cost, the floor.
        case tcEmpty = "tc-empty"
        /// Peers, each on the same traffic: tcpdump writing to /dev/null,
        /// softflowd, pmacctd with default and with large buffers, nfdump's nfpcapd.
        case tcpdump, softflowd, pmacctd, pmacctdLarge = "pmacctd-large", nfpcapd

        var attachMode: EBPFAttachMode? {
            switch self {
            case .tc, .tcClsact: .tc
            case .xdp: .xdp
            case .socket: .socket
            default: nil
            }
        }
    }

    @Option(help: "Packets per measured run (a few seconds of traffic, so several polls fall inside it).")
    var packets: Int = 3_000_000

    @Option(name: .customLong("frame-size"), help: "Frame sizes in bytes; repeat for several.")
    var frameSizes: [Int] = [64, 1500]

    @Option(name: .customLong("flows"), help: "Concurrent flows (UDP source ports; past 60000 also source addresses, e.g. 100000 or 1000000); 0 for churn: every packet from a new random source address and port, as in a forged flood; repeat for several.")
    var flowCounts: [Int] = [1, 10_000]

    @Option(name: .customLong("mode"), help: "Capture modes to measure; repeat for several (default: all).")
    var modes: [Mode] = Mode.allCases

    @Option(name: .customLong("generators"), help: "trafgen processes sending at once (one per core); repeat for several.")
    var generatorCounts: [Int] = [1, 2]

    @Option(help: "Write the results as JSON to this file.")
    var json: String = "flowforest-bench.json"

    @Option(name: .customLong("bpf-object"), help: "Path of a flowforest.bpf.o to load instead of the embedded object.")
    var bpfObject: String?

    @Option(name: .customLong("map-size"), help: "Entries of the kernel flow map in the eBPF modes and mode daemon (default: flowforest run's, 131072); with --flows 0 and more packets than 7/8 of it, flows past that are folded into overflow aggregates.")
    var mapSize: Int?

    @Option(help: "Rounds of every scenario: each mode is measured once a round, in an order rotated by one each round, and shown by its round with the median rate ratio.")
    var rounds: Int = 1

    @Option(name: .customLong("health-every"), help: "Milliseconds between the daemon mode's /api/health requests (each on a new connection).")
    var healthEveryMs: Int = 20

    @Option(name: .customLong("scrape-every"), help: "Milliseconds between the daemon mode's /metrics scrapes (which also time the first anomaly).")
    var scrapeEveryMs: Int = 200

    func validate() throws {
        guard (10...60_000).contains(healthEveryMs) && (10...60_000).contains(scrapeEveryMs) else {
            throw ValidationError("--health-every and --scrape-every must be between 10 and 60000 milliseconds")
        }
        guard (1...20).contains(rounds) else { throw ValidationError("--rounds must be between 1 and 20") }
        guard packets >= 1000 && packets <= 100_000_000 else { throw ValidationError("--packets must be between 1000 and 100000000") }
        guard frameSizes.allSatisfy({ (64...1514).contains($0) }) else { throw ValidationError("--frame-size must be between 64 and 1514") }
        guard flowCounts.allSatisfy({ $0 == 0 || Trafgen.shape(flows: $0) != nil }) else {
            throw ValidationError("--flows must be 0 (churn), 1-60000, or a power of two (up to 131072) times an odd number up to 60000, such as 100000 or 1000000")
        }
        guard generatorCounts.allSatisfy({ (1...64).contains($0) }) else { throw ValidationError("--generators must be between 1 and 64") }
        if let mapSize, !(1024...(1 << 24)).contains(mapSize) { throw ValidationError("--map-size must be between 1024 and 16777216") }
    }

    func run() async throws {
        guard geteuid() == 0 else { throw failure("bench builds network namespaces and loads eBPF programs: run it as root (sudo)") }
        // `trafgen --version` exits 1, so look for the binary itself.
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/sbin:/usr/bin"
        guard (path.split(separator: ":") + ["/usr/sbin"]).contains(where: { FileManager.default.isExecutableFile(atPath: "\($0)/trafgen") }) else {
            throw failure("trafgen (Debian package netsniff-ng) is not installed: run `make deps`")
        }
        var logger = Logger(label: "flowforest.bench")
        logger.logLevel = .warning
        let bench = Bench(packets: packets, rounds: rounds, objectPath: bpfObject, mapSize: mapSize,
                          probes: Bench.Probes(healthEveryMs: healthEveryMs, scrapeEveryMs: scrapeEveryMs), logger: logger)
        var report = Bench.Report(
            date: Timestamp.rfc3339(nanoseconds: UInt64(Date().timeIntervalSince1970 * 1e9)),
            kernel: (try? String(contentsOfFile: "/proc/sys/kernel/osrelease", encoding: .utf8))?
                .trimmingCharacters(in: .whitespacesAndNewlines) ?? "",
            cpus: ProcessInfo.processInfo.activeProcessorCount, packetsPerRun: packets, rounds: rounds, results: [])
        print(Bench.header)
        for frame in frameSizes {
            for flows in flowCounts {
                for generators in generatorCounts {
                    let rows = try await bench.scenario(frameBytes: frame, flows: flows, generators: generators, modes: modes)
                    for row in rows { print(row.line) }
                    report.results += rows
                }
            }
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        try encoder.encode(report).write(to: URL(fileURLWithPath: json))
        print("results written to \(json)")
    }
}

/// One bench run's lab, generator and measurements.
struct Bench {
    /// Removes this process's work directories (`flowforest-bench-<mode>-<pid>`,
    /// `flowforest-bench-collector-<pid>-<collector>`), for an interrupted run.
    static func removeWorkDirectories() {
        let temporary = FileManager.default.temporaryDirectory
        let pid = "-\(getpid())"
        let names = (try? FileManager.default.contentsOfDirectory(atPath: temporary.path)) ?? []
        for name in names where name.hasPrefix("flowforest-bench-") && (name.hasSuffix(pid) || name.contains(pid + "-")) {
            try? FileManager.default.removeItem(at: temporary.appendingPathComponent(name))
        }
    }

    let packets: Int
    /// Times each mode is measured per scenario (``BenchCommand/rounds``).
    let rounds: Int
    let objectPath: String?
    /// Kernel map entries; nil for the default.
    let mapSize: Int?
    /// How often mode daemon asks the daemon for its health and its metrics.
    let probes: Probes
    let logger: Logger

    struct Probes: Codable {
        var healthEveryMs: Int
        var scrapeEveryMs: Int
    }

    struct Report: Codable {
        var date: String
        var kernel: String
        var cpus: Int
        var packetsPerRun: Int
        var rounds: Int
        var results: [Row]
    }

    /// One measured run; `mode` nil is the no-sensor baseline.
    struct Row: Codable {
        var frameBytes: Int
        var flows: Int
        var generators: Int
        var mode: String
        var packetsSent: UInt64
        var generatorPps: Double
        var baselinePps: Double
        var rateRatio: Double
        var packetsSeen: UInt64
        var packetsAccounted: UInt64
        var accountedShare: Double
        var countedLosses: UInt64
        var bpfNsPerPacket: Double?
        var sensorCpuMsPerMpkt: Double?
        var sensorCpuPercent: Double?
        /// Mode daemon: the process's peak resident memory (VmHWM), MiB.
        var peakRssMiB: Double?
        /// Mode daemon: mean time of one poll of the capture source over the run, ms.
        var drainMsPerPoll: Double?
        /// Mode daemon: the API's latency, current accounting and detection under the traffic.
        var daemonLoad: DaemonLoad?
        /// Every round's rate ratio, in round order (the row shows the median's round).
        var roundRatios: [Double]?
        /// Every round's accounted share, in round order.
        var roundAccountedShares: [Double]?
        var note: String?

        var line: String {
            func f(_ v: Double?, _ digits: Int) -> String { v.map { String(format: "%.\(digits)f", $0) } ?? "-" }
            let cols: [String] = [
                "\(frameBytes)", flows == 0 ? "churn" : "\(flows)", "\(generators)", mode, "\(packetsSent)", f(generatorPps / 1e6, 3),
                f(rateRatio, 3), "\(packetsSeen)", "\(packetsAccounted)", f(accountedShare * 100, 3), "\(countedLosses)",
                f(bpfNsPerPacket, 0), f(sensorCpuMsPerMpkt, 1), f(sensorCpuPercent, 2), f(peakRssMiB, 0), f(drainMsPerPoll, 2),
                note ?? "",
            ]
            return zip(cols, Bench.widths).map { $0.padding(toLength: max($1, $0.count), withPad: " ", startingAt: 0) }
                .joined(separator: " ")
        }
    }

    static let widths = [6, 6, 4, 13, 9, 6, 6, 9, 9, 8, 7, 6, 8, 6, 6, 7, 0]
    static var header: String {
        let names = ["frame", "flows", "gen", "mode", "sent", "Mpps", "ratio", "seen", "accounted", "acct%", "losses",
                     "BPFns", "CPUms/M", "CPU%", "RSSMiB", "drainms", "note"]
        return zip(names, widths).map { $0.padding(toLength: max($1, $0.count), withPad: " ", startingAt: 0) }
            .joined(separator: " ")
    }

    /// A fresh lab per scenario: the baseline and every mode see the same
    /// interfaces, one after another.
    func scenario(frameBytes: Int, flows: Int, generators: Int, modes: [BenchCommand.Mode]) async throws -> [Row] {
        let lab = try NetworkLab()
        // An interrupted bench leaves no namespace, process or work directory.
        let interruption = InterruptTeardown("bench") {
            lab.teardown()
            Bench.removeWorkDirectories()
        }
        defer {
            interruption.cancel()
            lab.teardown()
        }
        let gen = try lab.addNamespace("gen"), sen = try lab.addNamespace("sen")
        for ns in [gen, sen] {
            // No IPv6 neighbour discovery or MLD frames in the packet counts.
            // /proc/sys/net is per namespace; no sysctl binary needed.
            try lab.check(in: ns, ["sh", "-c", "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6; echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6"])
        }
        // A queue per generator: native XDP on a veth gives each receive
        // queue one ring, which pushes back on a second sender sharing it.
        let (genIf, senIf) = try lab.connect(gen, address: "198.18.0.1/24", sen, address: "198.18.0.2/24", queues: max(1, generators))
        let config = flows == 0 ? Trafgen.churn(frameBytes: frameBytes) : Trafgen.udp(flows: flows, frameBytes: frameBytes)
        let traffic = Traffic(lab: lab, namespace: gen, interface: genIf, config: config, packets: packets, generators: generators)

        _ = try traffic.send()  // warm-up: first-touch costs stay out of the baseline
        // The generator alone before and after every measured run: its rate
        // drifts over minutes on a shared machine, and one baseline at the
        // start would charge that drift to whichever modes run last.
        var baselines = [try traffic.send()]
        var runs: [BenchCommand.Mode: [Row]] = [:]
        var listed = Set<BenchCommand.Mode>()
        let modes = modes.filter { listed.insert($0).inserted }
        for round in 0..<rounds {
            let shift = modes.isEmpty ? 0 : round % modes.count
            for mode in modes[shift...] + modes[..<shift] {
                var row = try await measureOnce(mode, lab: lab, namespace: sen, interface: senIf, traffic: traffic)
                let before = baselines[baselines.count - 1].packetsPerSecond
                let after = try traffic.send()
                baselines.append(after)
                row.baselinePps = (before + after.packetsPerSecond) / 2
                row.rateRatio = row.baselinePps > 0 ? row.generatorPps / row.baselinePps : 0
                if mode.attachMode != nil {
                    // Program run time from a shorter run with BPF statistics
                    // on, outside the bracket: they add two clock reads per
                    // packet, which must not weigh on the rate measured above.
                    var short = traffic
                    short.packets = max(1000, traffic.packets / 3)
                    let timed = try await measure(mode, lab: lab, namespace: sen, interface: senIf, traffic: short, bpfStatistics: true)
                    row.bpfNsPerPacket = timed.bpfNsPerPacket
                }
                runs[mode, default: []].append(row)
            }
        }
        var rows = [Self.baselineRow(baselines)] + modes.compactMap { runs[$0].flatMap(Self.medianRun) }
        for i in rows.indices {
            rows[i].frameBytes = frameBytes
            rows[i].flows = flows
            rows[i].generators = generators
        }
        return rows
    }

    /// The `none` row: the median of the no-sensor runs, and their range.
    static func baselineRow(_ baselines: [Trafgen.Result]) -> Row {
        let rates = baselines.map(\.packetsPerSecond)
        let median = rates.sorted()[rates.count / 2]
        let range = String(format: "%.3f-%.3f", rates.min()! / 1e6, rates.max()! / 1e6)
        return Row(
            frameBytes: 0, flows: 0, generators: 0, mode: "none", packetsSent: baselines[0].packets,
            generatorPps: median, baselinePps: median, rateRatio: 1, packetsSeen: 0, packetsAccounted: 0,
            accountedShare: 0, countedLosses: 0, note: "no sensor; \(rates.count) runs, \(range) Mpps")
    }

    /// The run with the median rate ratio (the upper one of an even count),
    /// whole: its other columns come from the same run. Every round's ratio
    /// and accounted share go with it.
    static func medianRun(_ runs: [Row]) -> Row? {
        let sorted = runs.sorted { $0.rateRatio < $1.rateRatio }
        guard var row = sorted.isEmpty ? nil : sorted[sorted.count / 2] else { return nil }
        row.roundRatios = runs.map(\.rateRatio)
        row.roundAccountedShares = runs.map(\.accountedShare)
        if runs.count > 1 {
            let ratios = runs.map { String(format: "%.3f", $0.rateRatio) }.joined(separator: "/")
            let shares = runs.map { String(format: "%.3f", $0.accountedShare * 100) }.joined(separator: "/")
            row.note = [row.note, "rounds: ratio \(ratios), acct% \(shares)"].compactMap { $0 }.joined(separator: "; ")
        }
        return row
    }

    /// One measured run of `mode`, without its ratio (the caller brackets it).
    private func measureOnce(_ mode: BenchCommand.Mode, lab: NetworkLab, namespace: String, interface: String,
                             traffic: Traffic) async throws -> Row {
        if mode == .daemon {
            return try await measureDaemon(lab: lab, namespace: namespace, interface: interface, traffic: traffic)
        } else if mode == .tcEmpty {
            return try await measureFloor(lab: lab, namespace: namespace, interface: interface, traffic: traffic)
        } else if let peer = PeerTool(mode) {
            return try await measurePeer(peer, mode: mode, lab: lab, namespace: namespace, interface: interface, traffic: traffic)
        }
        return try await measure(mode, lab: lab, namespace: namespace, interface: interface, traffic: traffic)
    }

    private func measure(_ mode: BenchCommand.Mode, lab: NetworkLab, namespace: String, interface: String,
                         traffic: Traffic, bpfStatistics: Bool = false) async throws -> Row {
        let rx0 = try lab.counter("rx_packets", interface: interface, in: namespace)
        let tx0 = try lab.counter("tx_packets", interface: interface, in: namespace)
        let stats = bpfStatistics ? try BPFStatistics() : nil
        let source: any FlowSource
        switch mode {
        case .pcap:
            // The handle is opened inside the lab namespace and stays bound there.
            source = try NetworkNamespace.run(namespace) {
                try PcapLiveSource(interfaces: [interface], pollIntervalNs: 1_000_000_000, logger: logger)
            }
        case .daemon, .tcEmpty, .tcpdump, .softflowd, .pmacctd, .pmacctdLarge, .nfpcapd:
            preconditionFailure("\(mode.rawValue) is measured by its own function")
        case .tc, .tcClsact, .xdp, .socket:
            source = try EBPFFlowSource(configuration: EBPFConfiguration(
                mode: mode.attachMode!, interfaces: [interface], mapEntries: mapSize ?? EBPFConfiguration.defaultMapEntries,
                objectPath: objectPath, namespace: namespace, tcHook: mode == .tcClsact ? .clsact : .auto), logger: logger)
        }
        // The drain publishes its latest statistics, so the bench can wait
        // for the sensor to have seen the traffic instead of sleeping.
        let latest = Latest()
        // Batches go through the pipeline `run` uses, without a detector: its
        // ledger counts the packets the sensor put into flows.
        let pipeline = Pipeline(sensor: "bench", logger: logger, metricsFactory: NOOPMetricsHandler.instance)
        let collector = Task { () throws -> (packets: UInt64, statistics: CaptureStatistics) in
            var statistics = CaptureStatistics()
            for try await batch in source.batches() {
                await pipeline.process(batch, mode: source.mode)
                statistics = batch.statistics
                latest.set(statistics)
            }
            return (await pipeline.packetsTotal, statistics)
        }
        let sent: Trafgen.Result
        let cpu: Double
        do {
            try await Wait.until("the \(mode.rawValue) sensor's first poll", timeout: 30) { latest.polls > 0 }
            // CPU is taken over the traffic only: loading, attaching and the
            // final drain are one-off costs, not the sensor's running cost.
            let cpu0 = Self.threadCPU()
            sent = try await onOwnThread { try traffic.send() }
            cpu = Self.cpuSeconds(from: cpu0, to: Self.threadCPU(), newThreads: false)
            var seen: UInt64 = 0
            try await Wait.until("the \(mode.rawValue) sensor to see every packet \(interface) counted", timeout: 30,
                                 detail: { "\(latest.statistics.packetsSeen) seen + \(latest.statistics.captureDrops) dropped of \(seen)" }) {
                let rx = try lab.counter("rx_packets", interface: interface, in: namespace) - rx0
                let tx = try lab.counter("tx_packets", interface: interface, in: namespace) - tx0
                seen = mode == .xdp ? rx : rx + tx
                let s = latest.statistics
                return s.packetsSeen + s.captureDrops >= seen
            }
        } catch {
            source.stop()
            _ = try? await collector.value
            throw error
        }
        source.stop()
        let drained = try await collector.value
        let ebpf = source as? EBPFFlowSource
        let run = ebpf?.programRunStatistics
        withExtendedLifetime(stats) {}
        let rx = try lab.counter("rx_packets", interface: interface, in: namespace) - rx0
        let tx = try lab.counter("tx_packets", interface: interface, in: namespace) - tx0
        // XDP sees received frames only; the other hooks see both directions.
        let seen = mode == .xdp ? rx : rx + tx
        let s = drained.statistics
        let losses = s.tableFull + s.captureDrops + s.interfaceDrops
        var note: String?
        if let ebpf, mode != .socket { note = ebpf.attachModes[interface] }
        if mode != .pcap && drained.packets + s.packetsOutsideFlows != seen {
            note = "MISMATCH: \(drained.packets + s.packetsOutsideFlows) explained of \(seen)"
        }
        return Row(
            frameBytes: 0, flows: 0, generators: 0, mode: mode.rawValue, packetsSent: sent.packets, generatorPps: sent.packetsPerSecond,
            // Accounted: in a flow or, past the kernel map's admission limit, an overflow aggregate.
            baselinePps: 0, rateRatio: 0, packetsSeen: seen, packetsAccounted: drained.packets + s.packetsAggregated,
            accountedShare: seen > 0 ? Double(drained.packets + s.packetsAggregated) / Double(seen) : 0, countedLosses: losses,
            bpfNsPerPacket: run.flatMap { $0.runCount > 0 ? Double($0.runTimeNs) / Double($0.runCount) : nil },
            sensorCpuMsPerMpkt: sent.packets > 0 ? cpu * 1000 / (Double(sent.packets) / 1e6) : nil,
            sensorCpuPercent: sent.seconds > 0 ? cpu / sent.seconds * 100 : nil,
            note: note)
    }

    /// On-CPU nanoseconds of every thread of a process ("self" or a pid),
    /// from each thread's schedstat (nanoseconds, unlike the 10 ms ticks of `stat`).
    static func threadCPU(_ process: String = "self") -> [String: UInt64] {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(process)/task")) ?? []
        var out: [String: UInt64] = [:]
        for tid in tasks {
            guard let sched = try? String(contentsOfFile: "/proc/\(process)/task/\(tid)/schedstat", encoding: .utf8),
                  let onCPU = sched.split(separator: " ").first.flatMap({ UInt64($0) })
            else { continue }
            out[tid] = onCPU
        }
        return out
    }

    /// CPU seconds between two per-thread snapshots, each thread counting
    /// only its own growth (threads that ended in between are lost to both
    /// ends). Threads started in between count from zero with
    /// `newThreads`; without it they are left out, as in the in-process
    /// modes, where they are the bench's own threads that spawn and wait for
    /// trafgen, not the capture thread or the pool consuming its batches.
    static func cpuSeconds(from a: [String: UInt64], to b: [String: UInt64], newThreads: Bool) -> Double {
        var ns: UInt64 = 0
        for (tid, end) in b {
            guard let start = a[tid] ?? (newThreads ? 0 : nil), end >= start else { continue }
            ns += end - start
        }
        return Double(ns) / 1e9
    }
}

/// The generator: trafgen in the lab's sending namespace.
struct Traffic: Sendable {
    let lab: NetworkLab
    let namespace: String
    let interface: String
    let config: String
    var packets: Int
    let generators: Int

    func send() throws -> Trafgen.Result {
        try Trafgen.run(lab: lab, namespace: namespace, interface: interface, config: config, packets: packets, cpus: generators)
    }
}

/// Runs blocking work on its own thread, off the cooperative pool.
func onOwnThread<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { (c: CheckedContinuation<T, any Error>) in
        Thread {
            do { c.resume(returning: try work()) } catch { c.resume(throwing: error) }
        }.start()
    }
}

/// The newest statistics a capture reported, and how many polls reported.
private final class Latest: Sendable {
    private let state = Mutex((polls: 0, statistics: CaptureStatistics()))
    func set(_ statistics: CaptureStatistics) { state.withLock { $0 = ($0.polls + 1, statistics) } }
    var polls: Int { state.withLock { $0.polls } }
    var statistics: CaptureStatistics { state.withLock { $0.statistics } }
}
