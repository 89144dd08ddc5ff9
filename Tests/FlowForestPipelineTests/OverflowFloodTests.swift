import FlowForestCore
import FlowForestPipeline
import Logging
import MetricsTestKit
import Synchronization
import Testing

/// Floods the data plane folded into overflow aggregates are reported on
/// their victim, once, with their size and source estimate.
@Suite("Overflow floods")
struct OverflowFloodTests {
    static let victim = IPAddress("198.18.2.1")!
    static let t0: UInt64 = 1_700_000_000_000_000_000

    static func aggregate(_ flowClass: OverflowClass = .tcpSyn, side: AggregateSide = .destination, packets: UInt64,
                          total: UInt64? = nil, peers: UInt64, at t: UInt64 = t0) -> FlowAggregate {
        FlowAggregate(
            key: FlowAggregate.Key(address: victim, port: 80, ipProtocol: IPProtocol.tcp, vlan: 0, flowClass: flowClass, side: side),
            packets: packets, bytes: packets * 40, totalPackets: total ?? packets, totalBytes: (total ?? packets) * 40,
            peerEstimate: peers, firstSeenNs: t0, lastSeenNs: t + 2_000_000_000, ended: false)
    }

    @Test("a SYN aggregate from many sources is one syn flood on its victim, with its size")
    func reported() throws {
        var rule = OverflowFloodRule()
        let found = rule.evaluate([Self.aggregate(packets: 200_000, peers: 150_000)], nowNs: Self.t0 + 3_000_000_000)
        let a = try #require(found.first)
        #expect(found.count == 1)
        #expect(a.label == .synFlood && a.kind == .destination && a.severity == .critical)
        #expect(a.destinationAddress == Self.victim && a.destinationPort == 80 && a.ipProtocol == IPProtocol.tcp)
        #expect(a.features["overflow_packets"] == 200_000 && a.features["overflow_sources_estimate"] == 150_000)
        #expect(a.features["overflow_packets_per_second"] == 100_000)
        #expect(a.explanation.first?.text.contains("about 150000 sources") == true)
    }

    @Test("TCP packets outside any connection are a tcp flood, UDP a udp flood, ICMP an icmp flood",
          arguments: [(OverflowClass.tcpOther, AnomalyLabel.tcpFlood), (.tcpFin, .tcpFlood), (.tcpRst, .tcpFlood),
                      (.udp, .udpFlood), (.icmp, .icmpFlood), (.other, .unusualDestination),
                      // Replies folded under their destination: reflected or backscatter floods.
                      (.icmpReply, .icmpFlood), (.tcpSynAck, .tcpFlood), (.tcpRstAck, .tcpFlood)])
    func labels(flowClass: OverflowClass, label: AnomalyLabel) throws {
        var rule = OverflowFloodRule()
        let found = rule.evaluate([Self.aggregate(flowClass, packets: 20_000, peers: 5_000)], nowNs: Self.t0)
        #expect(try #require(found.first).label == label)
    }

    @Test("below either threshold, or a victim's replies, nothing is reported")
    func quiet() {
        var rule = OverflowFloodRule()
        #expect(rule.evaluate([Self.aggregate(packets: 999, peers: 900)], nowNs: Self.t0).isEmpty)
        #expect(rule.evaluate([Self.aggregate(packets: 50_000, peers: 99)], nowNs: Self.t0).isEmpty)
        #expect(rule.evaluate([Self.aggregate(.tcpSynAck, side: .source, packets: 50_000, peers: 40_000)], nowNs: Self.t0).isEmpty)
    }

    /// One port's aggregate of `victim` whose sketch holds `sources` addresses from `firstSource` on.
    static func portAggregate(_ port: UInt16, victim: IPAddress = victim, _ flowClass: OverflowClass = .udp,
                              ipProtocol: UInt8 = IPProtocol.udp, anyPort: Bool = false, packets: UInt64,
                              sources: Int, firstSource: Int) -> FlowAggregate {
        var sketch = PeerSketch()
        for i in firstSource..<(firstSource + sources) {
            sketch.insert(IPAddress("10.\((i >> 16) & 255).\((i >> 8) & 255).\(i & 255)")!)
        }
        return FlowAggregate(
            key: FlowAggregate.Key(address: victim, port: anyPort ? 0 : port, ipProtocol: ipProtocol, vlan: 0, flowClass: flowClass,
                                   side: .destination, anyPort: anyPort),
            packets: packets, bytes: packets * 48, totalPackets: packets, totalBytes: packets * 48,
            peerEstimate: sketch.estimate, firstSeenNs: t0, lastSeenNs: t0 + 2_000_000_000, ended: false, peers: sketch)
    }

