import FlowForestCore
import FlowForestPipeline
import Logging
import MetricsTestKit
import Testing

/// `--max-flows` bounds the open flows user space holds over every source.
/// Flows past the cap are not held; their records are counted, and their
/// packets still count, once each.
@Suite("--max-flows")
struct MaxFlowsTests {
    static let cap = 100
    static let flows = 1_000

    /// One packet on each of `Self.flows` flows (client ports 1...), at `timeNs`.
    static func packets(into table: inout FlowTable, at timeNs: UInt64) {
        for port in 1...flows { table.add(syn(port: UInt16(port), at: timeNs)) }
    }

    @Test("past the cap, open flows stay at the cap, the others' records are counted, and every packet counts exactly once")
    func capHolds() async throws {
        let metrics = TestMetrics()
        let pipeline = Pipeline(sensor: "s1", maxFlows: Self.cap, logger: Logger(label: "t"), metricsFactory: metrics)
        func untracked() -> Int64 { metrics.counterTotal(label: "flowforest_flow_records_untracked_total") }
        var table = FlowTable()
        let t0 = IngestExpiryTests.start

        // Two polls of running totals while every flow is active.
        for poll in 0..<2 {
            let now = t0 + UInt64(poll) * 1_000_000_000
            Self.packets(into: &table, at: now)
            let records = table.advance(to: now + 500_000_000)
            #expect(records.count == Self.flows && records.allSatisfy { $0.state != .ended })
            await pipeline.process(FlowBatch(timeNs: now + 500_000_000, records: records, statistics: table.statistics,
                                             activeFlows: table.activeCount), mode: "pcap")
            #expect(await pipeline.openFlows(limit: Self.flows).count == Self.cap, "the ledger holds no more than --max-flows flows")
            #expect(untracked() == Int64((Self.flows - Self.cap) * (poll + 1)), "one untracked record per flow past the cap per poll")
            // Running totals of an untracked flow repeat its packets: none of them may count twice.
            #expect(await pipeline.packetsTotal <= UInt64(Self.flows * (poll + 1)))
        }
        #expect(await pipeline.packetsTotal == UInt64(Self.cap * 2), "held flows count as they go")

        // The flows end (idle): each untracked flow's ended record brings its packets.
        let end = t0 + 120_000_000_000
        let ended = table.advance(to: end)
        #expect(ended.count == Self.flows && ended.allSatisfy { $0.state == .ended })
        await pipeline.process(FlowBatch(timeNs: end, records: ended, statistics: table.statistics, activeFlows: table.activeCount),
                               mode: "pcap")
        #expect(await pipeline.packetsTotal == UInt64(Self.flows * 2), "every packet of every flow counted once")
        #expect(await pipeline.bytesTotal == UInt64(Self.flows * 2 * 60))
        #expect(metrics.counterTotal(label: "flowforest_packets_total", dimensions: [("mode", "pcap"), ("direction", "forward")])
                == Int64(Self.flows * 2))
        // Ended records leave the ledger, so an untracked flow's ended record may find room (tracked) or not.
        #expect((Int64((Self.flows - Self.cap) * 2)...Int64((Self.flows - Self.cap) * 3)).contains(untracked()))
        #expect(await pipeline.openFlows(limit: Self.flows).isEmpty)
    }

    @Test("the open-flow list is the busiest flows, busiest first, however many more are open")
    func busiestFirst() async throws {
        let pipeline = Pipeline(sensor: "s1", logger: Logger(label: "t"), metricsFactory: TestMetrics())
        var table = FlowTable()
        let t0 = IngestExpiryTests.start
        // Flow on client port p carries (p * 7 mod 50) + 1 packets: busyness not in port order.
        for port in 1...50 {
            for i in 0..<(port * 7 % 50 + 1) { table.add(syn(port: UInt16(port), at: t0 + UInt64(i) * 1_000_000)) }
        }
        let now = t0 + 1_000_000_000
        await pipeline.process(FlowBatch(timeNs: now, records: table.advance(to: now), statistics: table.statistics,
                                         activeFlows: table.activeCount), mode: "pcap")
        let top = await pipeline.openFlows(limit: 5).map(\.record.bytes)
        let all = await pipeline.openFlows(limit: 50).map(\.record.bytes)
        #expect(all.count == 50 && all == all.sorted(by: >))
        #expect(top == Array(all.prefix(5)) && top.first == 50 * 60)
    }

    @Test("once flows end, the room they leave is taken by new flows again")
    func roomComesBack() async throws {
        let metrics = TestMetrics()
        let pipeline = Pipeline(sensor: "s1", maxFlows: 2, logger: Logger(label: "t"), metricsFactory: metrics)
        func untracked() -> Int64 { metrics.counterTotal(label: "flowforest_flow_records_untracked_total") }
        func poll(_ table: inout FlowTable, at now: UInt64) async {
            let records = table.advance(to: now)
            await pipeline.process(FlowBatch(timeNs: now, records: records, statistics: table.statistics,
                                             activeFlows: table.activeCount), mode: "pcap")
        }
        var table = FlowTable()
        let t0 = IngestExpiryTests.start
        for port in UInt16(1)...3 { table.add(syn(port: port, at: t0)) }
        await poll(&table, at: t0 + 500_000_000)
        #expect(await pipeline.openFlows(limit: 10).count == 2)
        #expect(untracked() == 1)
        await poll(&table, at: t0 + 120_000_000_000)
        #expect(await pipeline.openFlows(limit: 10).isEmpty)
        #expect(await pipeline.packetsTotal == 3)

        let later = t0 + 121_000_000_000
        let before = untracked()
        for port in UInt16(4)...5 { table.add(syn(port: port, at: later)) }
        await poll(&table, at: later + 500_000_000)
        #expect(await pipeline.openFlows(limit: 10).map(\.record.sourcePort).sorted() == [4, 5])
        #expect(untracked() == before, "new flows within the cap are held")
        #expect(await pipeline.packetsTotal == 5)
    }
}
