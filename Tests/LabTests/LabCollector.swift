import FlowForestLab
import Foundation

/// `flowforest run --no-capture --collect udp://127.0.0.1:2055` in a lab
/// namespace, printing its flows as JSON lines, with its API on
/// 127.0.0.1:18081 of that namespace; started once it logs that it runs.
final class LabCollector {
    let lab: NetworkLab
    let namespace: String
    let flows: URL
    let log: URL
    private let process: Process
    static let port = 2055, api = "http://127.0.0.1:18081"

    init(lab: NetworkLab, namespace: String, directory: URL, extraArguments: [String] = []) throws {
        self.lab = lab
        self.namespace = namespace
        flows = directory.appendingPathComponent("collector.jsonl")
        log = directory.appendingPathComponent("collector.err")
        try lab.check(in: namespace, ["ip", "link", "set", "lo", "up"])
        process = try lab.spawn(in: namespace, [
            Binary.path, "run", "--no-capture", "--collect", "udp://127.0.0.1:\(Self.port)", "--print-flows", "json", "--no-auth",
            "--listen", "127.0.0.1:18081", "--idle-timeout", "60", "--poll-interval", "0.2",
            "--database", directory.appendingPathComponent("collector.db").path,
        ] + extraArguments, stdout: flows, stderr: log)
        try Wait.blockingUntil("the collector to start", timeout: 20, detail: { tail(self.log) }) {
            Wait.file(self.log, contains: "capture started")
        }
    }

    /// A GET of the collector's API (its namespace's loopback).
    func get(_ path: String) throws -> String {
        try Command.run(["ip", "netns", "exec", namespace, "curl", "-s", "--max-time", "5", Self.api + path]).stdout
    }

    /// `flowforest_packets_total{mode="collect"}` summed over directions.
    func collectedPackets() throws -> Int {
        try get("/metrics").split(separator: "\n").filter { $0.hasPrefix("flowforest_packets_total{") && $0.contains("mode=\"collect\"") }
            .compactMap { Double($0.split(separator: " ").last ?? "") }.reduce(0) { $0 + Int($1) }
    }

    /// Waits until the collector has counted `packets` packets.
    func waitForPackets(_ packets: Int, timeout: Double, detail: @escaping () -> String = { "" }) throws {
        try Wait.blockingUntil("the collector to count \(packets) packets", timeout: timeout, detail: { detail() + tail(self.log) }) {
            try self.collectedPackets() >= packets
        }
    }

    /// Stops it with SIGINT (it flushes its open flows) and returns its exit status.
    func stop() -> Int32 { lab.stop(process, signal: SIGINT, timeout: 15) }
}

/// `flowforest run --mode pcap` on a lab interface, printing its flows as
/// JSON lines (its API on 127.0.0.1:18082 of the namespace): the count the
/// collector's flows are compared with.
final class LabSensor {
    private let lab: NetworkLab
    private let process: Process
    let flows: URL
    let log: URL

    init(lab: NetworkLab, namespace: String, interface: String, directory: URL, extraArguments: [String] = []) throws {
        self.lab = lab
        flows = directory.appendingPathComponent("sensor.jsonl")
        log = directory.appendingPathComponent("sensor.err")
        process = try lab.spawn(in: namespace, [
            Binary.path, "run", "--mode", "pcap", "--interface", interface, "--print-flows", "json", "--no-auth",
            "--listen", "127.0.0.1:18082", "--idle-timeout", "60", "--poll-interval", "0.2",
            "--database", directory.appendingPathComponent("sensor.db").path,
        ] + extraArguments, stdout: flows, stderr: log)
        try Wait.blockingUntil("the sensor to start capturing", timeout: 20, detail: { tail(self.log) }) {
            Wait.file(self.log, contains: "capture started")
        }
    }

    /// Stops it with SIGINT: it ends its open flows (and sends their final exports).
    func stop() -> Int32 { lab.stop(process, signal: SIGINT, timeout: 15) }
}

/// pmacct's `pmacctd` with its nfprobe plugin on a lab interface, exporting
/// NetFlow v5, v9 or IPFIX (`version` 10) to the lab collector.
final class PmacctProbe {
    private let lab: NetworkLab
    private let process: Process
    let log: URL

