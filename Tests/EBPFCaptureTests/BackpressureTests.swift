import EBPFCapture
import FlowForestCore
import FlowForestLab
import Foundation
import Testing

/// The drain thread hands batches to its consumer through a bounded stream:
/// a consumer slower than the poll interval gets the next poll when it is
/// ready for it, not a queue of every poll it fell behind on (each a poll's
/// records in memory), and every packet still counts once.
@Suite("eBPF hand-off to a slow consumer (root, namespace lab)", .serialized, .enabled(if: Command.isRoot))
struct BackpressureTests {
    @Test("a consumer taking six poll intervals per batch gets a handful of batches, every packet in them")
    func slowConsumer() async throws {
        let lab = try SensorLab()
        defer { lab.lab.teardown() }
        let source = try lab.source(.tc, pollInterval: 0.1)
        let before = try lab.interfacePackets()
        let packets = 2000
        let traffic = Task { try await onThread { try lab.trafgen(Trafgen.udp(flows: 20, frameBytes: 64), packets: packets, gap: "1ms") } }
        var consumed = 0
        var result = CaptureResult()
        for try await batch in source.batches() {
            consumed += 1
            result.batches += 1
            for r in batch.records { result.records[r.id] = r }
            result.statistics = batch.statistics
            guard consumed <= 4 else { continue }
            // Six poll intervals per batch: an unbounded stream would queue
            // five or six polls behind each one.
            try await Task.sleep(for: .milliseconds(600))
            if consumed == 4 {
                try await traffic.value
                source.stop()
            }
        }
        // Four slow batches, the one waiting to be handed over (the stream
        // buffers none), one the drain may have been building when the
        // consumer stopped, and the final one; about thirty polls came due meanwhile.
        #expect(consumed <= 7, "\(consumed) batches: polls queued up behind the slow consumer")
        let seen = try lab.interfacePackets() - before
        #expect(result.statistics.packetsSeen == seen)
        #expect(result.explainedPackets == seen, "\(result.explainedPackets) of \(seen) packets in flows or counters")
        let udp = result.records.values.filter { $0.ipProtocol == IPProtocol.udp }
        #expect(udp.reduce(0) { $0 + $1.forward.packets } == UInt64(packets))
    }
}
