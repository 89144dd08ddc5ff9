import FlowForestCore
import FlowForestServer
import FlowForestStore
import Foundation
import Hummingbird
import HummingbirdTesting
import PcapCapture
import Testing

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
