import FlowForestLab
import Foundation
import Testing

/// Live exporters in a namespace lab, each into a collector
/// (`run --no-capture --collect`): a FlowForest sensor (`run --mode pcap
/// --export-ipfix`) and pmacct's nfprobe (NetFlow v5, v9, IPFIX) on the same
/// veth. The collector's flows equal the sensor's own count, per flow and direction.
@Suite("Lab: live exporters into a collector", .serialized, .enabled(if: Command.isRoot, "needs root for network namespaces"))
struct CollectLabTests {
    static let client = "198.18.0.1", server = "198.18.0.2"

    @Test("ping, UDP and TCP: the collector's flows equal the sensor's", arguments: [false, true])
    func sensorToCollector(biflow: Bool) throws {
        let lab = try NetworkLab()
        defer { lab.teardown() }
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (a, b, sensorIf) = try Self.makeLab(lab)

        // Both daemons in the sensor's namespace; the export crosses its loopback, which the sensor does not capture.
        let collectorOut = dir.appendingPathComponent("collector.jsonl"), collectorErr = dir.appendingPathComponent("collector.err")
        let collector = try lab.spawn(in: b, [
            Binary.path, "run", "--no-capture", "--collect", "udp://127.0.0.1:2055", "--print-flows", "json", "--no-auth",
            "--listen", "127.0.0.1:18081", "--idle-timeout", "60", "--poll-interval", "0.2",
            "--database", dir.appendingPathComponent("collector.db").path,
        ], stdout: collectorOut, stderr: collectorErr)
        try Wait.blockingUntil("the collector to start", timeout: 20, detail: { tail(collectorErr) }) {
            Wait.file(collectorErr, contains: "capture started")
        }
        let sensorOut = dir.appendingPathComponent("sensor.jsonl"), sensorErr = dir.appendingPathComponent("sensor.err")
        let sensor = try lab.spawn(in: b, [
            Binary.path, "run", "--mode", "pcap", "--interface", sensorIf, "--export-ipfix", "udp://127.0.0.1:2055",
            "--print-flows", "json", "--no-auth", "--listen", "127.0.0.1:18082", "--idle-timeout", "60", "--poll-interval", "0.2",
            "--database", dir.appendingPathComponent("sensor.db").path,
        ] + (biflow ? ["--ipfix-biflow"] : []), stdout: sensorOut, stderr: sensorErr)
        try Wait.blockingUntil("the sensor to start capturing", timeout: 20, detail: { tail(sensorErr) }) {
            Wait.file(sensorErr, contains: "capture started")
        }

        try Self.traffic(lab, client: a, server: b)

        // The sensor flushes its open flows and their final exports on SIGINT.
        #expect(lab.stop(sensor, signal: SIGINT, timeout: 15) == 0, "sensor: \(tail(sensorErr))")
        let sensorFlows = try Self.flows(sensorOut)
        let sensorPackets = sensorFlows.values.reduce(0) { $0 + $1[0] + $1[2] }
        // The collector has everything once its packet counter reaches the sensor's.
        try Wait.blockingUntil("the collector to count \(sensorPackets) packets", timeout: 20, detail: { tail(collectorErr) }) {
            let metrics = try Command.run(["ip", "netns", "exec", b, "curl", "-s", "http://127.0.0.1:18081/metrics"]).stdout
            return Self.collectedPackets(metrics) >= sensorPackets
        }
        #expect(lab.stop(collector, signal: SIGINT, timeout: 15) == 0, "collector: \(tail(collectorErr))")
        let collectedFlows = try Self.flows(collectorOut)

        #expect(sensorFlows.count >= 3, "the sensor saw \(sensorFlows)")
        #expect(collectedFlows == sensorFlows, "collector \(collectedFlows)\nsensor \(sensorFlows)")
        let lines = try String(contentsOf: collectorOut, encoding: .utf8).split(separator: "\n")
        // The sensor exports its capture interface's index: the exporter's address, then "%" and that index.
        let ifindex = try lab.check(in: b, ["cat", "/sys/class/net/\(sensorIf)/ifindex"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(lines.allSatisfy { $0.contains("\"interface\":\"127.0.0.1%\(ifindex)\"") }, "every collected flow names its exporter: \(lines.first ?? "")")
    }

    /// 20 pings, 50 UDP datagrams to a sink, a 50,000-byte TCP transfer.
    static func traffic(_ lab: NetworkLab, client a: String, server b: String) throws {
        try lab.check(in: a, ["ping", "-c", "20", "-i", "0.01", "-W", "2", "-q", Self.server], timeout: 30)
        let sink = try lab.spawn(in: b, ["python3", "-c", """
            import socket
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("\(Self.server)", 9999)); s.settimeout(15)
            n = 0
            while n < 50: s.recv(2048); n += 1
            """])
        try PcapLabTests.waitForListener(lab, b, "-u", port: 9999)
        try lab.check(in: a, ["python3", "-c", """
            import socket, time
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            for i in range(50):
                s.sendto(b"x" * 100, ("\(Self.server)", 9999)); time.sleep(0.001)
            """], timeout: 30)
        let tcpServer = try lab.spawn(in: b, ["python3", "-c", """
            import socket
            l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); l.bind(("\(Self.server)", 5001)); l.listen(1); l.settimeout(15)
            c, _ = l.accept(); n = 0
            while True:
                d = c.recv(65536)
                if not d: break
                n += len(d)
            c.close()
            """])
        try PcapLabTests.waitForListener(lab, b, "-t", port: 5001)
        try lab.check(in: a, ["python3", "-c", """
            import socket
            s = socket.create_connection(("\(Self.server)", 5001), timeout=10); s.sendall(b"y" * 50000); s.shutdown(socket.SHUT_WR); s.recv(1); s.close()
            """], timeout: 30)
        #expect(lab.wait(tcpServer, timeout: 10) == 0)
        #expect(lab.wait(sink, timeout: 10) == 0)
    }

    /// Two namespaces, IPv6 off (no neighbour discovery joins the counts); returns them and the sensor's interface.
    static func makeLab(_ lab: NetworkLab) throws -> (client: String, sensor: String, sensorInterface: String) {
        let a = try lab.addNamespace("client"), b = try lab.addNamespace("sensor")
        for ns in [a, b] {
            try lab.check(in: ns, ["sh", "-c", "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6; echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6"])
        }
        let (_, sensorIf) = try lab.connect(a, address: "\(client)/24", b, address: "\(server)/24")
        return (a, b, sensorIf)
    }

    @Test("pmacct's nfprobe live on the sensor's veth (v5, v9, IPFIX): the collector's flows equal the sensor's", arguments: [5, 9, 10])
    func pmacct(version: Int) throws {
        let lab = try NetworkLab()
        defer { lab.teardown() }
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (a, b, sensorIf) = try Self.makeLab(lab)
        let collectorOut = dir.appendingPathComponent("collector.jsonl"), collectorErr = dir.appendingPathComponent("collector.err")
        let collector = try lab.spawn(in: b, [
            Binary.path, "run", "--no-capture", "--collect", "udp://127.0.0.1:2055", "--print-flows", "json", "--no-auth",
            "--listen", "127.0.0.1:18081", "--idle-timeout", "60", "--poll-interval", "0.2",
            "--database", dir.appendingPathComponent("collector.db").path,
        ], stdout: collectorOut, stderr: collectorErr)
        try Wait.blockingUntil("the collector to start", timeout: 20, detail: { tail(collectorErr) }) {
            Wait.file(collectorErr, contains: "capture started")
        }
        // The sensor's own count of the same veth.
        let sensorOut = dir.appendingPathComponent("sensor.jsonl"), sensorErr = dir.appendingPathComponent("sensor.err")
        let sensor = try lab.spawn(in: b, [
            Binary.path, "run", "--mode", "pcap", "--interface", sensorIf, "--print-flows", "json", "--no-auth",
            "--listen", "127.0.0.1:18082", "--idle-timeout", "60", "--poll-interval", "0.2",
            "--database", dir.appendingPathComponent("sensor.db").path,
        ], stdout: sensorOut, stderr: sensorErr)
        try Wait.blockingUntil("the sensor to start capturing", timeout: 20, detail: { tail(sensorErr) }) {
            Wait.file(sensorErr, contains: "capture started")
        }
        let config = dir.appendingPathComponent("pmacctd.conf"), probeLog = dir.appendingPathComponent("pmacctd.log")
        try """
            daemonize: false
            pcap_interface: \(sensorIf)
            plugins: nfprobe
            nfprobe_receiver: 127.0.0.1:2055
            nfprobe_version: \(version)
            nfprobe_timeouts: tcp=2:tcp.rst=1:tcp.fin=1:udp=2:icmp=2:general=2:maxlife=30:expint=1

            """.write(to: config, atomically: true, encoding: .utf8)
        let probe = try lab.spawn(in: b, ["pmacctd", "-f", config.path], stdout: probeLog, stderr: probeLog)
        try Wait.blockingUntil("pmacctd to capture", timeout: 20, detail: { tail(probeLog) }) {
            Wait.file(probeLog, contains: "link type is")
        }
        Thread.sleep(forTimeInterval: 0.5)

        try Self.traffic(lab, client: a, server: b)

        #expect(lab.stop(sensor, signal: SIGINT, timeout: 15) == 0, "sensor: \(tail(sensorErr))")
        let sensorFlows = try Self.flows(sensorOut)
        let sensorPackets = sensorFlows.values.reduce(0) { $0 + $1[0] + $1[2] }
        // pmacct exports each flow once it has been idle for its timeout (2 s).
        try Wait.blockingUntil("the collector to count \(sensorPackets) packets", timeout: 30, detail: { tail(probeLog) + tail(collectorErr) }) {
            let metrics = try Command.run(["ip", "netns", "exec", b, "curl", "-s", "http://127.0.0.1:18081/metrics"]).stdout
            return Self.collectedPackets(metrics) >= sensorPackets
        }
        _ = lab.stop(probe, signal: SIGTERM, timeout: 10)
        #expect(lab.stop(collector, signal: SIGINT, timeout: 15) == 0, "collector: \(tail(collectorErr))")
        let collectedFlows = try Self.flows(collectorOut)
        #expect(sensorFlows.count >= 3, "the sensor saw \(sensorFlows)")
        #expect(collectedFlows == sensorFlows, "collector \(collectedFlows)\nsensor \(sensorFlows)")
    }

    /// Ended flows by "proto src sport dst dport": [fwd packets, fwd bytes, rev packets, rev bytes].
    static func flows(_ url: URL) throws -> [String: [Int]] {
        var out: [String: [Int]] = [:]
        for line in try String(contentsOf: url, encoding: .utf8).split(separator: "\n") {
            guard let f = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], f["state"] as? String == "ended" else { continue }
            let key = "\(f["protocol"] ?? "") \(f["src_ip"] ?? "") \(f["src_port"] ?? "-") \(f["dst_ip"] ?? "") \(f["dst_port"] ?? "-")"
            let fwd = f["fwd"] as? [String: Any] ?? [:], rev = f["rev"] as? [String: Any] ?? [:]
            let t = out[key] ?? [0, 0, 0, 0]
            out[key] = [t[0] + (fwd["packets"] as? Int ?? 0), t[1] + (fwd["bytes"] as? Int ?? 0),
                        t[2] + (rev["packets"] as? Int ?? 0), t[3] + (rev["bytes"] as? Int ?? 0)]
        }
        return out
    }

    /// `flowforest_packets_total{mode="collect"}` summed over directions.
    static func collectedPackets(_ metrics: String) -> Int {
        metrics.split(separator: "\n").filter { $0.hasPrefix("flowforest_packets_total{") && $0.contains("mode=\"collect\"") }
            .compactMap { Double($0.split(separator: " ").last ?? "") }.reduce(0) { $0 + Int($1) }
    }
}

@Suite("Command line: --collect errors")
struct CollectCommandLineTests {
    @Test("a wrong scheme or a port in use is an error at start, before any database is created")
    func startErrors() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let database = dir.appendingPathComponent("collector.db")
        let scheme = try Binary.run(["run", "--no-capture", "--collect", "tcp://127.0.0.1:2055", "--database", database.path])
        #expect(scheme.status != 0 && scheme.stderr.contains("expected udp://HOST:PORT"), "\(scheme.stderr)")

        // Hold a UDP port, then ask run to collect on it.
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        try #require(bound)
        let port = UInt16(bigEndian: address.sin_port)
        let busy = try Binary.run(["run", "--no-capture", "--no-auth", "--collect", "udp://127.0.0.1:\(port)", "--database", database.path])
        #expect(busy.status != 0)
        #expect(busy.stderr.contains("--collect udp://127.0.0.1:\(port): Address already in use"), "\(busy.stderr)")
        #expect(!FileManager.default.fileExists(atPath: database.path))
    }
}
