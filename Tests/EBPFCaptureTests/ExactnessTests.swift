import EBPFCapture
import FlowForestCore
import FlowForestLab
import Foundation
import Testing

/// Under the highest load trafgen reaches (one generator per core), every
/// packet the interface saw is in a drained flow or in a loss counter.
@Suite("eBPF exactness (root, namespace lab)", .serialized, .enabled(if: Command.isRoot))
struct ExactnessTests {
    static let packets = 400_000

    /// Generators that run at once: one per core (the lab's veth has a
    /// receive queue per core, which native XDP needs for two senders).
    static let generators = 2

    @Test("every packet is accounted", arguments: [
        (EBPFAttachMode.tc, EBPFTCHook.auto), (.tc, .clsact), (.xdp, .auto), (.socket, .auto),
    ])
    func everyPacketAccounted(mode: EBPFAttachMode, hook: EBPFTCHook) async throws {
        let lab = try SensorLab()
        defer { lab.lab.teardown() }
        let before = try lab.interfacePackets(rxOnly: mode == .xdp)
        let source = try lab.source(mode, tcHook: hook)
        let result = try await capture(source, in: lab, rxOnly: mode == .xdp) {
            try lab.trafgen(Trafgen.udp(flows: 1000, frameBytes: 64), packets: Self.packets, cpus: Self.generators)
        }
        let seen = try lab.interfacePackets(rxOnly: mode == .xdp) - before
        #expect(seen >= UInt64(Self.packets))
        #expect(result.statistics.packetsSeen == seen)
        #expect(result.explainedPackets == seen)
        #expect(result.statistics.tableFull == 0)
        let udp = result.records.values.filter { $0.ipProtocol == IPProtocol.udp }
        #expect(udp.count == 1000)
        #expect(udp.reduce(0) { $0 + $1.packets } == UInt64(Self.packets))
        #expect(udp.allSatisfy { $0.state == .ended && $0.forward.bytes == 50 * $0.forward.packets && $0.reverse.packets == 0 })
    }

    @Test("a tiny map folds new flows into aggregates and loses nothing uncounted", arguments: [EBPFAttachMode.tc, .xdp, .socket])
    func tinyMap(mode: EBPFAttachMode) async throws {
        let lab = try SensorLab()
        defer { lab.lab.teardown() }
        let before = try lab.interfacePackets(rxOnly: mode == .xdp)
        // 56 flows are admitted (7/8 of 64); the other 1944 fold into one
        // aggregate of their destination.
        let source = try lab.source(mode, mapEntries: 64)
        let result = try await capture(source, in: lab, rxOnly: mode == .xdp) {
            try lab.trafgen(Trafgen.udp(flows: 2000, frameBytes: 64), packets: 100_000, cpus: Self.generators)
        }
        let seen = try lab.interfacePackets(rxOnly: mode == .xdp) - before
        let s = result.statistics
        #expect(s.packetsSeen == seen)
        #expect(result.explainedPackets == seen)
        // No insert failed: the ring buffer carried only packets whose slot
        // another CPU held past the spin bound (a preempted vCPU), if any.
        #expect(s.packetsAggregated > 0 && s.tableFull == 0 && s.ringBufferPackets == s.ringBufferSlotLocked, "\(s)")
        let udp = result.records.values.filter { $0.ipProtocol == IPProtocol.udp }
        #expect(udp.count <= 64, "flows admitted: \(udp.count)")
        let counters = source.kernelCounters
        #expect(counters.aggregated == s.packetsAggregated, "every aggregated packet drained")
        #expect(s.packetsAccounted == counters.packetsAccounted)
    }

    @Test("more victims than aggregates: the ring buffer, then counted losses", arguments: [EBPFAttachMode.tc, .xdp, .socket])
    func aggregateMapFull(mode: EBPFAttachMode) async throws {
        let lab = try SensorLab()
        defer { lab.lab.teardown() }
        let before = try lab.interfacePackets(rxOnly: mode == .xdp)
        // Random destinations in 10.0.0.0/8: each victim needs an aggregate
        // of its own (ports fold into a victim's any-port aggregate, victims
        // do not), so the map's 8192 fill, then a 4 KiB ring buffer too.
        let config = "{ 0x02,0,0,0,0,0x02, 0x02,0,0,0,0,0x01, const16(0x0800), 0x45,0, const16(48), drnd(2), const16(0), "
            + "64,17,0,0, 198,18,0,1, 10,drnd(3), const16(1024), const16(9), const16(28), 0,0, fill(0x55, 20) }"
        let source = try lab.source(mode, mapEntries: 64, ringBufferBytes: 4096)
        let result = try await capture(source, in: lab, rxOnly: mode == .xdp) {
            try lab.trafgen(config, packets: 100_000, cpus: Self.generators)
        }
        let seen = try lab.interfacePackets(rxOnly: mode == .xdp) - before
        let s = result.statistics
        #expect(s.packetsSeen == seen)
        #expect(s.packetsAggregated > 0 && s.ringBufferPackets > 0 && s.tableFull > 0, "\(s)")
        #expect(result.explainedPackets == seen)
        let counters = source.kernelCounters
        #expect(counters.ringBufferSent > 0 && counters.ringBufferFailed == s.tableFull)
        #expect(s.packetsAccounted == counters.packetsAccounted + counters.ringBufferSent)
    }
}
