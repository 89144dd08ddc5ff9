import FlowForestLab
import Foundation
import Testing

/// `flowforest bench` on a short run: every mode it measures accounts for
/// every packet the interface saw, and the JSON holds what the table shows.
@Suite("Lab: flowforest bench", .serialized, .enabled(if: Command.isRoot, "needs root for network namespaces and eBPF"))
struct BenchCommandTests {
    @Test("a short bench run: baseline, tc (with BPF time) and the whole daemon, all packets accounted")
    func shortRun() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let json = dir.appendingPathComponent("bench.json")
        let r = try Binary.run([
            "bench", "--packets", "20000", "--frame-size", "64", "--flows", "10", "--generators", "1",
            "--mode", "tc", "--mode", "daemon", "--json", json.path, "--health-every", "50", "--rounds", "2",
        ], timeout: 300)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("ratio") && r.stdout.contains("tc tcx"), "\(r.stdout)")
        let report = try #require(JSONSerialization.jsonObject(with: Data(contentsOf: json)) as? [String: Any])
        let rows = try #require(report["results"] as? [[String: Any]])
        #expect(rows.map { $0["mode"] as? String } == ["none", "tc", "daemon"])
        // The generator alone before the first mode and after each of the four runs.
        #expect((rows[0]["note"] as? String)?.contains("5 runs") == true, "\(rows[0])")
        #expect(report["rounds"] as? Int == 2)
        for row in rows {
            #expect(row["packets_sent"] as? Int == 20000, "\(row)")
            #expect((row["generator_pps"] as? Double ?? 0) > 0, "\(row)")
        }
        for row in rows.dropFirst() {
            // IPv6 is off in the lab, so the interface sees exactly trafgen's frames.
            #expect(row["packets_seen"] as? Int == 20000, "\(row)")
            #expect(row["packets_accounted"] as? Int == 20000, "\(row)")
            #expect(row["counted_losses"] as? Int == 0, "\(row)")
            #expect((row["rate_ratio"] as? Double ?? 0) > 0, "\(row)")
            // Each mode ran once a round; the row is the round with the median (here the higher) ratio.
            let ratios = row["round_ratios"] as? [Double] ?? []
            #expect(ratios.count == 2 && row["rate_ratio"] as? Double == ratios.max(), "\(row)")
            #expect(row["round_accounted_shares"] as? [Double] == [1, 1], "\(row)")
            // Two cores: a sensor cannot use more than 200 % of one.
            #expect((0...200).contains(row["sensor_cpu_percent"] as? Double ?? -1), "\(row)")
        }
        #expect((rows[1]["bpf_ns_per_packet"] as? Double ?? 0) > 0, "BPF statistics gave no run time: \(rows[1])")
        // The daemon under the traffic: its API answered throughout, and two polls after the traffic every packet was in a flow.
        let load = try #require(rows[2]["daemon_load"] as? [String: Any], "\(rows[2])")
        #expect((load["health_requests"] as? Int ?? 0) > 0, "\(load)")
        #expect(load["health_failures"] as? Int == 0, "\(load)")
        #expect((load["health_p99_ms"] as? Double).map { $0 > 0 && $0 < 2000 } == true, "\(load)")
        #expect(load["accounted_after_two_polls"] as? Double == 1, "\(load)")
        #expect((load["probes"] as? [String: Any])?["health_every_ms"] as? Int == 50, "\(load)")
        #expect((load["detection_ms_per_poll"] as? Double).map { $0 > 0 } == true, "\(load)")
        #expect((rows[2]["peak_rss_mi_b"] as? Double ?? 0) > 0, "the daemon's own memory, not its parent's: \(rows[2])")
        // The bench switches BPF statistics off again.
        #expect(try String(contentsOfFile: "/proc/sys/kernel/bpf_stats_enabled", encoding: .utf8).hasPrefix("0"))
    }

    @Test("peers on the same traffic: the empty tc program, tcpdump, softflowd, pmacctd and nfpcapd each measured, and the run ends")
    func peers() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let json = dir.appendingPathComponent("bench.json")
        let modes = ["tc-empty", "tcpdump", "softflowd", "pmacctd", "pmacctd-large", "nfpcapd"]
        // softflowd closes its inherited descriptors: the bench must still reap it and every later child.
        let r = try Binary.run([
            "bench", "--packets", "20000", "--frame-size", "64", "--flows", "10", "--generators", "1", "--json", json.path,
        ] + modes.flatMap { ["--mode", $0] }, timeout: 400)
        #expect(r.status == 0 && !r.timedOut, "\(r.stderr)")
        let report = try #require(JSONSerialization.jsonObject(with: Data(contentsOf: json)) as? [String: Any])
        let rows = try #require(report["results"] as? [[String: Any]])
        #expect(rows.map { $0["mode"] as? String } == ["none"] + modes)
        for row in rows.dropFirst() {
            #expect(row["packets_seen"] as? Int == 20000, "\(row)")
            #expect((row["rate_ratio"] as? Double ?? 0) > 0, "\(row)")
            let accounted = row["packets_accounted"] as? Int ?? -1
            #expect((0...20000).contains(accounted), "a peer cannot account for more than the interface saw: \(row)")
        }
        // The floor counts nothing; tcpdump's own count of the packets it captured.
        #expect(rows[1]["packets_accounted"] as? Int == 0)
        #expect((rows[2]["packets_accounted"] as? Int ?? 0) > 0, "\(rows[2])")
    }

    @Test("an interrupted bench removes its lab: namespaces, the daemon under test and its work directory")
    func interrupted() async throws {
        func work(_ pid: pid_t) -> URL { FileManager.default.temporaryDirectory.appendingPathComponent("flowforest-bench-daemon-\(pid)") }
        func log(_ pid: pid_t) -> URL { work(pid).appendingPathComponent("run.log") }
        defer { NetworkLab.removeStale() }
        // Enough packets that the daemon still captures when the signal comes.
        let run = try await InterruptedRun(Binary.path, ["bench", "--packets", "2000000", "--frame-size", "64", "--flows", "10",
                                                         "--generators", "1", "--mode", "daemon", "--json", "/dev/null"],
                                           waitingFor: "the bench's daemon to capture", timeout: 120, detail: { tail(log($0)) }) {
            // Interrupted while the daemon captures in the lab.
            ((try? String(contentsOf: log($0), encoding: .utf8)) ?? "").contains("capture started")
        }
        #expect(run.exitedInterrupted, "ended by \(run.process.terminationReason == .exit ? "exit" : "signal") \(run.process.terminationStatus)")
        let tag = "fflab-\(run.pid)x"
        let namespaces = try Command.run(["ip", "netns", "list"], timeout: 10).stdout
        #expect(!namespaces.contains(tag), "namespaces left: \(namespaces)")
        let processes = InterruptedRun.processes(mentioning: tag)
        #expect(processes.isEmpty, "processes left: \(processes)")
        #expect(!FileManager.default.fileExists(atPath: work(run.pid).path), "work directory left: \(work(run.pid).path)")
    }
}
