import Dispatch
import FlowForestCore
import FlowForestPipeline
import Logging
import MetricsTestKit
import Synchronization
import Testing
import Foundation

/// Holds the pipeline inside `enqueue(flows:)` until released, and notes
/// the name of the thread it was called on.
private final class HoldingSink: PipelineSink {
    let entered = DispatchSemaphore(value: 0)
    let release = DispatchSemaphore(value: 0)
    private let name = Mutex("")
    var threadName: String { name.withLock { $0 } }

    func enqueue(flows: [FlowRecord], sensor: String) {
        // The kernel's name of the calling thread, as `ps` and `top` show it.
        let current = (try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)) ?? ""
        name.withLock { $0 = current.trimmingCharacters(in: .whitespacesAndNewlines) }
        entered.signal()
        release.wait()
    }
    func enqueue(anomalies: [Anomaly]) -> Bool { true }
    func enqueue(incidents: [IncidentUpdate]) -> Bool { true }
    func saveModel(sensor: String, description: String, body: String) async throws {}
}

@Suite("Pipeline thread")
struct PipelineThreadTests {
    @Test("the pipeline works on a thread of its own, and its model status and totals are read while it is held mid-batch")
    func ownThread() async throws {
        let sink = HoldingSink()
        let pipeline = Pipeline(sensor: "s1", detector: FlagsEndedFlows(), sink: sink, logger: Logger(label: "t"),
                                metricsFactory: TestMetrics())
        let batch = FlowBatch(timeNs: IngestExpiryTests.start, records: [], statistics: CaptureStatistics(), activeFlows: 0)
        let busy = Task { await pipeline.process(batch, mode: "pcap") }
        // Waited for off the cooperative pool, which the test must not block.
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            DispatchQueue.global().async { sink.entered.wait(); done.resume() }
        }
        // Not one of Swift's cooperative threads: a long batch holds no thread HTTP handlers need.
        #expect(sink.threadName == "ff-pipeline")
        // What /api/health reports, answered while the batch is still in the sink.
        #expect(pipeline.latestModelStatus.state == .scoring)
        sink.release.signal()
        #expect(await busy.value.isEmpty)
        // Later batches run on the same thread, in order; while one is held,
        // the snapshot (what status and the live stats read) holds the one before.
        var table = FlowTable()
        table.add(syn(port: 1, at: IngestExpiryTests.start))
        let counted = FlowBatch(timeNs: IngestExpiryTests.start + 1_000_000_000, records: table.advance(to: IngestExpiryTests.start + 1_000_000_000),
                                statistics: table.statistics, activeFlows: table.activeCount)
        let second = Task { await pipeline.process(counted, mode: "pcap") }
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            DispatchQueue.global().async { sink.entered.wait(); done.resume() }
        }
        #expect(sink.threadName == "ff-pipeline")
        #expect(pipeline.snapshot.packetsTotal == 0 && pipeline.snapshot.activeFlows == 0)
        sink.release.signal()
        _ = await second.value
        let after = pipeline.snapshot
        #expect(after.packetsTotal == 1 && after.activeFlows == 1)
        #expect(after.captureAccounting["pcap"]?.statistics.packetsAccounted == 1)
        #expect(after.packetsTotal == (await pipeline.packetsTotal))
    }

    @Test("the busiest open flows are answered while a batch is held, and are one poll old at most", .timeLimit(.minutes(1)))
    func busiestFlowsWhileHeld() async throws {
        let sink = HoldingSink()
        let pipeline = Pipeline(sensor: "s1", sink: sink, logger: Logger(label: "t"), metricsFactory: TestMetrics())
        var table = FlowTable()
        let t0 = IngestExpiryTests.start
        func batch(at t: UInt64) -> FlowBatch {
            FlowBatch(timeNs: t, records: table.advance(to: t), statistics: table.statistics, activeFlows: table.activeCount)
        }
        func processHeld(_ b: FlowBatch) async -> Task<[Anomaly], Never> {
            let task = Task { await pipeline.process(b, mode: "pcap") }
            await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
                DispatchQueue.global().async { sink.entered.wait(); done.resume() }
            }
            return task
        }
        table.add(syn(port: 1, at: t0))
        let first = await processHeld(batch(at: t0 + 1_000_000_000))
        sink.release.signal()
        _ = await first.value
        // The first request waits for the pipeline to make the list.
        #expect(await pipeline.busiestOpenFlows().map(\.record.sourcePort) == [1])
        // A batch with a second flow is held mid-way: the list is answered at
        // once, as of the batch before.
        table.add(syn(port: 2, at: t0 + 1_500_000_000))
        let second = await processHeld(batch(at: t0 + 2_000_000_000))
        #expect(await pipeline.busiestOpenFlows().map(\.record.sourcePort) == [1])
        sink.release.signal()
        _ = await second.value
        // Asked for during that batch, the list was made again after it.
        #expect(await pipeline.busiestOpenFlows().map(\.record.sourcePort).sorted() == [1, 2])
    }
}
