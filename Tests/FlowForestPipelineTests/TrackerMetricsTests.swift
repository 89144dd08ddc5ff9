import FlowForestCore
import FlowForestDetection
import FlowForestPipeline
import FlowForestTestSupport
import Logging
import MetricsTestKit
import Testing

/// The host tracker's limits are visible: what it holds and what it
/// evicted, per table, on `/metrics`.
@Suite("Tracker metrics")
struct TrackerMetricsTests {
    @Test("a forged flood past --max-hosts shows as evictions of hosts and beacon histories, with the tables at their limits")
    func evictionsCounted() async throws {
        let metrics = TestMetrics()
        var configuration = DetectorConfiguration()
        configuration.trackerLimits = TrackerLimits(entities: 100, pairs: 200)
        let pipeline = Pipeline(sensor: "s1", detector: Detector(configuration: configuration, sensor: "s1"),
                                logger: Logger(label: "t"), metricsFactory: metrics)
        let t0: UInt64 = 1_764_000_000_000_000_000
        let victim = IPAddress("198.18.1.2")!
        let records = (1...1000).map { i in
            FlowRecord.loneSyn(id: UInt64(i), from: IPAddress(ipv4: 0xC613_0000 | UInt32(i)), to: victim, sourcePort: UInt16(1024 + i),
                               destinationPort: 80, at: t0, bytes: 40)
        }
        await pipeline.process(FlowBatch(timeNs: t0 + 500_000_000, records: records, statistics: CaptureStatistics(),
                                         activeFlows: records.count), mode: "tc")
        func evicted(_ table: String) -> Int64 {
            metrics.counterTotal(label: "flowforest_tracker_evictions_total", dimensions: [("table", table)])
        }
        #expect(evicted("host") == 900)
        #expect(evicted("beacon_pair") == 800)
        #expect(evicted("destination") == 0)
        #expect(evicted("address_memory") == 0, "no anomaly, so nothing remembered per address")
        #expect(try metrics.expectGauge("flowforest_tracker_entries", [("table", "host")]).lastValue == 100)
        #expect(try metrics.expectGauge("flowforest_tracker_entries", [("table", "destination")]).lastValue == 1)
        #expect(try metrics.expectGauge("flowforest_tracker_entries", [("table", "beacon_pair")]).lastValue == 200)
    }
}
