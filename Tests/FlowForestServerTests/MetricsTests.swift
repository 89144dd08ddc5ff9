import FlowForestCore
import FlowForestServer
import FlowForestStore
import FlowForestTestSupport
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

@Suite("Prometheus metrics", .serialized)
struct MetricsTests {
    @Test("the live /metrics passes promtool check metrics with no errors or lint warnings")
    func promtoolClean() async throws {
        try await withService(.live) { client, db, _ in
            #expect(try await client.call("/api/traffic", .post, token: db.adminToken, json: goodRecords).status == .accepted)
            // Flow series appear once the ingested flows have gone through the pipeline.
            try await waitFor("the ingested flows counted in /metrics") {
                try await client.call("/metrics", token: db.viewerToken).text.contains("flowforest_flows_started_total")
            }
            let r = try await client.call("/metrics", token: db.viewerToken)
            #expect(r.status == .ok)
            for name in ["flowforest_packets_total", "flowforest_anomalies_total", "flowforest_store_errors_total",
                         "flowforest_score_duration_seconds_bucket", "flowforest_model_age_seconds",
                         "process_start_time_seconds", "flowforest_build_info", "flowforest_flows_started_total"] {
                #expect(r.text.contains(name), "missing \(name)")
            }
            let file = db.directory.appendingPathComponent("metrics.txt").path
            try r.text.write(toFile: file, atomically: true, encoding: .utf8)
            // promtool prints problems and exits 1 for errors; lint warnings are printed too.
            let output = try await ChildProcess.output("/bin/sh", ["-c", "promtool check metrics < '\(file)' 2>&1; echo exit=$?"])
            #expect(output.trimmingCharacters(in: .whitespacesAndNewlines) == "exit=0", "promtool: \(output)")
        }
    }

    @Test("a real Prometheus scrapes the daemon and sees the FlowForest series")
    func prometheusScrapes() async throws {
        try await withService(.live) { client, db, _ in
            let port = try #require(client.port)
            #expect(try await client.call("/api/traffic", .post, token: db.adminToken, json: goodRecords).status == .accepted)
            let promPort = try ThrowawayPostgres.freePort()
            let dir = db.directory.appendingPathComponent("prometheus").path
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try """
                global:
                  scrape_interval: 1s
                scrape_configs:
                  - job_name: flowforest
                    authorization:
                      credentials: \(db.viewerToken)
                    static_configs:
                      - targets: ["127.0.0.1:\(port)"]
                """.write(toFile: "\(dir)/prometheus.yml", atomically: true, encoding: .utf8)
            let prometheus = try ChildProcess.spawn("/usr/bin/prometheus", [
                "--config.file=\(dir)/prometheus.yml", "--storage.tsdb.path=\(dir)/data", "--web.listen-address=127.0.0.1:\(promPort)",
            ])
            // Reaped on its own thread: nothing here waits for the exit.
            defer { prometheus.send(SIGKILL) }
            func query(_ q: String, at time: String? = nil) async throws -> String {
                try await ChildProcess.output("/usr/bin/curl", ["-s", "--max-time", "2", "--get", "--data-urlencode", "query=\(q)"]
                                              + (time.map { ["--data-urlencode", "time=\($0)"] } ?? [])
                                              + ["http://127.0.0.1:\(promPort)/api/v1/query"], acceptExit: [0, 7, 28])
            }
            var answer = ""
            try await waitFor("Prometheus to scrape flowforest_ingest_records_total", seconds: 30) {
                answer = try await query("flowforest_ingest_records_total")
                return answer.contains("\"value\"")
            }
            // The four ingested records, as Prometheus scraped them.
            #expect(answer.contains("\"4\""), "\(answer)")
            // The other series as of that same scrape: at "now", a later scrape that
            // timed out on a loaded machine would have marked them stale.
            let scraped = try #require(answer.firstMatch(of: /"value":\[([0-9.]+),/)?.1, "\(answer)")
            let up = try await query("up{job=\"flowforest\"}", at: String(scraped))
            #expect(up.contains("\"1\""), "\(up)")
            let start = try await query("process_start_time_seconds", at: String(scraped))
            #expect(start.contains("\"value\""), "\(start)")
        }
    }
}