    @Test("a forged flood over 2,000 ports, no port above either threshold alone, is one udp flood on its victim")
    func spreadOverPorts() throws {
        var rule = OverflowFloodRule()
        let aggregates = (0..<2000).map { Self.portAggregate(UInt16(1000 + $0), packets: 300, sources: 40, firstSource: $0 * 40) }
        #expect(aggregates.allSatisfy { $0.totalPackets < 1000 && $0.peerEstimate < 100 })
        let found = rule.evaluate(aggregates, nowNs: Self.t0 + 3_000_000_000)
        let a = try #require(found.first)
        #expect(found.count == 1)
        #expect(a.label == .udpFlood && a.destinationAddress == Self.victim && a.destinationPort == nil)
        #expect(a.features["overflow_packets"] == 600_000 && a.features["overflow_ports"] == 2000)
        // 80,000 distinct sources in all: the union of the ports' sketches, within the sketch's error.
        let sources = try #require(a.features["overflow_sources_estimate"])
        #expect(sources > 60_000 && sources < 100_000, "\(sources)")
        #expect(a.explanation.first?.text.contains("to 2000 ports") == true, "\(a.explanation)")
    }

    @Test("the victim's any-port aggregate (the data plane's fold past half its map) is reported with its ports")
    func anyPort() throws {
        var rule = OverflowFloodRule()
        let ports = (0..<10).map { Self.portAggregate(UInt16(2000 + $0), packets: 50, sources: 50, firstSource: $0 * 50) }
        let folded = Self.portAggregate(0, anyPort: true, packets: 900_000, sources: 5_000, firstSource: 10_000)
        let found = rule.evaluate(ports + [folded], nowNs: Self.t0 + 3_000_000_000)
        let a = try #require(found.first)
        #expect(found.count == 1 && a.destinationPort == nil && a.features["overflow_packets"] == 900_500)
        #expect(a.explanation.first?.text.contains("to 10 ports and any other") == true, "\(a.explanation)")
        // The fold alone: any port.
        var alone = OverflowFloodRule()
        let b = try #require(alone.evaluate([folded], nowNs: Self.t0).first)
        #expect(b.explanation.first?.text.contains("to any port") == true, "\(b.explanation)")
    }

    @Test("one report per victim, protocol and class: two ports of one victim are one flood, two victims two, an ICMP flood of every type one")
    func grouping() throws {
        var rule = OverflowFloodRule()
        let other = IPAddress("198.18.2.9")!
        let found = rule.evaluate([
            Self.portAggregate(53, packets: 5_000, sources: 500, firstSource: 0),
            Self.portAggregate(123, packets: 5_000, sources: 500, firstSource: 500),
            Self.portAggregate(53, victim: other, packets: 5_000, sources: 500, firstSource: 0),
            Self.portAggregate(80, .tcpSyn, ipProtocol: IPProtocol.tcp, packets: 5_000, sources: 500, firstSource: 0),
        ], nowNs: Self.t0)
        #expect(found.count == 3)
        let udp = found.filter { $0.destinationAddress == Self.victim && $0.label == .udpFlood }
        #expect(udp.count == 1 && udp.first?.destinationPort == nil && udp.first?.features["overflow_packets"] == 10_000)
        #expect(found.contains { $0.destinationAddress == other && $0.destinationPort == 53 })
        #expect(found.contains { $0.label == .synFlood && $0.destinationPort == 80 })
        var icmp = OverflowFloodRule()
        let types = (0..<256).map {
            Self.portAggregate(UInt16($0), .icmp, ipProtocol: IPProtocol.icmp, packets: 2_000, sources: 200, firstSource: $0 * 200)
        }
        let floods = icmp.evaluate(types, nowNs: Self.t0)
        #expect(floods.count == 1 && floods.first?.label == .icmpFlood && floods.first?.features["overflow_ports"] == 256)
    }

    @Test("a continuing flood is reported again only after the repeat interval")
    func repeats() {
        var rule = OverflowFloodRule(repeatAfterNs: 60_000_000_000)
        let second: UInt64 = 1_000_000_000
        var reports = 0
        for i in 0..<130 {
            let t = Self.t0 + UInt64(i) * second
            reports += rule.evaluate([Self.aggregate(packets: 10_000, total: UInt64(i + 1) * 10_000, peers: 5_000, at: t)], nowNs: t).count
        }
        #expect(reports == 3)  // at 0 s, 60 s and 120 s
    }

