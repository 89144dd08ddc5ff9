import FlowForestCore
import FlowForestDetection
import Foundation
import FlowForestPipeline
import Logging
import MetricsTestKit
import Synchronization
import Testing

/// Keeps what the pipeline hands on.
final class RecordingSink: PipelineSink {
    private let state = Mutex<(flows: [FlowRecord], anomalies: [Anomaly], models: Int)>(([], [], 0))
    func enqueue(flows: [FlowRecord], sensor: String) { state.withLock { $0.flows += flows } }
    func enqueue(anomalies: [Anomaly]) -> Bool { state.withLock { $0.anomalies += anomalies }; return true }
    func enqueue(incidents: [IncidentUpdate]) -> Bool { incidentState.withLock { $0 += incidents }; return true }
    private let incidentState = Mutex<[IncidentUpdate]>([])
    var incidents: [IncidentUpdate] { incidentState.withLock { $0 } }
    func saveModel(sensor: String, description: String, body: String) async throws { state.withLock { $0.models += 1 } }
    var flows: [FlowRecord] { state.withLock { $0.flows } }
    var anomalies: [Anomaly] { state.withLock { $0.anomalies } }
}

/// Flags every ended flow, and checks it is handed the pipeline's ledger with the batch's records in it.
struct FlagsEndedFlows: FlowDetector {
    func process(_ batch: FlowBatch, changes: [FlowChange], flows: FlowLedger) -> [Anomaly] {
        precondition(changes.map(\.record.id) == batch.records.map(\.id))
        precondition(changes.allSatisfy { $0.record.state == .ended || flows[$0.record.id] != nil })
        return changes.filter { $0.record.state == .ended }.map { c in
            Anomaly(sensor: "", timeMs: Int64(batch.timeNs / 1_000_000), kind: .flow, sourceAddress: c.record.sourceAddress,
                    destinationAddress: c.record.destinationAddress, score: 1, severity: .high, label: .portScan, flowIDs: [c.record.id])
        }
    }
    func retrain(nowNs: UInt64) {}
    func setExpected(_ rules: [Suppression]) {}
    var apiStatus: ModelStatus { ModelStatus(state: .scoring) }
    func modelJSON() -> String? { nil }
}

/// Keeps each change's ``FlowChange/spreadFromNs``.
final class SpreadLog: Sendable {
    let values = Mutex<[UInt64]>([])
}

struct RecordsSpread: FlowDetector {
    let seen: SpreadLog
    func process(_ batch: FlowBatch, changes: [FlowChange], flows: FlowLedger) -> [Anomaly] {
        seen.values.withLock { $0 += changes.map(\.spreadFromNs) }
        return []
    }
    func retrain(nowNs: UInt64) {}
    func setExpected(_ rules: [Suppression]) {}
    var apiStatus: ModelStatus { ModelStatus(state: .scoring) }
    func modelJSON() -> String? { nil }
}

@Suite("Pipeline")
struct PipelineTests {
    @Test("a batch goes through ledger, accounting, detector and sink; deltas add up to the flows' totals")
    func onePath() async throws {
        let sink = RecordingSink()
        let metrics = TestMetrics()
        let pipeline = Pipeline(sensor: "s1", detector: FlagsEndedFlows(), sink: sink, logger: Logger(label: "t"), metricsFactory: metrics)
        var table = FlowTable()
        let t0 = IngestExpiryTests.start
        for i in 0..<4 { table.add(syn(port: 1, at: t0 + UInt64(i) * 100_000_000)) }
        table.add(syn(port: 2, at: t0))
        let first = FlowBatch(timeNs: t0 + 1_000_000_000, records: table.advance(to: t0 + 1_000_000_000),
                              statistics: table.statistics, activeFlows: table.activeCount)
        #expect(await pipeline.process(first, mode: "pcap").isEmpty)
        #expect(await pipeline.openFlows(limit: 10).map(\.origin) == ["pcap", "pcap"])
        for i in 0..<3 { table.add(syn(port: 1, at: t0 + 1_100_000_000 + UInt64(i) * 100_000_000)) }
        let end = t0 + 60_000_000_000
        let last = FlowBatch(timeNs: end, records: table.advance(to: end), statistics: table.statistics, activeFlows: table.activeCount)
        let found = await pipeline.process(last, mode: "pcap")
        #expect(found.count == 2 && found.allSatisfy { $0.sensor == "s1" })
        #expect(sink.anomalies.count == 2)
        #expect(sink.flows.count == 2 && sink.flows.allSatisfy { $0.state == .ended })
        #expect(await pipeline.openFlows(limit: 10).isEmpty)
        // 8 packets of 60 bytes, each counted once across the active and ended records.
        #expect(await pipeline.packetsTotal == 8)
        #expect(await pipeline.bytesTotal == 480)
        #expect(metrics.counterTotal(label: "flowforest_packets_total", dimensions: [("mode", "pcap"), ("direction", "forward")]) == 8)
        #expect(metrics.counterTotal(label: "flowforest_flows_ended_total", dimensions: [("mode", "pcap")]) == 2)
        #expect(metrics.counterTotal(label: "flowforest_anomalies_total", dimensions: [("kind", "flow"), ("severity", "high")]) == 2)
        #expect(await pipeline.anomaliesTotal == 2)
    }

