import EBPFCapture
import FlowForestCore
import FlowForestLab
import Foundation
import Testing

/// While capture runs, flows are reported as they change (totals so far),
/// checkpointed at the active timeout, and ended on idle or TCP close with
/// their kernel entries taken out of the map.
@Suite("eBPF flow lifecycle (root, namespace lab)", .serialized, .enabled(if: Command.isRoot))
struct FlowLifecycleTests {
    @Test("active, interim and ended records while running", arguments: [EBPFAttachMode.tc, .socket])
    func lifecycle(mode: EBPFAttachMode) async throws {
        let lab = try SensorLab()
        defer { lab.lab.teardown() }
        let timeouts = FlowTableConfiguration(idleTimeoutNs: 3_000_000_000, activeTimeoutNs: 2_000_000_000, tcpCloseTimeoutNs: 500_000_000)
        let source = try lab.source(mode, pollInterval: 0.2, flowTable: timeouts)
        let server = try lab.lab.spawn(in: lab.sensor, ["nc", "-l", "-k", "198.18.0.2", "5002"])
        defer { lab.lab.stop(server, signal: SIGKILL) }
        let collector = LiveCollector(source)
        try await onThread {
            // A short UDP burst that then goes quiet: ends on idle.
            try lab.trafgen("{ eth(da=02:00:00:00:00:02, sa=02:00:00:00:00:01), ipv4(sa=198.18.0.1, da=198.18.0.2), udp(sp=3000, dp=3001), fill(0, 20) }", packets: 25)
            // A TCP connection that closes: ends on FIN both ways.
            try lab.lab.check(in: lab.gen, ["sh", "-c", "head -c 5000 /dev/zero | nc -N -w 5 198.18.0.2 5002"])
            // A ping lasting past the active timeout: checkpointed while open.
            try lab.lab.check(in: lab.gen, ["ping", "-c", "14", "-i", "0.25", "198.18.0.2"])
        }
        // The burst ends on idle (3 s) and the connection on close while the capture runs.
        _ = try await collector.stop(source) {
            try await collector.wait(for: "the UDP burst to end on idle and the TCP connection on close") { _ in
                let records = collector.batches.flatMap(\.records)
                return records.contains { $0.ipProtocol == IPProtocol.udp && $0.sourcePort == 3000 && $0.endReason == .idle }
                    && records.contains { $0.ipProtocol == IPProtocol.tcp && $0.destinationPort == 5002 && $0.endReason == .tcpClose }
            }
        }
        let batches = collector.batches
        let all = batches.flatMap(\.records)

        let udp = all.filter { $0.ipProtocol == IPProtocol.udp && $0.sourcePort == 3000 }
        let udpEnd = try #require(udp.last)
        #expect(udpEnd.state == .ended)
        #expect(udpEnd.endReason == .idle)
        #expect(udpEnd.forward.packets == 25)
        #expect(udp.filter { $0.state == .ended }.count == 1)

        let tcp = all.filter { $0.ipProtocol == IPProtocol.tcp && $0.destinationPort == 5002 }
        let tcpEnd = try #require(tcp.last)
        #expect(tcpEnd.endReason == .tcpClose)
        #expect(tcpEnd.forward.synCount == 1 && tcpEnd.reverse.synAckCount == 1)
        #expect(tcpEnd.forward.finCount == 1 && tcpEnd.reverse.finCount == 1)
        #expect(tcpEnd.handshakeCompleted)
        // Active records before the end carry growing totals, never deltas.
        let counts = tcp.map(\.packets)
        #expect(counts == counts.sorted())

        let icmp = all.filter { $0.ipProtocol == IPProtocol.icmp && $0.sourcePort == 8 }
        #expect(icmp.contains { $0.state == .interim })
        #expect(icmp.contains { $0.state == .active })
        #expect(Set(icmp.map(\.id)).count == 1)
        let icmpEnd = try #require(icmp.last)
        #expect(icmpEnd.forward.packets == 14 && icmpEnd.reverse.packets == 14)

        // Everything ended before the stop was taken out of the map: the
        // final batch holds only what was still open then.
        let final = try #require(batches.last)
        #expect(final.records.allSatisfy { $0.state == .ended && $0.endReason == .shutdown })
        #expect(!final.records.contains { $0.id == udpEnd.id || $0.id == tcpEnd.id })
        #expect(final.activeFlows == 0)
    }
    /// A closed TCP flow whose packets keep coming at the generator's rate,
    /// with no close timeout: the drainer ends it at every poll while the
    /// program adds to it, mostly through its slot hint. Each end takes the
    /// flow's final figures and the packets after it start the flow anew;
    /// across all of its records every packet is counted once.
    @Test("a flow ended at every poll while its packets keep coming loses none", arguments: [EBPFAttachMode.tc, .xdp])
    func endedUnderTraffic(mode: EBPFAttachMode) async throws {
        let lab = try SensorLab()
        defer { lab.lab.teardown() }
        let packets = 1_000_000
        let timeouts = FlowTableConfiguration(idleTimeoutNs: 15_000_000_000, activeTimeoutNs: 60_000_000_000, tcpCloseTimeoutNs: 0)
        let source = try lab.source(mode, pollInterval: 0.05, flowTable: timeouts)
        let before = try lab.interfacePackets(rxOnly: mode == .xdp)
        let result = try await capture(source, in: lab, rxOnly: mode == .xdp) {
            try lab.trafgen("{ eth(da=02:00:00:00:00:02, sa=02:00:00:00:00:01), ipv4(sa=198.18.0.1, da=198.18.0.2), "
                + "tcp(sp=4000, dp=4001, rst), fill(0, 10) }", packets: packets)
        }
        let seen = try lab.interfacePackets(rxOnly: mode == .xdp) - before
        let flow = result.records.values.filter { $0.ipProtocol == IPProtocol.tcp && $0.sourcePort == 4000 }
        #expect(flow.count >= 5, "ended \(flow.count) times while its packets kept coming")
        #expect(flow.reduce(0) { $0 + $1.packets } == UInt64(packets))
        #expect(flow.allSatisfy { $0.endReason == .tcpClose || $0.endReason == .shutdown })
        #expect(result.explainedPackets == seen)
        #expect(result.statistics.packetsAggregated == 0 && result.statistics.tableFull == 0, "\(result.statistics)")
    }

