import FlowForestCore
import FlowForestPipeline
import Logging
import MetricsTestKit
import Testing

@Suite("Suppression in the pipeline")
struct SuppressionPipelineTests {
    @Test("suppressed anomalies are kept, marked, counted, and open no incident; others still do")
    func suppressedAnomaliesOpenNoIncident() async {
        let sink = RecordingSink()
        let metrics = TestMetrics()
        let pipeline = Pipeline(sensor: "s1", detector: ScriptedAnomalies(), sink: sink, logger: Logger(label: "t"), metricsFactory: metrics)
        await pipeline.setSuppressions([Suppression(actor: AddressBlock("198.18.0.0/24"), label: .portScan, createdBy: "alice",
                                                    reason: "the nightly scanner", createdMs: 0)])
        let t0: UInt64 = 1_790_000_000_000 * 1_000_000
        let found = await pipeline.process(FlowBatch(timeNs: t0, records: [], statistics: CaptureStatistics(), activeFlows: 0), mode: "pcap")
        #expect(found.count == 1 && found.allSatisfy { $0.suppressed && $0.incidentUID == nil })
        #expect(sink.anomalies.count == 1 && sink.anomalies[0].suppressed)
        #expect(sink.incidents.isEmpty)
        #expect(metrics.counterTotal(label: "flowforest_anomalies_suppressed_total", dimensions: []) == 1)
        // Without the rule the same anomaly opens an incident.
        await pipeline.setSuppressions([])
        let next = await pipeline.process(FlowBatch(timeNs: t0 + 1_000_000_000, records: [], statistics: CaptureStatistics(), activeFlows: 0), mode: "pcap")
        #expect(next.count == 1 && !next[0].suppressed && next[0].incidentUID != nil)
        #expect(sink.incidents.map(\.change) == [.opened])
    }
}