    /// - Parameter maxlife: pmacct's active timeout: a flow open longer is
    ///   exported and started again, a piece every `maxlife` seconds.
    init(lab: NetworkLab, namespace: String, interface: String, version: Int, directory: URL, maxlife: Int = 30) throws {
        self.lab = lab
        let config = directory.appendingPathComponent("pmacctd.conf")
        log = directory.appendingPathComponent("pmacctd.log")
        // Short timeouts: each flow is exported within about two seconds of its last packet.
        try """
            daemonize: false
            pcap_interface: \(interface)
            plugins: nfprobe
            nfprobe_receiver: 127.0.0.1:\(LabCollector.port)
            nfprobe_version: \(version)
            nfprobe_timeouts: tcp=2:tcp.rst=1:tcp.fin=1:udp=2:icmp=2:general=2:maxlife=\(maxlife):expint=1

            """.write(to: config, atomically: true, encoding: .utf8)
        process = try lab.spawn(in: namespace, ["pmacctd", "-f", config.path], stdout: log, stderr: log)
        try Wait.blockingUntil("pmacctd to capture", timeout: 20, detail: { tail(self.log) }) {
            Wait.file(self.log, contains: "link type is")
        }
    }

    /// Returns once pmacct's records reach `collector`: "capturing" in its log
    /// does not mean its nfprobe plugin exports yet, so one ping from
    /// `client` to `server` goes through the probed interface and the
    /// collector must count it (a sensor on the same interface counts it too).
    func waitUntilExporting(to collector: LabCollector, client: String, server: String) throws {
        try lab.check(in: client, ["ping", "-c", "1", "-W", "2", "-q", server], timeout: 10)
        try collector.waitForPackets(1, timeout: 20, detail: { tail(self.log) })
    }

    /// pmacct blocks SIGTERM: SIGINT stops it.
    func stop() { _ = lab.stop(process, signal: SIGINT, timeout: 10) }
}

/// softflowd exporting NetFlow v5, v9 or IPFIX (`version` 10) of a lab
/// interface's packets to the lab collector.
///
/// Debian's softflowd 1.1.0 cannot do this with `-i`: it opens the interface
/// with a libpcap timeout of 0 and no immediate mode, so on a quiet interface
/// the TPACKET_V3 ring never hands over a block and it processes nothing.
/// Its `-r FILE` reads every packet, as long as no control socket is named
/// after `-r` (with one, an uninitialised poll result sends it into a
/// blocking accept() on that socket before each batch). So tcpdump
/// captures the interface in immediate mode into a FIFO that softflowd
/// reads with `-r`; when tcpdump stops, softflowd reaches the end of its
/// input and exports every flow it still holds.
final class SoftflowdProbe {
    private let lab: NetworkLab
    private let capture: Process
    private let exporter: Process
    let log: URL

    init(lab: NetworkLab, namespace: String, interface: String, version: Int, directory: URL) throws {
        self.lab = lab
        let fifo = directory.appendingPathComponent("packets.fifo")
        guard mkfifo(fifo.path, 0o600) == 0 else { throw LabError.failed(command: ["mkfifo", fifo.path], status: errno, stderr: String(cString: strerror(errno))) }
        log = directory.appendingPathComponent("softflowd.log")
        let captureLog = directory.appendingPathComponent("tcpdump.log")
        // softflowd closes every inherited descriptor at start; the lab runs
        // it under a waiting parent, like every command it spawns, so
        // Foundation still reaps it and every other child.
        exporter = try lab.spawn(in: namespace, [
            "softflowd", "-d", "-c", "none", "-p", directory.appendingPathComponent("softflowd.pid").path, "-r", fifo.path,
            "-n", "127.0.0.1:\(LabCollector.port)", "-v", "\(version)",
        ], stdout: log, stderr: log, limit: 120)
        capture = try lab.spawn(in: namespace, ["tcpdump", "-i", interface, "-n", "--immediate-mode", "-U", "-s", "0", "-w", fifo.path],
                                stderr: captureLog)
        try Wait.blockingUntil("tcpdump to capture for softflowd", timeout: 20, detail: { tail(captureLog) + tail(self.log) }) {
            Wait.file(captureLog, contains: "listening on")
        }
    }

    /// Ends the capture; softflowd then exports what it holds and exits. Returns softflowd's exit status.
    func finish() -> Int32 {
        _ = lab.stop(capture, signal: SIGINT, timeout: 10)
        return lab.wait(exporter, timeout: 20)
    }
}