    /// 1,000 flows through a 256-slot table, 200 at a time: each round's
    /// flows end on idle and give their slots back to the program, so the
    /// next round finds room. Were slots not freed, the third round would
    /// find none and fold into aggregates.
    @Test("ended flows give their slots back: five times the table's flows over time, every one tracked exactly",
          arguments: [EBPFAttachMode.tc, .xdp, .socket])
    func slotsReused(mode: EBPFAttachMode) async throws {
        let lab = try SensorLab()
        defer { lab.lab.teardown() }
        let timeouts = FlowTableConfiguration(idleTimeoutNs: 500_000_000, activeTimeoutNs: 60_000_000_000, tcpCloseTimeoutNs: 500_000_000)
        let source = try lab.source(mode, mapEntries: 256, pollInterval: 0.1, flowTable: timeouts)
        let collector = LiveCollector(source)
        let rounds = 5, flows = 200
        func ended(_ batches: [FlowBatch]) -> [FlowRecord] {
            batches.flatMap(\.records).filter { $0.ipProtocol == IPProtocol.udp && $0.destinationPort == 9 && $0.state == .ended }
        }
        _ = try await collector.stop(source) {
            for round in 0..<rounds {
                let first = 2000 + round * flows
                try await onThread {
                    try lab.trafgen("{ eth(da=02:00:00:00:00:02, sa=02:00:00:00:00:01), ipv4(sa=198.18.0.1, da=198.18.0.2), "
                        + "udp(sp=dinc(\(first), \(first + flows - 1)), dp=9), fill(0, 20) }", packets: 2 * flows)
                }
                try await collector.wait(for: "round \(round + 1)'s flows to end on idle") { _ in
                    ended(collector.batches).count >= (round + 1) * flows
                }
            }
        }
        let records = ended(collector.batches)
        #expect(records.count == rounds * flows)
        #expect(Set(records.map(\.sourcePort)).count == rounds * flows)
        #expect(records.allSatisfy { $0.forward.packets == 2 && $0.reverse.packets == 0 && $0.endReason == .idle })
        let s = try #require(collector.batches.last).statistics
        #expect(s.packetsAggregated == 0 && s.ringBufferPackets == 0 && s.tableFull == 0, "\(s)")
    }
}
