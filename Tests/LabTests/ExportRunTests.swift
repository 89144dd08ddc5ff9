import FlowForestLab
import Foundation
import Testing

/// A live `flowforest run` exporting IPFIX to nfdump's `nfcapd` while
/// traffic runs: every packet and byte the sensor counted is in the
/// collector's sums. Sensor and collector share the server namespace, so
/// the export goes over that namespace's own loopback.
@Suite("Lab: a live run exports every packet to nfcapd", .serialized, .enabled(if: Command.isRoot, "needs root for network namespaces"))
struct ExportRunTests {
    static let client = "198.18.0.1", server = "198.18.0.2"

    @Test("ping and UDP through a tc sensor: nfdump's sums equal the sensor's totals", arguments: [false, true])
    func liveExport(biflow: Bool) throws {
        let lab = try NetworkLab()
        defer { lab.teardown() }
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let a = try lab.addNamespace("client"), b = try lab.addNamespace("server")
        let (_, dev) = try lab.connect(a, address: "\(Self.client)/24", b, address: "\(Self.server)/24")
        try lab.check(in: b, ["ip", "link", "set", "lo", "up"])

        let files = dir.appendingPathComponent("nfcapd")
        try FileManager.default.createDirectory(at: files, withIntermediateDirectories: true)
        let collectorLog = dir.appendingPathComponent("nfcapd.log")
        let collector = try lab.spawn(in: b, ["/usr/bin/nfcapd", "-b", "127.0.0.1", "-p", "2055", "-w", files.path, "-B", "8388608"],
                                      stdout: collectorLog, stderr: collectorLog)
        func receiveQueue() throws -> Int? {
            let line = try lab.run(in: b, ["ss", "-Huan", "sport", "=", ":2055"]).stdout.split(separator: "\n").first
            return line.flatMap { Int($0.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") }
        }
        try Wait.blockingUntil("nfcapd to listen on 127.0.0.1:2055", timeout: 20, detail: { tail(collectorLog) }) { try receiveQueue() != nil }

        let out = dir.appendingPathComponent("flows.jsonl"), err = dir.appendingPathComponent("run.err")
        let sensor = try lab.spawn(in: b, [
            Binary.path, "run", "--mode", "tc", "--interface", dev, "--print-flows", "json", "--poll-interval", "0.2",
            "--database", dir.appendingPathComponent("run.db").path, "--export-ipfix", "udp://127.0.0.1:2055",
        ] + (biflow ? ["--ipfix-biflow"] : []), stdout: out, stderr: err)
        try Wait.blockingUntil("the run to start capturing", timeout: 30, detail: { tail(err) }) { Wait.file(err, contains: "capture started") }

        try lab.check(in: a, ["ping", "-c", "50", "-i", "0.01", "-W", "2", "-q", Self.server], timeout: 30)
        try lab.check(in: a, ["hping3", "--udp", "-p", "9", "-c", "200", "-i", "u2000", "-d", "300", "-q", Self.server], timeout: 30)
        #expect(lab.stop(sensor, signal: SIGTERM, timeout: 30) == 0, "\(tail(err))")
        // Everything the run sent is read once nfcapd's socket queue is empty; SIGTERM then writes its file.
        try Wait.blockingUntil("nfcapd to read every export datagram", timeout: 20, detail: { tail(collectorLog) }) { try receiveQueue() == 0 }
        #expect(lab.stop(collector, signal: SIGTERM, timeout: 20) == 0, "\(tail(collectorLog))")

        var sensorTotals = (packets: UInt64(0), bytes: UInt64(0))
        for line in try String(contentsOf: out, encoding: .utf8).split(separator: "\n") {
            guard let flow = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], flow["state"] as? String == "ended" else { continue }
            for side in ["fwd", "rev"] {
                let d = flow[side] as? [String: Any]
                sensorTotals.packets += UInt64(d?["packets"] as? Int ?? 0)
                sensorTotals.bytes += UInt64(d?["bytes"] as? Int ?? 0)
            }
        }
        #expect(sensorTotals.packets >= 300, "the sensor saw the pings and the UDP probes: \(sensorTotals)")

        let dump = try Command.check(["nfdump", "-R", files.path, "-q", "-N", "-o", "fmt:%ipkt|%ibyt|%opkt|%obyt"])
        var collected = (packets: UInt64(0), bytes: UInt64(0))
        for line in dump.stdout.split(separator: "\n") {
            let f = line.split(separator: "|").map { UInt64($0.trimmingCharacters(in: .whitespaces)) ?? 0 }
            guard f.count == 4 else { continue }
            collected.packets += f[0] + f[2]
            collected.bytes += f[1] + f[3]
        }
        #expect(collected.packets == sensorTotals.packets && collected.bytes == sensorTotals.bytes,
                "nfcapd \(collected), sensor \(sensorTotals)")
    }
}
