import FlowForestLab
import FlowForestTestSupport
import Foundation
import Testing

/// `flowforest analyze FILE --export-ipfix` replays a capture file into real
/// collectors from Debian on loopback (no namespace, no root): pmacct's
/// `nfacctd` and nfdump's `nfcapd` sum exactly the packets and bytes of
/// every flow direction that analyze reports, long flows included (exported
/// at each active timeout as deltas).
@Suite("analyze --export-ipfix into nfacctd and nfcapd", .serialized)
struct AnalyzeExportTests {
    @Test("nfacctd's sums per flow direction equal analyze's totals")
    func nfacctd() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let capture = try CaptureFile.write(to: dir.appendingPathComponent("traffic.pcap"))
        let collector = try Nfacctd(directory: dir)
        defer { collector.stop() }

        let analyzed = try Self.analyze(capture, into: collector.port)
        let got = try collector.finish(expectingPackets: analyzed.values.reduce(0) { $0 + $1.packets })
        Self.expectEqual(got, analyzed, collector: "nfacctd")
    }

    @Test("nfcapd's sums per flow direction equal analyze's totals, uniflow and biflow", arguments: [false, true])
    func nfcapd(biflow: Bool) throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let capture = try CaptureFile.write(to: dir.appendingPathComponent("traffic.pcap"))
        let files = dir.appendingPathComponent("nfcapd")
        try FileManager.default.createDirectory(at: files, withIntermediateDirectories: true)
        let port = try PeerProcess.freeUDPPort()
        let collector = try PeerProcess.start("/usr/bin/nfcapd", ["-b", "127.0.0.1", "-p", "\(port)", "-w", files.path, "-B", "8388608"],
                                              log: dir.appendingPathComponent("nfcapd.log"))
        defer { collector.stop() }
        try collector.waitForUDPListener(port: port)

        let analyzed = try Self.analyze(capture, into: port, biflow: biflow)
        // nfcapd has read everything once its socket queue is empty; SIGTERM then writes its file.
        try collector.waitForEmptyReceiveQueue(port: port)
        collector.stop()
        Self.expectEqual(try Nfdump.totals(files), analyzed, collector: "nfcapd")
    }

    /// Runs analyze with the export and returns its flows' totals per direction.
    static func analyze(_ capture: URL, into port: UInt16, biflow: Bool = false) throws -> DirectionTotals {
        // A 10 s active timeout splits the capture's 40 s flows into interim exports.
        let result = try Binary.run(["analyze", capture.path, "--format", "json", "--active-timeout", "10",
                                     "--export-ipfix", "udp://127.0.0.1:\(port)"] + (biflow ? ["--ipfix-biflow"] : []))
        try #require(result.status == 0, "analyze: \(result.stderr)")
        let report = try #require(JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        let flows = try #require(report["flows"] as? [[String: Any]])
        #expect(flows.count == CaptureFile.flows, "analyze found \(flows.count) flows in the file, written \(CaptureFile.flows)")
        let totals = Direction.totals(ofFlows: flows)
        #expect(totals.count == CaptureFile.directions, "directions with packets: \(totals.count), written \(CaptureFile.directions)")
        return totals
    }

    static func expectEqual(_ got: DirectionTotals, _ want: DirectionTotals, collector: String) {
        let sum = { (t: DirectionTotals) in t.values.reduce((UInt64(0), UInt64(0))) { ($0.0 + $1.packets, $0.1 + $1.bytes) } }
        #expect(got.count == want.count, "directions: \(collector) \(got.count), analyze \(want.count)")
        #expect(sum(got) == sum(want), "packets and bytes: \(collector) \(sum(got)), analyze \(sum(want))")
        for (key, w) in want.sorted(by: { $0.key < $1.key }) {
            let g = got[key]
            #expect(g?.packets == w.packets && g?.bytes == w.bytes, "\(key): \(collector) \(String(describing: g)), analyze \(w)")
        }
    }
}

/// A capture file of known flows: 60 TCP sessions with payload and FIN, 4
/// TCP transfers of 40 s (a packet every 0.25 s each way), 20 IPv6 UDP
/// request/response pairs, 10 pings of 5 echoes, 30 one-way UDP probes.
enum CaptureFile {
    static let flows = 60 + 4 + 20 + 10 + 30
    /// Flow directions with packets: the one-way probes have one each, the others two.
    static let directions = 2 * (60 + 4 + 20 + 10) + 30
    static let start = 1_795_000_000.0

    static func write(to url: URL) throws -> URL {
        var w = CaptureWriter()
        for i in 0..<60 {
            w.tcpSession(at: start + Double(i) * 0.3, [198, 18, 1, UInt8(1 + i)], [198, 18, 2, 1], sport: UInt16(40000 + i), dport: 443,
                         responseSegments: 1 + i % 4)
        }
        for i in 0..<4 {
            let (c, s, sport) = ([198, 18, 3, UInt8(1 + i)], [198, 18, 2, 2] as [UInt8], UInt16(50000 + i))
            w.tcp(at: start, c, s, sport: sport, dport: 22, flags: 0x02)
            for k in 1...160 {
                let t = start + Double(k) * 0.25
                w.tcp(at: t, c, s, sport: sport, dport: 22, flags: 0x18, payload: 40 + (k * 37 + i) % 1300)
                w.tcp(at: t + 0.01, s, c, sport: 22, dport: sport, flags: 0x10, payload: k % 3 == 0 ? 0 : 500)
            }
        }
        let v6: (UInt8) -> [UInt8] = { [0x20, 0x01, 0, 2] + [UInt8](repeating: 0, count: 11) + [$0] }
        for i in 0..<20 {
            let t = start + 1 + Double(i) * 0.5
            w.udp(at: t, v6(UInt8(1 + i)), v6(0xFE), sport: UInt16(30000 + i), dport: 53, payload: 40 + i)
            w.udp(at: t + 0.002, v6(0xFE), v6(UInt8(1 + i)), sport: 53, dport: UInt16(30000 + i), payload: 200 + i * 3)
        }
        for i in 0..<10 {
            for k in 0..<5 { w.ping(at: start + 2 + Double(i) + Double(k) * 0.1, [198, 18, 4, UInt8(1 + i)], [198, 18, 2, 3]) }
        }
        for i in 0..<30 {
            w.udp(at: start + 3 + Double(i) * 0.05, [198, 18, 5, 1], [198, 18, 2, 4], sport: UInt16(33000 + i), dport: UInt16(7000 + i), payload: 20)
        }
        try w.write(to: url)
        return url
    }
}
