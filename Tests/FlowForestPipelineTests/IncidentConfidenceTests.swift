import FlowForestCore
import FlowForestPipeline
import Logging
import MetricsTestKit
import Testing

@Suite("Incident confidence: packets lost while it was open")
struct IncidentConfidenceTests {
    static let t0: UInt64 = 1_790_000_000_000 * 1_000_000

    static func batch(second: UInt64, tableFull: UInt64 = 0, captureDrops: UInt64 = 0, interfaceDrops: UInt64 = 0) -> FlowBatch {
        var s = CaptureStatistics()
        s.tableFull = tableFull
        s.captureDrops = captureDrops
        s.interfaceDrops = interfaceDrops
        return FlowBatch(timeNs: t0 + second * 1_000_000_000, records: [], statistics: s, activeFlows: 0)
    }

    @Test("every mode's table-full, capture and interface losses while it is open are carried by its changes and its close")
    func lossesAreCarried() async {
        let sink = RecordingSink()
        let pipeline = Pipeline(sensor: "s1", detector: ScriptedAnomalies(), sink: sink,
                                incidents: IncidentConfiguration(quietGap: .seconds(40)), logger: Logger(label: "t"), metricsFactory: TestMetrics())
        await pipeline.process(Self.batch(second: 0), mode: "tc")
        await pipeline.process(Self.batch(second: 1, tableFull: 100, captureDrops: 20), mode: "tc")
        // Another mode's losses count too; cumulative counters count once.
        await pipeline.process(Self.batch(second: 2, interfaceDrops: 5), mode: "ingest")
        await pipeline.process(Self.batch(second: 3, tableFull: 100, captureDrops: 20), mode: "tc")
        // No anomaly after 30 s: the loss at 35 s still falls while it is open (no change
        // for a loss alone); the close at 44 s, a quiet gap after its last anomaly, carries all.
        await pipeline.process(Self.batch(second: 35, tableFull: 110, captureDrops: 20), mode: "tc")
        await pipeline.process(Self.batch(second: 44, tableFull: 110, captureDrops: 20), mode: "tc")
        let changes = sink.incidents
        #expect(changes.map(\.change) == [.opened, .updated, .updated, .updated, .closed])
        #expect(changes.map(\.incident.lostPackets) == [0, 120, 125, 125, 135])
        // Losses after it closed belong to no incident.
        await pipeline.process(Self.batch(second: 50, tableFull: 500, captureDrops: 20), mode: "tc")
        #expect(sink.incidents.count == 5)
    }

    @Test("an incident opening takes in the losses of the 10 s before it, since detection lags the traffic; older ones not")
    func lossesJustBeforeItOpened() {
        var tracker = IncidentTracker()
        func scan(_ actor: String, _ target: String, atMs ms: Int64) -> [Anomaly] {
            [Anomaly(sensor: "s", timeMs: ms, kind: .host, sourceAddress: IPAddress(actor), destinationAddress: IPAddress(target),
                     score: 0.8, severity: .high, label: .portScan)]
        }
        var none: [Anomaly] = []
        _ = tracker.observe(&none, nowMs: 1_000, lost: SensorLoss(packets: 7))
        _ = tracker.observe(&none, nowMs: 2_000, lost: SensorLoss(packets: 3, flowRecords: 2))
        var first = scan("198.18.0.1", "198.18.0.2", atMs: 11_500)
        let opened = tracker.observe(&first, nowMs: 11_500)
        // 1 s is 10.5 s before it: outside; 2 s is 9.5 s before: inside.
        #expect(opened.map(\.incident.loss) == [SensorLoss(packets: 3, flowRecords: 2)])
        // Another attack later is another incident, with none of them.
        var later = scan("198.18.0.9", "198.18.0.20", atMs: 30_000)
        let other = tracker.observe(&later, nowMs: 30_000)
        #expect(other.map(\.change) == [.opened] && other.map(\.incident.lostPackets) == [0])
    }

    @Test("flow records missing from exporters' sequence numbers are carried beside the packets")
    func missingFlowRecords() async {
        let sink = RecordingSink()
        let pipeline = Pipeline(sensor: "s1", detector: ScriptedAnomalies(), sink: sink, logger: Logger(label: "t"), metricsFactory: TestMetrics())
        var first = Self.batch(second: 0)
        first.statistics.missingRecords = 0
        await pipeline.process(first, mode: "collect")
        var second = Self.batch(second: 1, tableFull: 4)
        second.statistics.missingRecords = 30
        await pipeline.process(second, mode: "collect")
        #expect(sink.incidents.map(\.incident.loss) == [SensorLoss(), SensorLoss(packets: 4, flowRecords: 30)])
    }

    @Test("a counter that restarts counts its new total, never a negative or wrapped loss")
    func restartedCounter() async {
        let sink = RecordingSink()
        let pipeline = Pipeline(sensor: "s1", detector: ScriptedAnomalies(), sink: sink, logger: Logger(label: "t"), metricsFactory: TestMetrics())
        await pipeline.process(Self.batch(second: 0, tableFull: 1000), mode: "tc")
        await pipeline.process(Self.batch(second: 1, tableFull: 7), mode: "tc")
        #expect(sink.incidents.map(\.incident.lostPackets) == [1000, 1007])
    }
}
