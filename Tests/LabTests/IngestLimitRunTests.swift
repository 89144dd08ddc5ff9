import FlowForestLab
import Foundation
import Testing

/// Issue 15: `flowforest run --max-flows` did not bound remote ingest. The
/// daemon runs in a namespace of its own, so its port is always free.
@Suite("Lab: run bounds remote ingest by --max-flows", .serialized, .enabled(if: Command.isRoot, "needs root for network namespaces"))
struct IngestLimitRunTests {
    @Test("five new flows posted to a run with --max-flows 3: three open, two packets counted as refused")
    func maxFlowsBoundsIngest() throws {
        let lab = try NetworkLab()
        defer { lab.teardown() }
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let ns = try lab.addNamespace("ingest")
        let database = dir.appendingPathComponent("ingest.db").path
        let added = try Binary.run(["token", "add", "feeder", "--role", "agent", "--database", database])
        let token = try #require(added.stdout.split(separator: " ").last.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) })
        let err = dir.appendingPathComponent("run.err")
        let daemon = try lab.spawn(in: ns, [
            Binary.path, "run", "--no-capture", "--listen", "127.0.0.1:8080", "--database", database,
            "--max-flows", "3", "--open-metrics",
        ], stderr: err)
        defer { _ = lab.stop(daemon, signal: SIGTERM, timeout: 15) }
        try Wait.blockingUntil("flowforest run to serve", timeout: 30, detail: { tail(err) }) { Wait.file(err, contains: "serving") }

        let now = Date().timeIntervalSince1970
        let records = (0..<5).map { i in
            #"{"src_ip": "198.18.0.1", "dst_ip": "198.18.0.2", "src_port": \#(43000 + i), "dst_port": 443, "protocol": "tcp", "length": 60, "timestamp": \#(now), "tcp_flags": ["SYN"]}"#
        }
        let answer = try lab.check(in: ns, [
            "curl", "-sf", "-H", "Authorization: Bearer \(token)", "-H", "Content-Type: application/json",
            "-d", "[" + records.joined(separator: ",") + "]", "http://127.0.0.1:8080/api/traffic",
        ]).stdout
        #expect(answer.contains(#""active_flows":3"#) && answer.contains(#""flows_started":3"#), "\(answer)")
        let metrics = try lab.check(in: ns, ["curl", "-sf", "http://127.0.0.1:8080/metrics"]).stdout
        #expect(metrics.contains("flowforest_ingest_table_full_packets_total 2"), "\(metrics)")
        #expect(lab.stop(daemon, signal: SIGTERM, timeout: 15) == 0, "\(tail(err))")
    }
}
