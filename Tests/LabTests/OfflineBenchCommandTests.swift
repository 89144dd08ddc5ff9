import FlowForestLab
import Foundation
import Testing

/// `flowforest-lab bench-offline` on a small file: the file holds what the
/// bench says it wrote, FlowForest and nfpcapd each count every packet of
/// it and every byte (FlowForest also every flow), and the JSON holds the rates
/// and their ratio. No timing is asserted: the figures are the bench's.
@Suite("Lab: flowforest-lab bench-offline", .serialized)
struct OfflineBenchCommandTests {
    @Test("a small run: exact counts from both tools, a ratio, the file kept in --out")
    func smallRun() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let json = dir.appendingPathComponent("bench.json")
        let r = try Command.run([Binary.lab, "bench-offline", "--packets", "20000", "--flows", "500", "--rounds", "1",
                                 "--out", dir.path, "--json", json.path], timeout: 240)
        #expect(r.status == 0, "\(r.stdout)\n\(r.stderr)")
        let report = try #require(JSONSerialization.jsonObject(with: Data(contentsOf: json)) as? [String: Any])
        let capture = try #require(report["capture"] as? [String: Any])
        #expect(capture["packets"] as? Int == 20_000 && capture["flows"] as? Int == 500, "\(capture)")
        let fileBytes = try #require(capture["file_bytes"] as? Int)
        let onDisk = try FileManager.default.attributesOfItem(atPath: dir.appendingPathComponent("offline-bench.pcap").path)[.size] as? Int
        #expect(onDisk == fileBytes)
        let rows = try #require(report["results"] as? [[String: Any]])
        #expect(rows.map { $0["tool"] as? String } == ["flowforest", "nfpcapd"])
        for row in rows {
            #expect(row["packets_counted"] as? Int == 20_000, "\(row)")
            #expect(row["bytes_counted"] as? Int == capture["bytes"] as? Int, "\(row)")
            #expect(row["exact"] as? Bool == true, "\(row)")
            #expect((row["packets_per_second"] as? Double ?? 0) > 0, "\(row)")
        }
        #expect(rows[0]["flows_counted"] as? Int == 500, "\(rows[0])")
        #expect(report["counts_exact"] as? Bool == true)
        #expect((report["ratio"] as? Double ?? 0) > 0, "\(report)")
    }

    @Test("the same seed writes the same file; TCP and UDP flows both present")
    func deterministic() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (a, b) = (dir.appendingPathComponent("a.pcap"), dir.appendingPathComponent("b.pcap"))
        let first = try OfflineBenchCapture(packets: 4000, flows: 100).write(to: a)
        let second = try OfflineBenchCapture(packets: 4000, flows: 100).write(to: b)
        #expect(first == second)
        #expect(try Data(contentsOf: a) == Data(contentsOf: b))
        #expect(first.packets == 4000 && first.flows == 100 && first.tcpFlows > 0 && first.udpFlows > 0, "\(first)")
        #expect(first.spanSeconds > 10 && first.spanSeconds <= OfflineBenchCapture.spanSeconds, "\(first)")
    }

    @Test("an interrupted bench-offline ends the tool it runs and removes its capture and work directories")
    func interrupted() async throws {
        // Each tool reads the capture in the bench's temporary directory, so its command line names it.
        func dir(_ pid: pid_t) -> String { "flowforest-bench-offline-\(pid)" }
        let run = try await InterruptedRun(Binary.lab, ["bench-offline", "--packets", "400000", "--flows", "10000", "--rounds", "1"],
                                           waitingFor: "the bench to start a tool on its capture", timeout: 180) {
            !InterruptedRun.processes(mentioning: dir($0) + "/").isEmpty
        }
        #expect(run.exitedInterrupted)
        let left = InterruptedRun.processes(mentioning: dir(run.pid) + "/")
        #expect(left.isEmpty, "processes left: \(left)")
        let path = FileManager.default.temporaryDirectory.appendingPathComponent(dir(run.pid)).path
        #expect(!FileManager.default.fileExists(atPath: path), "work directory left: \(path)")
    }
}
