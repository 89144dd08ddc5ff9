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

/// A pcap file (Ethernet) written byte by byte: 60 TCP sessions with payload
/// and FIN, 4 TCP transfers of 40 s (a packet every 0.25 s each way), 20 IPv6
/// UDP request/response pairs, 10 pings of 5 echoes, 30 one-way UDP probes.
enum CaptureFile {
    static let flows = 60 + 4 + 20 + 10 + 30
    /// Flow directions with packets: the one-way probes have one each, the others two.
    static let directions = 2 * (60 + 4 + 20 + 10) + 30
    static let start = 1_795_000_000.0

    static func write(to url: URL) throws -> URL {
        var packets: [(Double, [UInt8])] = []
        for i in 0..<60 {
            let (c, s, sp) = ([198, 18, 1, UInt8(1 + i)], [198, 18, 2, 1] as [UInt8], UInt16(40000 + i))
            let t = start + Double(i) * 0.3
            let steps: [(Double, Bool, UInt8, Int)] = [
                (0, true, 0x02, 0), (0.001, false, 0x12, 0), (0.002, true, 0x10, 0), (0.003, true, 0x18, 100 + i * 7),
                (0.004, false, 0x18, 1200), (0.005, false, 0x18, 300 + i * 13), (0.006, true, 0x11, 0), (0.007, false, 0x11, 0), (0.008, true, 0x10, 0),
            ]
            for (dt, out, flags, payload) in steps {
                packets.append((t + dt, out ? ipv4(c, s, tcp(sp, 443, flags, payload)) : ipv4(s, c, tcp(443, sp, flags, payload))))
            }
        }
        for i in 0..<4 {
            let (c, s, sp) = ([198, 18, 3, UInt8(1 + i)], [198, 18, 2, 2] as [UInt8], UInt16(50000 + i))
            packets.append((start, ipv4(c, s, tcp(sp, 22, 0x02, 0))))
            for k in 1...160 {
                let t = start + Double(k) * 0.25
                packets.append((t, ipv4(c, s, tcp(sp, 22, 0x18, 40 + (k * 37 + i) % 1300))))
                packets.append((t + 0.01, ipv4(s, c, tcp(22, sp, 0x10, k % 3 == 0 ? 0 : 500))))
            }
        }
        for i in 0..<20 {
            let (c, s) = ([0x20, 0x01, 0, 2] + [UInt8](repeating: 0, count: 11) + [UInt8(1 + i)], [0x20, 0x01, 0, 2] + [UInt8](repeating: 0, count: 11) + [0xFE])
            let t = start + 1 + Double(i) * 0.5
            packets.append((t, ipv6(c, s, udp(UInt16(30000 + i), 53, 40 + i))))
            packets.append((t + 0.002, ipv6(s, c, udp(53, UInt16(30000 + i), 200 + i * 3))))
        }
        for i in 0..<10 {
            let (c, s) = ([198, 18, 4, UInt8(1 + i)] as [UInt8], [198, 18, 2, 3] as [UInt8])
            for k in 0..<5 {
                let t = start + 2 + Double(i) + Double(k) * 0.1
                packets.append((t, ipv4(c, s, [8, 0, 0, 0, 0, UInt8(i), 0, UInt8(k)] + [UInt8](repeating: 0, count: 56), proto: 1)))
                packets.append((t + 0.001, ipv4(s, c, [0, 0, 0, 0, 0, UInt8(i), 0, UInt8(k)] + [UInt8](repeating: 0, count: 56), proto: 1)))
            }
        }
        for i in 0..<30 {
            packets.append((start + 3 + Double(i) * 0.05, ipv4([198, 18, 5, 1], [198, 18, 2, 4], udp(UInt16(33000 + i), UInt16(7000 + i), 20), proto: 17)))
        }
        var file = Bytes()
        file.le32(0xA1B2_C3D4); file.le16(2); file.le16(4); file.le32(0); file.le32(0); file.le32(65535); file.le32(1)
        for (t, frame) in packets.sorted(by: { $0.0 < $1.0 }) {
            let frame = [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1] + (frame.first! >> 4 == 6 ? [0x86, 0xDD] : [0x08, 0x00]) + frame
            file.le32(UInt32(t)); file.le32(UInt32((t - t.rounded(.down)) * 1_000_000)); file.le32(UInt32(frame.count)); file.le32(UInt32(frame.count))
            file.bytes += frame
        }
        try Data(file.bytes).write(to: url)
        return url
    }

    struct Bytes {
        var bytes: [UInt8] = []
        mutating func le16(_ v: UInt16) { bytes += [UInt8(v & 0xFF), UInt8(v >> 8)] }
        mutating func le32(_ v: UInt32) { for s in stride(from: 0, through: 24, by: 8) { bytes.append(UInt8(truncatingIfNeeded: v >> UInt32(s))) } }
    }

    static func be16(_ v: Int) -> [UInt8] { [UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }

    static func tcp(_ sport: UInt16, _ dport: UInt16, _ flags: UInt8, _ payload: Int) -> [UInt8] {
        be16(Int(sport)) + be16(Int(dport)) + [0, 0, 0, 1, 0, 0, 0, 1, 0x50, flags] + be16(64240) + [0, 0, 0, 0] + [UInt8](repeating: 0xAB, count: payload)
    }

    static func udp(_ sport: UInt16, _ dport: UInt16, _ payload: Int) -> [UInt8] {
        be16(Int(sport)) + be16(Int(dport)) + be16(8 + payload) + [0, 0] + [UInt8](repeating: 0xCD, count: payload)
    }

    static func ipv4(_ src: [UInt8], _ dst: [UInt8], _ l4: [UInt8], proto: UInt8 = 6) -> [UInt8] {
        [0x45, 0] + be16(20 + l4.count) + [0, 0, 0x40, 0, 64, proto, 0, 0] + src + dst + l4
    }

    static func ipv6(_ src: [UInt8], _ dst: [UInt8], _ l4: [UInt8]) -> [UInt8] {
        [0x60, 0, 0, 0] + be16(l4.count) + [17, 64] + src + dst + l4
    }
}
