import FlowForestCollector
import FlowForestCore
import Logging
import Metrics
import MetricsTestKit
import Testing

/// Records lost between exporter and collector reach the pipeline in the
/// collector's statistics, so incidents can say their figures are lower bounds.
@Suite("Missing flow records in the collector's statistics")
struct MissingRecordsTests {
    @Test("IPFIX sequence gaps add up across exporters in missing_records; in-order datagrams add nothing")
    func gapsCounted() {
        let collector = FlowCollector(metricsFactory: NOOPMetricsHandler.instance, logger: Logger(label: "test"))
        let now = Corpus.receivedNs
        let a = IPAddress("198.18.0.1")!, b = IPAddress("198.18.0.2")!
        for exporter in [a, b] {
            collector.receive(Bytes.ipfix(sequence: 0, sets: [DecoderTests.templateSet, DecoderTests.dataSet(3)]), from: exporter, at: now)
            collector.receive(Bytes.ipfix(sequence: 3, sets: [DecoderTests.dataSet(2)]), from: exporter, at: now)
        }
        #expect(collector.statistics.missingRecords == 0)
        // Exporter a's next datagram says 4 records (5...8) never arrived; b's says 1.
        collector.receive(Bytes.ipfix(sequence: 9, sets: [DecoderTests.dataSet(1)]), from: a, at: now)
        collector.receive(Bytes.ipfix(sequence: 6, sets: [DecoderTests.dataSet(1)]), from: b, at: now)
        // Held open for a late datagram, then counted by the collector's clock.
        _ = collector.advance(to: now + 1_000_000_000)
        #expect(collector.statistics.missingRecords == 0)
        _ = collector.advance(to: now + CollectorLimits().reorderNs)
        #expect(collector.statistics.missingRecords == 5)
    }

    @Test("a datagram that arrives after later ones of its exporter adds nothing to missing_records or the gap metrics")
    func reorderedNotMissing() throws {
        let metrics = TestMetrics()
        let collector = FlowCollector(metricsFactory: metrics, logger: Logger(label: "test"))
        let now = Corpus.receivedNs
        let a = IPAddress("198.18.0.1")!
        collector.receive(Bytes.ipfix(sequence: 0, sets: [DecoderTests.templateSet, DecoderTests.dataSet(3)]), from: a, at: now)
        collector.receive(Bytes.ipfix(sequence: 5, sets: [DecoderTests.dataSet(1)]), from: a, at: now)
        collector.receive(Bytes.ipfix(sequence: 3, sets: [DecoderTests.dataSet(2)]), from: a, at: now + 5_000_000)
        _ = collector.advance(to: now + 10 * CollectorLimits().reorderNs)
        #expect(collector.statistics.missingRecords == 0)
        let gaps = try metrics.expectCounter("flowforest_collector_sequence_gaps_total", [("exporter", "198.18.0.1")])
        #expect(gaps.totalValue == 0)
    }

    @Test("at shutdown the gaps still held open for a late datagram count as missing")
    func flushCountsHeldGaps() {
        let collector = FlowCollector(metricsFactory: NOOPMetricsHandler.instance, logger: Logger(label: "test"))
        let now = Corpus.receivedNs
        let a = IPAddress("198.18.0.1")!
        collector.receive(Bytes.ipfix(sequence: 0, sets: [DecoderTests.templateSet, DecoderTests.dataSet(3)]), from: a, at: now)
        collector.receive(Bytes.ipfix(sequence: 7, sets: [DecoderTests.dataSet(1)]), from: a, at: now)
        _ = collector.advance(to: now + 1)
        #expect(collector.statistics.missingRecords == 0)
        _ = collector.flush()
        #expect(collector.statistics.missingRecords == 4)
    }

    @Test("a record that cannot be a flow is counted by reason; its datagram is not a malformed one")
    func unusableRecordNotMalformedDatagram() throws {
        let metrics = TestMetrics()
        let collector = FlowCollector(metricsFactory: metrics, logger: Logger(label: "test"))
        var octetsOnly = Bytes()
        octetsOnly.u32(0xC612_0001); octetsOnly.u32(0xC612_0002); octetsOnly.u64(1500)
        collector.receive(Bytes.ipfix(sets: [(2, Bytes.template(302, [(8, 4), (12, 4), (231, 8)])), (302, octetsOnly.bytes)]),
                          from: IPAddress("198.18.0.1")!, at: Corpus.receivedNs)
        #expect(collector.statistics.malformed == 0)
        let unusable = try metrics.expectCounter("flowforest_collector_malformed_total", [("exporter", "198.18.0.1"), ("reason", "unusable_record")])
        #expect(unusable.totalValue == 1)
    }
}
