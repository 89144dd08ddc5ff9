import EBPFCapture
import FlowForestCore
import FlowForestLab
import Foundation
import Testing

/// The flow table's index follows its flows: the small index while they
/// are few, the --map-size one once they are many (the program spilling
/// into it when the small one fills between two polls), the small one again
/// once they ended. No packet and no flow is lost or split on the way.
@Suite("eBPF flow index (root, namespace lab)", .serialized, .enabled(if: Command.isRoot))
struct FlowIndexTests {
    static let burstFlows = 20_000
    static let burstPackets = 200_000
    static let laterFlows = 1_000
    static let laterPackets = 50_000

    @Test("grows past the small index, shrinks after, every packet in its one flow", arguments: [EBPFAttachMode.tc, .socket])
    func growsAndShrinks(mode: EBPFAttachMode) async throws {
        let lab = try SensorLab()
        defer { lab.lab.teardown() }
        let before = try lab.interfacePackets()
        // Polls 2 s apart, so the burst's 20,000 flows arrive between two of
        // them: 16,384 fill the small index and the program puts the rest in
        // the large one (the drainer then moves at once, between polls).
        // Flows end 5 s after their last packet, so at least one poll
        // reports the large index before they end.
        let timeouts = FlowTableConfiguration(idleTimeoutNs: 5_000_000_000, activeTimeoutNs: 60_000_000_000)
        let source = try lab.source(mode, pollInterval: 2, flowTable: timeouts)
        let collector = LiveCollector(source)
        let result = try await collector.stop(source) {
            try await collector.wait(for: "the first poll") { $0.batches >= 1 }
            #expect(source.kernelCounters.largeIndex == false, "a new table starts on the small index")
            try await onThread { try lab.trafgen(Trafgen.udp(flows: Self.burstFlows, frameBytes: 64), packets: Self.burstPackets, cpus: 2) }
            try await collector.wait(for: "the index to grow") { _ in source.kernelCounters.largeIndex }
            let grown = source.kernelCounters
            #expect(grown.indexSpills > 0, "the burst filled the small index before a poll: \(grown)")
            #expect(grown.indexMoves == 1)
            try await collector.wait(for: "the burst's flows to end and the index to shrink", timeout: 60) { r in
                r.statistics.flowsEnded >= UInt64(Self.burstFlows) && !source.kernelCounters.largeIndex
            }
            #expect(source.kernelCounters.indexMoves == 2)
            let sent = try lab.interfacePackets()
            try await onThread { try lab.trafgen(Trafgen.udp(flows: Self.laterFlows, frameBytes: 64), packets: Self.laterPackets, cpus: 2) }
            try await lab.waitUntilSeen(collector, since: sent, by: "\(mode)")
        }
        let seen = try lab.interfacePackets() - before
        let s = result.statistics
        #expect(s.packetsSeen == seen)
        #expect(result.explainedPackets == seen)
        #expect(s.tableFull == 0 && s.packetsAggregated == 0 && s.ringBufferPackets == s.ringBufferSlotLocked, "\(s)")
        let udp = result.records.values.filter { $0.ipProtocol == IPProtocol.udp }
        // One record per flow and burst: a flow found in neither index while
        // its key moved would have been inserted twice and show as two.
        #expect(udp.count == Self.burstFlows + Self.laterFlows)
        #expect(udp.reduce(0) { $0 + $1.packets } == UInt64(Self.burstPackets + Self.laterPackets))
        let perFlow = Dictionary(grouping: udp) { "\($0.sourceAddress) \($0.sourcePort) \($0.destinationAddress) \($0.destinationPort)" }
            .mapValues(\.count)
        #expect(perFlow.count == Self.burstFlows)
        #expect(perFlow.values.filter { $0 == 2 }.count == Self.laterFlows)
    }
}
