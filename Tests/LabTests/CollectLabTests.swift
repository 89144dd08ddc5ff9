import FlowForestLab
import FlowForestTestSupport
import Foundation
import Testing

/// Live exporters in a namespace lab, each into a collector
/// (`run --no-capture --collect`): a FlowForest sensor (`run --mode pcap
/// --export-ipfix`), pmacct's nfprobe and softflowd (NetFlow v5, v9, IPFIX)
/// on the same veth. The collector's flows equal the sensor's own count, per
/// flow and direction.
@Suite("Lab: live exporters into a collector", .serialized, .enabled(if: Command.isRoot, "needs root for network namespaces"))
struct CollectLabTests {
    static let client = "198.18.0.1", server = "198.18.0.2", warmup = "198.18.0.3"

    @Test("ping, UDP and TCP: the collector's flows equal the sensor's", arguments: [false, true])
    func sensorToCollector(biflow: Bool) throws {
        let lab = try NetworkLab()
        defer { lab.teardown() }
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (a, b, sensorIf) = try Self.makeLab(lab)

        // Both daemons in the sensor's namespace; the export crosses its loopback, which the sensor does not capture.
        let collector = try LabCollector(lab: lab, namespace: b, directory: dir)
        let sensor = try LabSensor(lab: lab, namespace: b, interface: sensorIf, directory: dir,
                                   extraArguments: ["--export-ipfix", "udp://127.0.0.1:\(LabCollector.port)"] + (biflow ? ["--ipfix-biflow"] : []))

        try Self.traffic(lab, client: a, server: b)

        // The sensor flushes its open flows and their final exports on SIGINT.
        #expect(sensor.stop() == 0, "sensor: \(tail(sensor.log))")
        let sensorFlows = try Self.flows(sensor.flows)
        let sensorPackets = sensorFlows.values.reduce(0) { $0 + $1[0] + $1[2] }
        // The collector has everything once its packet counter reaches the sensor's.
        try collector.waitForPackets(sensorPackets, timeout: 20)
        #expect(collector.stop() == 0, "collector: \(tail(collector.log))")
        let collectedFlows = try Self.flows(collector.flows)

        #expect(sensorFlows.count >= 3, "the sensor saw \(sensorFlows)")
        #expect(collectedFlows == sensorFlows, "collector \(collectedFlows)\nsensor \(sensorFlows)")
        let lines = try String(contentsOf: collector.flows, encoding: .utf8).split(separator: "\n")
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
        let collector = try LabCollector(lab: lab, namespace: b, directory: dir)
        let probe = try PmacctProbe(lab: lab, namespace: b, interface: sensorIf, version: version, directory: dir)
        defer { probe.stop() }
        // pmacct may miss the first packets after it says it captures. A
        // warm-up ping to a second server address proves it exports; the
        // sensor starts only after it, so both count the same traffic, and
        // the warm-up flows are left out of the comparison.
        try lab.check(in: b, ["ip", "addr", "add", "\(Self.warmup)/24", "dev", sensorIf])
        try probe.waitUntilExporting(to: collector, client: a, server: Self.warmup)
        let warmupPackets = try collector.collectedPackets()
        // The sensor's own count of the same veth.
        let sensor = try LabSensor(lab: lab, namespace: b, interface: sensorIf, directory: dir)

        try Self.traffic(lab, client: a, server: b)

        #expect(sensor.stop() == 0, "sensor: \(tail(sensor.log))")
        let sensorFlows = try Self.flows(sensor.flows)
        let sensorPackets = sensorFlows.values.reduce(0) { $0 + $1[0] + $1[2] }
        // pmacct exports each flow once it has been idle for its timeout (2 s).
        try collector.waitForPackets(warmupPackets + sensorPackets, timeout: 30, detail: { tail(probe.log) })
        probe.stop()
        #expect(collector.stop() == 0, "collector: \(tail(collector.log))")
        let collectedFlows = try Self.flows(collector.flows).filter { !$0.key.contains(" \(Self.warmup) ") }
        #expect(sensorFlows.count >= 3, "the sensor saw \(sensorFlows)")
        #expect(collectedFlows == sensorFlows, "collector \(collectedFlows)\nsensor \(sensorFlows)")
    }

    @Test("softflowd on the sensor's veth (v5, v9, IPFIX): the collector's flows equal the sensor's", arguments: [5, 9, 10])
    func softflowd(version: Int) throws {
        let lab = try NetworkLab()
        defer { lab.teardown() }
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (a, b, sensorIf) = try Self.makeLab(lab)
        let collector = try LabCollector(lab: lab, namespace: b, directory: dir)
        let sensor = try LabSensor(lab: lab, namespace: b, interface: sensorIf, directory: dir)
        let probe = try SoftflowdProbe(lab: lab, namespace: b, interface: sensorIf, version: version, directory: dir)

        try Self.traffic(lab, client: a, server: b)

        #expect(sensor.stop() == 0, "sensor: \(tail(sensor.log))")
        #expect(probe.finish() == 0, "softflowd: \(tail(probe.log))")
        let sensorFlows = try Self.flows(sensor.flows)
        let sensorPackets = sensorFlows.values.reduce(0) { $0 + $1[0] + $1[2] }
        try collector.waitForPackets(sensorPackets, timeout: 30, detail: { tail(probe.log) })
        #expect(collector.stop() == 0, "collector: \(tail(collector.log))")
        let collectedFlows = try Self.flows(collector.flows)
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
        let (fd, port) = try PeerProcess.boundUDPSocket()
        defer { close(fd) }
        let busy = try Binary.run(["run", "--no-capture", "--no-auth", "--collect", "udp://127.0.0.1:\(port)", "--database", database.path])
        #expect(busy.status != 0)
        #expect(busy.stderr.contains("--collect udp://127.0.0.1:\(port): Address already in use"), "\(busy.stderr)")
        #expect(!FileManager.default.fileExists(atPath: database.path))
    }
}
