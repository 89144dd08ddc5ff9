import FlowForestCore
import FlowForestServer
import FlowForestStore
import Foundation
import HummingbirdTesting
import Testing

@Suite("Status endpoint")
struct StatusTests {
    @Test("a capture mode announced at start is listed with its interfaces and zero counts; viewers may read it, nobody else")
    func announcedCapture() async throws {
        let db = try await TestDatabase.make()
        defer { db.remove() }
        let metrics = FlowForestMetrics()
        metrics.recordCapture(mode: "tc", interfaces: ["eth0", "eth1"])
        let (app, parts) = try await buildApplicationParts(configuration: testConfiguration(db), flowSource: nil,
                                                           logger: quietLogger, detector: NeverDetects(), metrics: metrics)
        try await app.test(.router) { client in
            #expect(try await client.call("/api/status").status == .unauthorized)
            let r = try await client.call("/api/status", token: db.viewerToken)
            #expect(r.status == .ok)
            let o = try r.object()
            #expect(o["sensor"] as? String == "test-sensor")
            #expect(o["detector_state"] as? String == "learning")
            #expect(o["model_version"] is NSNull)
            #expect(o["active_flows"] as? Int == 0)
            let captures = try #require(o["captures"] as? [[String: Any]])
            #expect(captures.count == 1)
            #expect(captures.first?["mode"] as? String == "tc")
            #expect(captures.first?["interfaces"] as? [String] == ["eth0", "eth1"])
            #expect(captures.first?["packets_seen"] as? Int == 0)
            #expect(captures.first?["drops"] as? [String: Int] == ["capture": 0, "interface": 0])
        }
        await parts.store.close()
    }

    @Test("a poll's accounting is served as the capture reported it: seen, accounted, drops, losses, packets not in flows")
    func pollAccounting() async throws {
        let db = try await TestDatabase.make()
        defer { db.remove() }
        var s = CaptureStatistics()
        s.packetsSeen = 100
        s.packetsAccounted = 90
        s.bytesAccounted = 9000
        s.notIP = 4
        s.malformed = 2
        s.tableFull = 4
        s.captureDrops = 7
        s.interfaceDrops = 3
        s.ringBufferPackets = 6
        s.ringBufferSlotLocked = 1
        s.flowsStarted = 5
        s.flowsEnded = 2
        let metrics = FlowForestMetrics()
        metrics.recordCapture(mode: "pcap", interfaces: ["eth0"])
        let source = OnePollSource(mode: "pcap", statistics: s, activeFlows: 3)
        let (app, _) = try await buildApplicationParts(configuration: testConfiguration(db), flowSource: source,
                                                       logger: quietLogger, detector: NeverDetects(), metrics: metrics)
        try await app.test(.live) { client in
            try await waitFor("the poll to be accounted") {
                let captures = try await client.call("/api/status", token: db.viewerToken).object()["captures"] as? [[String: Any]]
                return captures?.first?["packets_seen"] as? Int == 100
            }
            let o = try await client.call("/api/status", token: db.viewerToken).object()
            #expect(o["active_flows"] as? Int == 3)
            let c = try #require((o["captures"] as? [[String: Any]])?.first)
            #expect(c["mode"] as? String == "pcap")
            #expect(c["interfaces"] as? [String] == ["eth0"])
            #expect(c["packets_accounted"] as? Int == 90)
            #expect(c["bytes_accounted"] as? Int == 9000)
            #expect(c["drops"] as? [String: Int] == ["capture": 7, "interface": 3])
            #expect(c["losses"] as? [String: Int] == ["table_full": 4])
            #expect(c["not_flows"] as? [String: Int] == ["not_ip": 4, "malformed": 2])
            #expect(c["ring_buffer_packets"] as? Int == 6)
            #expect(c["ring_buffer_slot_locked"] as? Int == 1)
            #expect(c["active_flows"] as? Int == 3)
            #expect(c["flows_started"] as? Int == 5)
            #expect(c["flows_ended"] as? Int == 2)
            let spec = OpenAPIDocument(try await client.call("/openapi.yaml").text)
            #expect(Set(c.keys) == spec.required["CaptureStatus"])
        }
    }
}
