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
        let bench = Process()
        bench.executableURL = URL(fileURLWithPath: Binary.lab)
        bench.arguments = ["bench-collector", "--flows", "200000", "--rounds", "1"]
        bench.standardOutput = FileHandle.nullDevice
        bench.standardError = FileHandle.nullDevice
        try Command.startUnblocked(bench)
        defer { if bench.isRunning { Command.killWithCommand(bench) } }
        // The collector's database lies in the work directory, so its command line names it.
        let tag = "flowforest-bench-collector-\(bench.processIdentifier)-"
        try await Wait.until("the bench's collector to start", timeout: 120) {
            !bench.isRunning || !BenchCommandTests.processes(mentioning: tag).isEmpty
        }
        try #require(bench.isRunning, "the bench ended before it was interrupted (status \(bench.terminationStatus))")
        kill(bench.processIdentifier, SIGTERM)
        try await Wait.until("the bench to exit", timeout: 60) { !bench.isRunning }
        #expect(bench.terminationReason == .exit && bench.terminationStatus == 130)
        let left = BenchCommandTests.processes(mentioning: tag)
        #expect(left.isEmpty, "processes left: \(left)")
        let temporary = try FileManager.default.contentsOfDirectory(atPath: FileManager.default.temporaryDirectory.path)
        #expect(!temporary.contains { $0.hasPrefix(tag) }, "work directories left: \(temporary.filter { $0.hasPrefix(tag) })")
    }
}
