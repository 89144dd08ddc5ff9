import EBPFCapture
import FlowForestCore
import FlowForestLab
import Foundation
import Testing

/// A sensor on both interfaces of a router counts each forwarded packet
/// once, where it entered, and says how many second sights it skipped.
@Suite("eBPF on a gateway (root, namespace lab)", .serialized, .enabled(if: Command.isRoot))
struct GatewayTests {
    static let pings = 50

    @Test("a forwarded ping is one flow with each packet counted once", arguments: [EBPFAttachMode.tc, .socket])
    func forwardedOnce(mode: EBPFAttachMode) async throws {
        let lab = try GatewayLab()
        defer { lab.lab.teardown() }
        let before = try lab.gatewayPackets()
        let source = try lab.source(mode)
        let collector = LiveCollector(source)
        var seen: UInt64 = 0
        do {
            try await onThread {
                try lab.lab.check(in: lab.client, ["ping", "-c", "\(Self.pings)", "-i", "0.01", "-W", "2", "-q", lab.serverAddress])
            }
            try await Wait.until("the sensor to report every packet the gateway's interfaces counted", timeout: 30,
                                 detail: { "\(collector.snapshot.statistics) of \(seen)" }) {
                seen = try lab.gatewayPackets() - before
                let r = collector.snapshot
                return r.statistics.packetsSeen >= seen && r.explainedPackets == r.statistics.packetsSeen
            }
        } catch {
            source.stop()
            _ = try? await collector.value
            throw error
        }
        source.stop()
        let result = try await collector.value
        // A packet the interfaces count after the program is detached (the
        // namespace's own neighbour traffic) is one the sensor cannot see.
        let seenAfterStop = try lab.gatewayPackets() - before
        let icmp = result.records.values.filter { $0.ipProtocol == IPProtocol.icmp }
        #expect(icmp.count == 1, "one ICMP flow, got \(icmp)")
        let flow = try #require(icmp.first)
        #expect(flow.sourceAddress == IPAddress(lab.clientAddress))
        #expect(flow.destinationAddress == IPAddress(lab.serverAddress))
        #expect(flow.forward.packets == UInt64(Self.pings), "echo requests counted once each")
        #expect(flow.reverse.packets == UInt64(Self.pings), "echo replies counted once each")
        #expect(flow.interfaceName == lab.clientSide, "marked where its first packet entered")
        // Each request left through the server side and each reply through
        // the client side after being counted on the way in.
        #expect(result.statistics.forwardedSeen == UInt64(2 * Self.pings))
        #expect(result.statistics.packetsSeen >= seen && result.statistics.packetsSeen <= seenAfterStop,
                "seen \(result.statistics.packetsSeen), interfaces \(seen)...\(seenAfterStop)")
        #expect(result.explainedPackets == result.statistics.packetsSeen)
        #expect(result.statistics.packetsAggregated == 0 && result.statistics.tableFull == 0)
    }
}
