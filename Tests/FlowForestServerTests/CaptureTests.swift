import FlowForestCore
import FlowForestServer
import FlowForestStore
import Foundation
import Hummingbird
import HummingbirdTesting
import PcapCapture
import Testing

/// Writes a classic pcap file (Ethernet) of UDP packets.
func writePcap(_ path: String, packets: [(src: [UInt8], dst: [UInt8], sport: UInt16, dport: UInt16, payload: Int, time: Double)]) throws {
    var data: [UInt8] = []
    func le32(_ v: UInt32) { data += withUnsafeBytes(of: v.littleEndian, Array.init) }
    func le16(_ v: UInt16) { data += withUnsafeBytes(of: v.littleEndian, Array.init) }
    func be16(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xff)] }
    le32(0xa1b2_c3d4); le16(2); le16(4); le32(0); le32(0); le32(65535); le32(1)
    for p in packets {
        let ipLength = 20 + 8 + p.payload
        var frame: [UInt8] = [2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00]
        frame += [0x45, 0] + be16(UInt16(ipLength)) + [0, 0, 0, 0, 64, 17, 0, 0] + p.src + p.dst
        frame += be16(p.sport) + be16(p.dport) + be16(UInt16(8 + p.payload)) + [0, 0]
        frame += [UInt8](repeating: 0x61, count: p.payload)
        le32(UInt32(p.time)); le32(UInt32((p.time - p.time.rounded(.down)) * 1e6))
        le32(UInt32(frame.count)); le32(UInt32(frame.count))
        data += frame
    }
    try Data(data).write(to: URL(fileURLWithPath: path))
}

@Suite("Capture consumer")
struct CaptureTests {
    @Test("a capture source's flows are counted, stored with the sensor name and kept at its end")
    func captureFileIsStored() async throws {
        let db = try await TestDatabase.make()
        defer { db.remove() }
        let path = db.directory.appendingPathComponent("lab.pcap").path
        let t0 = Date().timeIntervalSince1970 - 30
        var packets: [(src: [UInt8], dst: [UInt8], sport: UInt16, dport: UInt16, payload: Int, time: Double)] = []
        for flow in 0..<3 {
            for i in 0..<4 {
                let t = t0 + Double(flow) + Double(i) * 0.01
                packets.append(([198, 18, 0, 1], [198, 18, 0, 2], UInt16(5000 + flow), 53, 30, t))
                packets.append(([198, 18, 0, 2], [198, 18, 0, 1], 53, UInt16(5000 + flow), 100, t + 0.001))
            }
        }
        try writePcap(path, packets: packets)
        let source = PcapFileSource(path: path, logger: quietLogger)
        let (app, parts) = try await buildApplicationParts(configuration: testConfiguration(db), flowSource: source,
                                                           logger: quietLogger, detector: NeverDetects())
        try await app.test(.live) { client in
            try await waitFor("the three captured flows stored") { try await parts.store.flowCount() == 3 }
            let flows = try await client.call("/api/flows", token: db.viewerToken).object()
            let recent = (flows["recent"] as? [[String: Any]]) ?? []
            #expect(recent.count == 3)
            #expect(recent.allSatisfy { $0["sensor"] as? String == "test-sensor" && $0["protocol"] as? String == "udp" })
            #expect(recent.allSatisfy { ($0["fwd"] as? [String: Any])?["packets"] as? Int == 4 && ($0["rev"] as? [String: Any])?["bytes"] as? Int == 4 * 128 })
            let metrics = try await client.call("/metrics", token: db.viewerToken).text
            #expect(metrics.contains(#"flowforest_packets_total{mode="file",direction="forward"} 12"#), "\(metrics.split(separator: "\n").filter { $0.contains("packets_total") })")
            #expect(metrics.contains(#"flowforest_packets_total{mode="file",direction="reverse"} 12"#))
            #expect(metrics.contains(#"flowforest_flows_started_total{mode="file"} 3"#))
        }
    }
}