    @Test("a delayed source's later record reaches the detector with the flow's previous last packet; a live source's with none")
    func reportingReachesDetector() async throws {
        let seen = SpreadLog()
        let pipeline = Pipeline(sensor: "s1", detector: RecordsSpread(seen: seen), logger: Logger(label: "t"), metricsFactory: TestMetrics())
        let t0 = IngestExpiryTests.start
        for (mode, reporting, id) in [("collect", FlowReporting.delayed, UInt64(1)), ("tc", .asSeen, 2)] {
            var table = FlowTable(firstID: id)
            table.add(syn(port: 1, at: t0))
            let first = table.advance(to: t0 + 1_000_000_000)
            _ = await pipeline.process(FlowBatch(timeNs: t0 + 1_000_000_000, records: first, statistics: table.statistics,
                                                 activeFlows: 1, reporting: reporting), mode: mode)
            table.add(syn(port: 1, at: t0 + 5_000_000_000))
            let later = table.advance(to: t0 + 6_000_000_000)
            _ = await pipeline.process(FlowBatch(timeNs: t0 + 6_000_000_000, records: later, statistics: table.statistics,
                                                 activeFlows: 1, reporting: reporting), mode: mode)
        }
        #expect(seen.values.withLock { $0 } == [0, t0, 0, 0], "first records none; the collected flow's later one its previous last packet")
    }

    @Test("without a detector or sink the pipeline still counts: what bench and analyze without a model use")
    func countsAlone() async throws {
        let pipeline = Pipeline(sensor: "bench", logger: Logger(label: "t"), metricsFactory: TestMetrics())
        var table = FlowTable()
        let t0 = IngestExpiryTests.start
        for port in 1...3 { table.add(syn(port: UInt16(port), at: t0)) }
        let batch = FlowBatch(timeNs: t0, records: table.flush(), statistics: table.statistics, activeFlows: 0)
        #expect(await pipeline.process(batch, mode: "tc").isEmpty)
        #expect(await pipeline.packetsTotal == 3)
        #expect(await pipeline.modelStatus.state == .learning)
    }

    @Test("ring-buffer packets, and those of them a locked slot sent, count by the growth of the kernel's totals")
    func ringBufferCounters() async {
        let metrics = TestMetrics()
        let pipeline = Pipeline(sensor: "s1", detector: nil, sink: nil, logger: Logger(label: "t"), metricsFactory: metrics)
        let t0 = IngestExpiryTests.start
        for (i, (sent, locked)) in [(UInt64(10), UInt64(2)), (25, 5), (25, 5)].enumerated() {
            var s = CaptureStatistics()
            s.ringBufferPackets = sent
            s.ringBufferSlotLocked = locked
            _ = await pipeline.process(FlowBatch(timeNs: t0 + UInt64(i) * 1_000_000_000, records: [], statistics: s, activeFlows: 0), mode: "tc")
        }
        #expect(metrics.counterTotal(label: "flowforest_ringbuf_packets_total", dimensions: [("mode", "tc")]) == 25)
        #expect(metrics.counterTotal(label: "flowforest_ringbuf_slot_locked_packets_total", dimensions: [("mode", "tc")]) == 5)
    }

