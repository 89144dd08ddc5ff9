import CoreMetrics
import FlowForestCollector
import FlowForestCore
import FlowForestIPFIX
import FlowForestLab
import FlowForestTestSupport
import Foundation
import Logging
import Testing

/// A third-party exporter live over UDP: FlowForest's flows stored by nfdump's
/// `nfcapd`, then sent by nfdump's `nfreplay` as NetFlow v5 and v9 into the
/// collector source. The collector's flows carry the original totals.
@Suite("nfdump's nfreplay (NetFlow v5, v9) into the collector", .serialized)
struct NfreplayPeerTests {
    static let nfcapd = "/usr/bin/nfcapd", nfreplay = "/usr/bin/nfreplay"

    /// Runs nfcapd on `port` while `send` runs; returns the file it wrote.
    static func capture(into dir: URL, port: UInt16, send: () throws -> Void) throws -> URL {
        let p = try ChildProcess.spawn(nfcapd, ["-b", "127.0.0.1", "-p", "\(port)", "-w", dir.path, "-B", "8388608"])
        defer { p.terminate() }
        func socketLine() throws -> [Substring]? {
            try Command.check(["ss", "-Hlun", "sport = :\(port)"]).stdout.split(separator: "\n").first?.split(separator: " ")
        }
        try Wait.blockingUntil("nfcapd to listen on \(port)", timeout: 10) { try socketLine() != nil }
        try send()
        // Everything sent has been read once nfcapd's socket queue is empty; SIGTERM then writes the file.
        try Wait.blockingUntil("nfcapd to read every datagram", timeout: 20) { try socketLine().map { $0.count > 1 && $0[1] == "0" } ?? false }
        p.terminate()
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasPrefix("nfcapd.") }
        guard let name = files.first else { throw CocoaError(.fileNoSuchFile) }
        return dir.appendingPathComponent(name)
    }

    @Test("every IPv4 flow (v5) or every flow (v9) arrives with the sensor's totals", arguments: [5, 9])
    func replay(version: Int) async throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.nfreplay), "nfdump is not installed (make deps)")
        var logger = Logger(label: "nfreplay-test")
        logger.logLevel = .warning
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("flowforest-nfreplay-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }

        let now = UInt64(Date().timeIntervalSince1970 * 1e9)
        // NetFlow v5 carries IPv4 only.
        let sent = RoundTripTests.traffic(nowNs: now).filter { version == 9 || $0.sourceAddress.isIPv4 }
        let capturePort = RoundTripTests.freeUDPPort()
        let stored = try Self.capture(into: dir, port: capturePort) {
            let exporter = try IPFIXExporter(destination: ExportDestination("udp://127.0.0.1:\(capturePort)"),
                                             metricsFactory: NOOPMetricsHandler.instance, logger: logger)
            exporter.export(sent, wait: true)
            exporter.finish()
        }

        let port = RoundTripTests.freeUDPPort()
        let source = try CollectorSource(endpoints: [CollectorEndpoint("udp://127.0.0.1:\(port)")], pollIntervalNs: 50_000_000,
                                         metricsFactory: NOOPMetricsHandler.instance, logger: logger)
        let expectedPackets = sent.filter { $0.state == .ended }.reduce(0) { $0 + $1.packets }
        let collected = Task { () throws -> [FlowRecord] in
            var records: [FlowRecord] = []
            for try await batch in source.batches() {
                records += batch.records
                if batch.statistics.packetsAccounted >= expectedPackets { source.stop() }
            }
            return records
        }
        let replay = try Command.run([Self.nfreplay, "-r", stored.path, "-H", "127.0.0.1", "-p", "\(port)", "-v", "\(version)", "-d", "100"],
                                     timeout: 60)
        let deadline = Task { try await Task.sleep(for: .seconds(20)); source.stop() }
        let received = try await collected.value
        deadline.cancel()
        #expect(replay.status == 0, "nfreplay: \(replay.stderr)")

        let want = RoundTripTests.totals(sent), got = RoundTripTests.totals(received)
        #expect(got.count == want.count, "flows: collector \(got.count), sensor \(want.count)")
        for (key, totals) in want {
            #expect(got[key] == totals, "\(key): collector \(got[key] ?? []), sensor \(totals)")
        }
    }
}
