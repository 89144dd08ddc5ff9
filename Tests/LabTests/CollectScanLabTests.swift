import FlowForestLab
import Foundation
import Testing

/// Detection on collected flows alone: an exporter on the lab's sensor veth
/// (pmacct's nfprobe, or a FlowForest sensor with `--export-ipfix`) sends
/// IPFIX of what it sees to `flowforest run --no-capture --collect` (which
/// captures nothing itself) while an attack crosses that veth: nmap
/// SYN-scanning a server (the collector reports the scan and names the
/// exporter), or an upload to the outside host.
@Suite("Lab: attacks detected from collected flows", .serialized, .enabled(if: Command.isRoot, "needs root for network namespaces"))
struct CollectScanLabTests {
    enum Exporter: String, CaseIterable, CustomTestStringConvertible {
        case pmacct, flowforest
        var testDescription: String { rawValue }
    }

    @Test("nmap -sS of 1000 ports, exported as IPFIX by pmacct or a FlowForest sensor: the collector reports a port scan by the attacker",
          arguments: Exporter.allCases)
    func scanFromCollectedFlows(exporter kind: Exporter) throws {
        try withCollectedLab(kind) { traffic, collector in
            let normal = try traffic.startNormalTraffic(seconds: 5)
            try traffic.run(.synScan)
            for p in normal { p.waitUntilExit() }

            // pmacct exports each probe's flow about a second after its RST; the collector scores ended flows and hosts.
            let seen = try Self.waitForAnomaly(collector, "a port scan by \(traffic.attacker)") {
                $0["label"] as? String == "port scan" && $0["src_ip"] as? String == traffic.attacker
            }
            let scan = seen.first { $0["label"] as? String == "port scan" && $0["src_ip"] as? String == traffic.attacker }
            #expect(scan?["sensor"] as? String == "collector")
            // pmacct exports from the namespace's loopback: the anomaly names that exporter, and the API filters by it.
            let exporter = scan?["interface"] as? String
            #expect(exporter == "127.0.0.1" || exporter?.hasPrefix("127.0.0.1%") == true, "the scan names its exporter: \(exporter ?? "nil")")
            func listed(_ path: String, _ key: String) throws -> [[String: Any]] {
                let page = try JSONSerialization.jsonObject(with: Data(try collector.get(path).utf8)) as? [String: Any]
                return page?[key] as? [[String: Any]] ?? []
            }
            let ofExporter = try listed("/api/anomalies?limit=1000&interface=127.0.0.1", "anomalies")
            #expect(ofExporter.contains { $0["id"] as? Int == scan?["id"] as? Int }, "the exporter's anomalies hold the scan")
            #expect(try listed("/api/anomalies?interface=127.0.0.2", "anomalies").isEmpty)
            #expect(try listed("/api/incidents?interface=127.0.0.1", "incidents").contains { $0["label"] as? String == "port scan" },
                    "the exporter's incidents hold the scan's")
            // The daemon captured nothing: every packet it counted came in export records.
            let metrics = try collector.get("/metrics")
            #expect(!metrics.split(separator: "\n").contains { $0.hasPrefix("flowforest_packets_total{") && !$0.contains("mode=\"collect\"") && !$0.hasSuffix(" 0") },
                    "packets counted outside collection")
            #expect(try collector.collectedPackets() >= 1000, "the scan's probes were collected")
        }
    }

    /// An exporter reports a flow once it ends: the upload's one record
    /// arrives some 11 s after its first packet, its whole volume at once.
    @Test("a 40 MB upload at 4 MB/s, exported by pmacct as it ends: the collector reports exfiltration by the uploader")
    func uploadFromCollectedFlows() throws {
        try withCollectedLab(.pmacct) { traffic, collector in
            try traffic.run(.slowExfiltration)
            _ = try Self.waitForAnomaly(collector, "exfiltration by \(traffic.attacker)") {
                $0["label"] as? String == "exfiltration" && $0["src_ip"] as? String == traffic.attacker
            }
        }
    }

    /// An exporter whose active timeout is 3 s sends the same upload as
    /// records a few seconds apart; the collector's table keeps them one
    /// flow (they come less than its idle timeout apart), each later
    /// record's bytes spread from the previous one's last packet rather
    /// than counted as a burst in the last second. (pmacct sends about as
    /// many records with maxlife 30 here, so this does not show that the
    /// pieces came from the active timeout.)
    @Test("the same upload exported with a 3 s active timeout (pmacct's maxlife 3): one flow of its full size, still reported as exfiltration")
    func uploadInPieces() throws {
        try withCollectedLab(.pmacct, maxlife: 3) { traffic, collector in
            try traffic.run(.slowExfiltration)
            _ = try Self.waitForAnomaly(collector, "exfiltration by \(traffic.attacker)") {
                $0["label"] as? String == "exfiltration" && $0["src_ip"] as? String == traffic.attacker
            }
            // One flow of the upload, not a flow per piece (they arrived less
            // than the idle timeout apart), ended once the pieces stop coming.
            var upload: [[String: Any]] = []
            try Wait.blockingUntil("the upload's flow to end", timeout: 60, every: 1, detail: { "\(upload)\n" + tail(collector.log) }) {
                let body = try collector.get("/api/flows?ip=\(traffic.attacker)&since=0&limit=1000")
                let recent = (try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any])?["recent"] as? [[String: Any]] ?? []
                upload = recent.filter { (($0["fwd"] as? [String: Any])?["bytes"] as? Int ?? 0) > 1_000_000 }
                return upload.contains { $0["state"] as? String == "ended" }
            }
            let ids = Set(upload.compactMap { $0["id"] as? Int })
            #expect(ids.count == 1, "one flow, not one per piece: \(upload.map { "\($0["id"] ?? "-") \($0["state"] ?? "-")" })")
            let ended = upload.first { $0["state"] as? String == "ended" }
            #expect((((ended?["fwd"] as? [String: Any])?["bytes"] as? Int) ?? 0) >= 40_000_000, "\(ended ?? [:])")
        }
    }

    /// The collector's anomalies once one satisfies `found` (90 s at most).
    static func waitForAnomaly(_ collector: LabCollector, _ what: String,
                               _ found: @escaping ([String: Any]) -> Bool) throws -> [[String: Any]] {
        var seen: [[String: Any]] = []
        try Wait.blockingUntil("the collector to report \(what)", timeout: 90, every: 0.5,
                               detail: { "anomalies: \(seen.map { "\($0["label"] ?? "-") \($0["src_ip"] ?? "-")" })\n" + tail(collector.log) }) {
            let body = try collector.get("/api/anomalies?limit=1000")
            let page = try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any]
            seen = page?["anomalies"] as? [[String: Any]] ?? []
            return seen.contains(where: found)
        }
        return seen
    }

    /// A model trained on ordinary traffic, the lab, `flowforest run
    /// --no-capture --collect` in the servers' namespace with that model,
    /// and `kind` exporting what the sensor veth carries to it; `body` runs
    /// the traffic, then both stop cleanly and everything is removed.
    func withCollectedLab(_ kind: Exporter, maxlife: Int = 30, _ body: (TrafficLab, LabCollector) throws -> Void) throws {
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
        // Either exporter sends from the namespace's loopback to the collector there.
        var stopExporter: () -> Int32 = { 0 }
        defer { _ = stopExporter() }
        switch kind {
        case .pmacct:
            let probe = try PmacctProbe(lab: traffic.lab, namespace: ns, interface: traffic.sensorInterface, version: 10, directory: dir,
                                        maxlife: maxlife)
            stopExporter = { probe.stop(); return 0 }
            try probe.waitUntilExporting(to: collector, client: traffic.clientsNamespace, server: traffic.server)
        case .flowforest:
            // Learning (no model): the sensor detects nothing itself here; the collector does, from its export.
            let sensor = try LabSensor(lab: traffic.lab, namespace: ns, interface: traffic.sensorInterface, directory: dir,
                                       extraArguments: ["--export-ipfix", "udp://127.0.0.1:\(LabCollector.port)", "--sensor-name", "edge"])
            stopExporter = { sensor.stop() }
        }
        try body(traffic, collector)
        #expect(stopExporter() == 0, "the exporter stops cleanly")
        stopExporter = { 0 }
        #expect(collector.stop() == 0, "collector: \(tail(collector.log))")
    }
}
