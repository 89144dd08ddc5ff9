import FlowForestLab
import Foundation
import Testing

/// Detection on collected flows alone: pmacct's nfprobe exports IPFIX of what
/// it sees on the lab's sensor veth to `flowforest run --no-capture
/// --collect` (which captures nothing itself) while nmap SYN-scans a server
/// behind that veth; the collector reports the scan.
@Suite("Lab: an nmap scan detected from collected flows", .serialized, .enabled(if: Command.isRoot, "needs root for network namespaces"))
struct CollectScanLabTests {
    @Test("nmap -sS of 1000 ports, exported by pmacct as IPFIX: the collector reports a port scan by the attacker")
    func scanFromCollectedFlows() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        // A model trained on ordinary traffic, as `flowforest train` makes it: the detector scores from the first flow.
        let start = Date().timeIntervalSince1970 - 7200
        let (monday, tuesday) = (dir.appendingPathComponent("monday.pcap"), dir.appendingPathComponent("tuesday.pcap"))
        try TrainCommandTests.normalTraffic(seconds: 90, seed: 1, start: start).write(to: monday)
        try TrainCommandTests.normalTraffic(seconds: 90, seed: 2, start: start + 600).write(to: tuesday)
        let model = dir.appendingPathComponent("model.json")
        let trained = try Binary.run(["train", monday.path, tuesday.path, "-o", model.path], timeout: 120)
        try #require(trained.status == 0, "train: \(trained.stderr)")

        let traffic = try TrafficLab(workDirectory: dir)
        defer { traffic.teardown() }
        let ns = traffic.serversNamespace
        let collector = try LabCollector(lab: traffic.lab, namespace: ns, directory: dir,
                                         extraArguments: ["--model", model.path, "--sensor-name", "collector"])
        let probe = try PmacctProbe(lab: traffic.lab, namespace: ns, interface: traffic.sensorInterface, version: 10, directory: dir)
        defer { probe.stop() }
        try probe.waitUntilExporting(to: collector, client: traffic.clientsNamespace, server: traffic.server)

        let normal = try traffic.startNormalTraffic(seconds: 5)
        try traffic.run(.synScan)
        for p in normal { p.waitUntilExit() }

        // pmacct exports each probe's flow about a second after its RST; the collector scores ended flows and hosts.
        var seen: [[String: Any]] = []
        try Wait.blockingUntil("the collector to report a port scan by \(traffic.attacker)", timeout: 90, every: 0.5,
                               detail: { "anomalies: \(seen.map { "\($0["label"] ?? "-") \($0["src_ip"] ?? "-")" })\n" + tail(collector.log) }) {
            let body = try collector.get("/api/anomalies?limit=1000")
            let page = try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any]
            seen = page?["anomalies"] as? [[String: Any]] ?? []
            return seen.contains { $0["label"] as? String == "port scan" && $0["src_ip"] as? String == traffic.attacker }
        }
        let scan = seen.first { $0["label"] as? String == "port scan" && $0["src_ip"] as? String == traffic.attacker }
        #expect(scan?["sensor"] as? String == "collector")
        // The daemon captured nothing: every packet it counted came in export records.
        let metrics = try collector.get("/metrics")
        #expect(!metrics.split(separator: "\n").contains { $0.hasPrefix("flowforest_packets_total{") && !$0.contains("mode=\"collect\"") && !$0.hasSuffix(" 0") },
                "packets counted outside collection")
        #expect(try collector.collectedPackets() >= 1000, "the scan's probes were collected")
        probe.stop()
        #expect(collector.stop() == 0, "collector: \(tail(collector.log))")
    }
}
