import FlowForestLab
import Foundation
import Testing

/// The detection lab itself: its services answer, and its attacks really
/// reach the sensor's interface, as a capture of it shows.
@Suite("Lab: traffic lab for detection runs", .serialized, .enabled(if: Command.isRoot, "needs root for network namespaces"))
struct TrafficLabTests {
    @Test("Normal clients, a SYN scan, a sweep and a SYN flood are all seen on the sensor interface")
    func attacksReachTheSensor() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let traffic = try TrafficLab(workDirectory: dir)
        defer { traffic.teardown() }
        let pcap = dir.appendingPathComponent("sensor.pcap")
        let (lab, ns, dev) = (traffic.lab, traffic.serversNamespace, traffic.sensorInterface)
        func packets() throws -> UInt64 {
            try lab.counter("rx_packets", interface: dev, in: ns) + lab.counter("tx_packets", interface: dev, in: ns)
        }
        let dump = try PacketDump(lab: lab, namespace: ns, interface: dev, file: pcap, snapLength: 128)
        let before = try packets()
        let normal = try traffic.startNormalTraffic(seconds: 3)
        try traffic.run(.synScan)
        try traffic.run(.pingSweep)
        try traffic.run(.synFlood)
        for p in normal { p.waitUntilExit() }
        try dump.finish(expecting: { Int(try packets() - before) })

        let result = try Binary.run(["analyze", pcap.path, "--format", "json"])
        let report = try #require(JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        let flows = try #require(report["flows"] as? [[String: Any]])
        let scan = flows.filter { $0["src_ip"] as? String == traffic.attacker && $0["dst_ip"] as? String == traffic.server && $0["protocol"] as? String == "tcp" }
        #expect(Set(scan.compactMap { $0["dst_port"] as? Int }).count >= 1000, "the scan's SYNs reach the sensor")
        let sweep = flows.filter { ($0["dst_ip"] as? String)?.hasPrefix("198.18.2.") == true }
        #expect(Set(sweep.compactMap { $0["dst_ip"] as? String }).count >= 250, "sweep probes reach the sensor")
        let flood = scan.filter { $0["dst_port"] as? Int == 80 }.reduce(0) { $0 + (($1["fwd"] as? [String: Any])?["packets"] as? Int ?? 0) }
        #expect(flood >= 10_000, "hping3 paces itself with SIGALRM: the flood's SYNs reach the sensor (\(flood))")
        let web = flows.filter { traffic.clients.contains($0["src_ip"] as? String ?? "") && $0["dst_port"] as? Int == 80 }
        #expect(!web.isEmpty, "normal clients browse")
    }
}
