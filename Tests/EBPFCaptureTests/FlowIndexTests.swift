import EBPFCapture
import FlowForestCore
import FlowForestLab
import Foundation
import Testing

/// The flow table's index follows its flows: the small index while they
/// are few, the --map-size one once they are many (at once when the small
/// one fills between two checks: new flows' packets are aggregated
/// meanwhile, as during a move), the small one again once they ended. No
/// packet is lost and no flow split on the way.
@Suite("eBPF flow index (root, namespace lab)", .serialized, .enabled(if: Command.isRoot))
struct FlowIndexTests {
    static let burstFlows = 20_000
    static let burstPackets = 200_000
    static let laterFlows = 1_000
    static let laterPackets = 50_000

    @Test("grows past the small index, shrinks after, every packet in one place and no flow split", arguments: [EBPFAttachMode.tc, .socket])
    func growsAndShrinks(mode: EBPFAttachMode) async throws {
        let lab = try SensorLab()
        defer { lab.lab.teardown() }
        let before = try lab.interfacePackets()
        // Polls 2 s apart; the drainer also checks between them, every 20
        // ms, and moves to the large index at 12,288 flows. The burst's
        // 20,000 flows may still fill the small index first: new flows'
        // packets are then folded into an aggregate until the move, as
        // during it. Flows end 5 s after their last packet, so at least one
        // poll reports the large index before they end.
        let timeouts = FlowTableConfiguration(idleTimeoutNs: 5_000_000_000, activeTimeoutNs: 60_000_000_000)
        let source = try lab.source(mode, pollInterval: 2, flowTable: timeouts)
        let collector = LiveCollector(source)
        var burst = CaptureResult()
        let result = try await collector.stop(source) {
            try await collector.wait(for: "the first poll") { $0.batches >= 1 }
            #expect(source.kernelCounters.largeIndex == false, "a new table starts on the small index")
            try await onThread { try lab.trafgen(Trafgen.udp(flows: Self.burstFlows, frameBytes: 64), packets: Self.burstPackets, cpus: 2) }
            try await collector.wait(for: "the index to grow") { _ in source.kernelCounters.largeIndex }
            #expect(source.kernelCounters.indexMoves == 1)
            try await collector.wait(for: "the burst's flows to end and the index to shrink", timeout: 60) { r in
                r.statistics.flowsEnded >= r.statistics.flowsStarted && !source.kernelCounters.largeIndex
            }
            #expect(source.kernelCounters.indexMoves == 2)
            burst = collector.snapshot
            let sent = try lab.interfacePackets()
            try await onThread { try lab.trafgen(Trafgen.udp(flows: Self.laterFlows, frameBytes: 64), packets: Self.laterPackets, cpus: 2) }
            try await lab.waitUntilSeen(collector, since: sent, by: "\(mode)")
        }
        let counters = source.kernelCounters
        let seen = try lab.interfacePackets() - before
        let s = result.statistics
        #expect(s.packetsSeen == seen)
        #expect(result.explainedPackets == seen)
        // UDP: what the full small index or a move turned away was aggregated, nothing else was.
        #expect(s.tableFull == 0 && s.ringBufferPackets == s.ringBufferSlotLocked, "\(s)")
        #expect(s.packetsAggregated == counters.indexSpills + counters.indexDeferred, "\(s), \(counters)")

        // The burst: each flow at most once (a flow found in neither index
        // while its key moved would have been inserted twice and show as two
        // records), its packets in flows or in the aggregate.
        let burstUDP = burst.records.values.filter { $0.ipProtocol == IPProtocol.udp }
        #expect(Set(burstUDP.map(Self.endpoints)).count == burstUDP.count)
        #expect(burstUDP.count <= Self.burstFlows && burstUDP.count + Int(s.packetsAggregated) >= Self.burstFlows)
        #expect(burstUDP.reduce(0) { $0 + $1.packets } + burst.statistics.packetsAggregated == UInt64(Self.burstPackets))
        // Later traffic on the small index again: one flow each, every packet in it.
        let later = result.records.values.filter { $0.ipProtocol == IPProtocol.udp && burst.records[$0.id] == nil }
        #expect(later.count == Self.laterFlows && Set(later.map(Self.endpoints)).count == Self.laterFlows)
        #expect(later.reduce(0) { $0 + $1.packets } == UInt64(Self.laterPackets))
    }

    static func endpoints(_ r: FlowRecord) -> String {
        "\(r.sourceAddress) \(r.sourcePort) \(r.destinationAddress) \(r.destinationPort)"
    }
}
