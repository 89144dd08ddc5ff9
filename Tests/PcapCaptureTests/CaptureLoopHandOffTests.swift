import FlowForestCore
import Foundation
@testable import PcapCapture
import Synchronization
import Testing

/// The capture thread's hand-off to a pipeline that is behind: a bounded
/// stream it waits on, and the last batch (every open flow) delivered however
/// far behind the consumer is when the capture stops.
@Suite("Capture loop hand-off")
struct CaptureLoopHandOffTests {
    static let t0: UInt64 = 1_764_063_455_000_000_000

    static func packet(at ns: UInt64) -> PacketSummary {
        PacketSummary(timestampNs: ns, source: IPAddress("198.18.0.1")!, destination: IPAddress("198.18.0.2")!,
                      sourcePort: 40000, destinationPort: 53, ipProtocol: IPProtocol.udp, ipLength: 60, tcpFlags: [], interfaceIndex: 0)
    }

    /// The loop, on a capture thread of its own as in the sources.
    final class Capture: @unchecked Sendable {
        // Touched by the capture thread only.
        var loop: CaptureLoop
        /// Packets handed to the loop so far, and whether it finished.
        let handled = Atomic<Int>(0)
        let done = Atomic<Bool>(false)
        init(_ loop: CaptureLoop) { self.loop = loop }
    }

    @Test("past its buffered batches the capture waits; at the end it waits too, and the last batch with every open flow arrives")
    func lastBatchWaits() async throws {
        let (stream, continuation) = CaptureLoop.makeStream()
        let capture = Capture(CaptureLoop(configuration: FlowTableConfiguration(), pollIntervalNs: 1_000_000_000,
                                          continuation: continuation))
        // One packet a second for ten seconds: nine batches, more than the stream holds, then the end.
        let thread = Thread {
            for s in 0..<10 {
                let ns = Self.t0 + UInt64(s) * 1_000_000_000
                capture.loop.tick(nowNs: ns)
                capture.loop.table.add(Self.packet(at: ns))
                capture.handled.add(1, ordering: .releasing)
            }
            capture.loop.finish()
            capture.done.store(true, ordering: .releasing)
        }
        thread.start()
        // Nothing is read until the capture has filled the stream: batches at
        // seconds 1 to 4 fill it, and the one at second 5 waits.
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline && capture.handled.load(ordering: .acquiring) < CaptureLoop.bufferedBatches + 1 {
            try await Task.sleep(for: .milliseconds(10))
        }
        let handled = capture.handled.load(ordering: .acquiring), waiting = !capture.done.load(ordering: .acquiring)
        #expect(handled == CaptureLoop.bufferedBatches + 1)
        #expect(waiting, "the capture did not wait for room")
        var batches: [FlowBatch] = []
        for try await batch in stream { batches.append(batch) }
        let finished = capture.done.load(ordering: .acquiring)
        #expect(finished)
        #expect(batches.count == 10, "\(batches.count) batches")
        let ended = batches.flatMap(\.records).filter { $0.state == .ended }
        #expect(ended.count == 1 && ended.first?.packets == 10)
    }
}
