import FlowForestCollector
import FlowForestCore
import Logging
import Metrics
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
        #expect(collector.statistics.missingRecords == 5)
    }
}
