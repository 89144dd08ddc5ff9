import FlowForestLab
import Foundation
import Testing

/// `flowforest-lab bench-collector` on a short run: both collectors get and
/// keep every record of the replayed set, none is dropped on the socket,
/// and the JSON holds the rates and their ratio.
@Suite("Lab: flowforest-lab bench-collector", .serialized)
struct CollectorBenchCommandTests {
    @Test("a short run: FlowForest and nfcapd each count every record, no socket drops, a ratio")
    func shortRun() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let json = dir.appendingPathComponent("bench.json")
        let r = try Command.run([Binary.lab, "bench-collector", "--flows", "4000", "--rounds", "1", "--json", json.path], timeout: 240)
        #expect(r.status == 0, "\(r.stdout)\n\(r.stderr)")
        let report = try #require(JSONSerialization.jsonObject(with: Data(contentsOf: json)) as? [String: Any])
        let rows = try #require(report["results"] as? [[String: Any]])
        #expect(rows.map { $0["collector"] as? String } == ["flowforest", "nfcapd"])
        for row in rows {
            // 4000 flows, two uniflow records each.
            #expect(row["records"] as? Int == 8000, "\(row)")
            #expect(row["records_counted"] as? Int == 8000, "\(row)")
            #expect(row["socket_drops"] as? Int == 0, "\(row)")
            #expect((row["records_per_second"] as? Double ?? 0) > 0, "\(row)")
        }
        #expect((rows[0]["seconds_to_flows_ended"] as? Double ?? 0) > 0, "FlowForest ended every flow: \(rows[0])")
        #expect((report["ratio"] as? Double ?? 0) > 0, "\(report)")
    }

    @Test("an interrupted bench-collector ends its collector and removes its work directory")
    func interrupted() async throws {
        // The collector's database lies in the work directory, so its command line names it.
        func tag(_ pid: pid_t) -> String { "flowforest-bench-collector-\(pid)-" }
        let run = try await InterruptedRun(Binary.lab, ["bench-collector", "--flows", "200000", "--rounds", "1"],
                                           waitingFor: "the bench's collector to start", timeout: 120) {
            !InterruptedRun.processes(mentioning: tag($0)).isEmpty
        }
        #expect(run.exitedInterrupted)
        let left = InterruptedRun.processes(mentioning: tag(run.pid))
        #expect(left.isEmpty, "processes left: \(left)")
        let temporary = try FileManager.default.contentsOfDirectory(atPath: FileManager.default.temporaryDirectory.path)
        #expect(!temporary.contains { $0.hasPrefix(tag(run.pid)) }, "work directories left: \(temporary.filter { $0.hasPrefix(tag(run.pid)) })")
    }
}