    @Test("batch times a moment out of order (sources polled apart) do not forget a flood's report; one far ahead does not hold it")
    func timesOutOfOrder() {
        var rule = OverflowFloodRule(repeatAfterNs: 60_000_000_000)
        let second: UInt64 = 1_000_000_000
        var reports = 0
        for i in 0..<50 {
            // After each capture poll, a collector's batch stamped 5 ms before it.
            let t = Self.t0 + UInt64(i) * second
            reports += rule.evaluate([Self.aggregate(packets: 10_000, total: UInt64(i + 1) * 10_000, peers: 5_000, at: t)], nowNs: t).count
            reports += rule.evaluate([], nowNs: t - 5_000_000).count
        }
        #expect(reports == 1)
        // A report stamped a day ahead is as old as a day ago: the flood is reported again now.
        var ahead = OverflowFloodRule(repeatAfterNs: 60_000_000_000)
        let day: UInt64 = 86_400 * second
        #expect(ahead.evaluate([Self.aggregate(packets: 10_000, peers: 5_000, at: Self.t0 + day)], nowNs: Self.t0 + day).count == 1)
        #expect(ahead.evaluate([Self.aggregate(packets: 10_000, peers: 5_000, at: Self.t0)], nowNs: Self.t0).count == 1)
    }

    @Test("the pipeline reports folded floods and counts aggregated and forwarded packets")
    func throughPipeline() async throws {
        let metrics = TestMetrics()
        let sink = RecordingSink()
        let pipeline = Pipeline(sensor: "gw", detector: FlagsEndedFlows(), sink: sink, logger: Logger(label: "t"), metricsFactory: metrics)
        var s = CaptureStatistics()
        s.packetsSeen = 300_000
        s.packetsAggregated = 200_000
        s.bytesAggregated = 8_000_000
        s.forwardedSeen = 100_000
        let batch = FlowBatch(timeNs: Self.t0 + 3_000_000_000, records: [], statistics: s, activeFlows: 0,
                              aggregates: [Self.aggregate(packets: 200_000, peers: 150_000)])
        let found = await pipeline.process(batch, mode: "tc")
        #expect(found.count == 1 && found.first?.sensor == "gw" && found.first?.label == .synFlood)
        #expect(sink.anomalies.count == 1)
        #expect(metrics.counterTotal(label: "flowforest_overflow_packets_total", dimensions: [("mode", "tc")]) == 200_000)
        #expect(metrics.counterTotal(label: "flowforest_overflow_bytes_total", dimensions: [("mode", "tc")]) == 8_000_000)
        #expect(metrics.counterTotal(label: "flowforest_forwarded_seen_packets_total", dimensions: [("mode", "tc")]) == 100_000)
    }

    @Test("a folded flood is stored and opens its incident before the batch's flows are scored")
    func beforeScoring() async throws {
        let sink = RecordingSink()
        let detector = SinkWatcher(sink: sink)
        let pipeline = Pipeline(sensor: "gw", detector: detector, sink: sink, logger: Logger(label: "t"), metricsFactory: TestMetrics())
        let batch = FlowBatch(timeNs: Self.t0 + 3_000_000_000, records: [], statistics: CaptureStatistics(), activeFlows: 0,
                              aggregates: [Self.aggregate(packets: 200_000, peers: 150_000)])
        await pipeline.process(batch, mode: "tc")
        #expect(detector.seenWhenScoring.withLock { $0 } == [AnomalyLabel.synFlood])
        #expect(sink.incidents.contains { $0.change == .opened })
    }
}

/// A detector that notes which anomalies the sink held when it was asked to score.
private final class SinkWatcher: FlowDetector, @unchecked Sendable {
    let sink: RecordingSink
    let seenWhenScoring = Mutex<[AnomalyLabel]>([])
    init(sink: RecordingSink) { self.sink = sink }
    func process(_ batch: FlowBatch, changes: [FlowChange], flows: FlowLedger) -> [Anomaly] {
        let labels = sink.anomalies.map(\.label)
        seenWhenScoring.withLock { $0 = labels }
        return []
    }
    func retrain(nowNs: UInt64) {}
    func setExpected(_ rules: [Suppression]) {}
    var apiStatus: ModelStatus { ModelStatus(state: .scoring) }
    func modelJSON() -> String? { nil }
}