    @Test("records counting up to 2^64 - 1 go through without a trap; the totals and metrics stop at the top")
    func countsAtTheTop() async {
        let metrics = TestMetrics()
        let pipeline = Pipeline(sensor: "s1", detector: nil, sink: nil, logger: Logger(label: "t"), metricsFactory: metrics)
        let t0 = IngestExpiryTests.start
        for (i, state) in [FlowState.active, .ended].enumerated() {
            var r = FlowRecord(id: 1, sourceAddress: IPAddress("198.18.0.1")!, destinationAddress: IPAddress("198.18.0.2")!,
                               sourcePort: 40000, destinationPort: 53, ipProtocol: 17)
            r.forward.packets = .max
            r.forward.bytes = .max
            r.reverse.packets = .max
            r.forward.firstSeenNs = t0
            r.forward.lastSeenNs = t0
            r.state = state
            if state == .ended { r.endReason = .idle }
            _ = await pipeline.process(FlowBatch(timeNs: t0 + UInt64(i + 1) * 1_000_000_000, records: [r], statistics: CaptureStatistics(),
                                                 activeFlows: 0), mode: "collect")
        }
        let totals = (await pipeline.packetsTotal, await pipeline.bytesTotal)
        #expect(totals.0 == .max && totals.1 == .max)
        #expect(metrics.counterTotal(label: "flowforest_packets_total", dimensions: [("mode", "collect"), ("direction", "forward")]) == .max)
    }
    @Test("a long TCP flow whose two directions' flag counts pass 2^32 together is scored, not a trap")
    func flagCountsPastThirtyTwoBits() async throws {
        let pipeline = Pipeline(sensor: "s1", detector: Detector(configuration: DetectorConfiguration(), sensor: "s1"),
                                sink: nil, logger: Logger(label: "t"), metricsFactory: TestMetrics())
        let t0 = IngestExpiryTests.start
        var r = FlowRecord(id: 1, sourceAddress: IPAddress("198.18.0.1")!, destinationAddress: IPAddress("198.18.0.2")!,
                           sourcePort: 40000, destinationPort: 22, ipProtocol: IPProtocol.tcp)
        for d in [\FlowRecord.forward, \FlowRecord.reverse] {
            r[keyPath: d].packets = 5_000_000_000
            r[keyPath: d].bytes = 300_000_000_000
            r[keyPath: d].firstSeenNs = t0
            r[keyPath: d].lastSeenNs = t0 + 3_600_000_000_000
            r[keyPath: d].synCount = .max
            r[keyPath: d].synAckCount = .max
            r[keyPath: d].finCount = .max
            r[keyPath: d].rstCount = .max
            r[keyPath: d].pshCount = .max
            r[keyPath: d].ackCount = .max
        }
        let vector = FlowFeatures.vector(of: r)
        #expect(vector[19] == log1p(2 * Double(UInt32.max)), "ACKs of both directions")
        #expect(vector[15] == log1p(4 * Double(UInt32.max)), "SYNs and SYN-ACKs of both directions")
        // Through the pipeline while open (the host tracker's slow-connection
        // pass reads the flags of every open TCP flow) and when it ends.
        for (i, state) in [FlowState.active, .ended].enumerated() {
            r.state = state
            if state == .ended { r.endReason = .idle }
            _ = await pipeline.process(FlowBatch(timeNs: t0 + 3_600_000_000_000 + UInt64(i + 1) * 1_000_000_000, records: [r],
                                                 statistics: CaptureStatistics(), activeFlows: 1 - i), mode: "tc")
        }
        #expect(await pipeline.packetsTotal == 10_000_000_000)
    }
    @Test("incidents go quiet on the batches' clock: a capture clock two hours behind the server's (a resumed VM) closes none early, and its quiet gap still closes them")
    func incidentsQuietOnBatchClock() async throws {
        let sink = RecordingSink()
        let pipeline = Pipeline(sensor: "s1", detector: FlagsEndedFlows(), sink: sink, logger: Logger(label: "t"), metricsFactory: TestMetrics())
        let wallMs = Int64(Date().timeIntervalSince1970 * 1000)
        let t0 = UInt64(wallMs - 7_200_000) * 1_000_000
        var table = FlowTable()
        table.add(syn(port: 1, at: t0))
        let end = t0 + 20_000_000_000
        #expect(await pipeline.process(FlowBatch(timeNs: end, records: table.advance(to: end), statistics: table.statistics,
                                                 activeFlows: table.activeCount), mode: "tc").count == 1)
        #expect(sink.incidents.map(\.change) == [.opened])
        // The server's ticks: two hours past the anomaly by its clock, moments by the capture's.
        for _ in 0..<3 { await pipeline.expireIncidents(nowMs: wallMs) }
        #expect(sink.incidents.map(\.change) == [.opened], "closed by the server's clock")
        #expect(await pipeline.openIncidentCount == 1)
        // Five quiet minutes later by the capture's clock, it closes.
        let later = end + 301_000_000_000
        await pipeline.process(FlowBatch(timeNs: later, records: [], statistics: table.statistics, activeFlows: 0), mode: "tc")
        await pipeline.expireIncidents(nowMs: wallMs)
        #expect(sink.incidents.map(\.change) == [.opened, .closed])
    }
}
