import FlowForestCore
import FlowForestPipeline
import MetricsTestKit
import Synchronization
import Testing

/// A server clock the test moves by hand.
final class ManualClock: Sendable {
    private let now: Mutex<UInt64>
    init(_ start: UInt64) { now = Mutex(start) }
    func advance(seconds: Double) { now.withLock { $0 += UInt64(seconds * 1e9) } }
    var nowNs: UInt64 { now.withLock { $0 } }
}

/// A TCP SYN from `client` (one flow per client port) stamped `timeNs`.
func syn(port: UInt16, at timeNs: UInt64) -> PacketSummary {
    PacketSummary(timestampNs: timeNs, source: IPAddress("198.18.0.1")!, destination: IPAddress("198.18.0.2")!,
                  sourcePort: port, destinationPort: 443, ipProtocol: IPProtocol.tcp, ipLength: 60, tcpFlags: [.syn])
}

@Suite("Ingest flows expire by the server's clock")
struct IngestExpiryTests {
    static let start: UInt64 = 1_764_064_800_000_000_000  // 2025-11-25T10:00:00Z
    static let configuration = FlowTableConfiguration(idleTimeoutNs: 15_000_000_000, activeTimeoutNs: 60_000_000_000)

    @Test("flows stamped ahead of the server clock end once idle by that clock",
          arguments: [
            // The edge of the default skew window (300 s).
            299.0,
            // Far beyond any window: the table itself must not be pinned open.
            15_778_800_000.0,  // about year 2500
          ])
    func futureStampsEnd(aheadSeconds: Double) async throws {
        let clock = ManualClock(Self.start)
        let table = IngestTable(configuration: Self.configuration, metricsFactory: TestMetrics(), clock: { clock.nowNs })
        let stamp = Self.start + UInt64(aheadSeconds * 1e9)
        let added = await table.add((1...3).map { syn(port: $0, at: stamp) })
        #expect(added.flowsStarted == 3)
        clock.advance(seconds: 1)
        let first = await table.advance()
        #expect(first.records.allSatisfy { $0.state == .active } && first.activeFlows == 3)
        // An agent's packets come when it sends them: the detector spreads a record's traffic by their times.
        #expect(first.reporting == .delayed)
        // Idle timeout by the server clock: every flow ends, however far ahead its stamps are.
        clock.advance(seconds: 15)
        let later = await table.advance()
        #expect(later.records.count == 3)
        #expect(later.records.allSatisfy { $0.state == .ended && $0.endReason == .idle })
        #expect(later.activeFlows == 0)
        #expect(await table.activeCount == 0)
    }

    @Test("a flow that keeps receiving packets stays open and gets interim records by the server clock")
    func busyFutureFlowCheckpoints() async throws {
        let clock = ManualClock(Self.start)
        let table = IngestTable(configuration: Self.configuration, metricsFactory: TestMetrics(), clock: { clock.nowNs })
        var interim: [Int] = []
        for second in 1...61 {
            _ = await table.add([syn(port: 1, at: Self.start + 299_000_000_000 + UInt64(second) * 1_000_000_000)])
            clock.advance(seconds: 1)
            let batch = await table.advance()
            #expect(!batch.records.contains { $0.state == .ended }, "second \(second)")
            if batch.records.contains(where: { $0.state == .interim }) { interim.append(second) }
        }
        // The active window started at the first arrival, not at the packet's stamp 299 s ahead.
        #expect(interim == [60])
    }
}

@Suite("Ingest is bounded by --max-flows")
struct IngestLimitTests {
    @Test("flows beyond max-flows are refused and their packets counted in a metric")
    func bounded() async throws {
        let metrics = TestMetrics()
        var configuration = FlowTableConfiguration()
        configuration.maxFlows = 3
        let start = IngestExpiryTests.start
        let table = IngestTable(configuration: configuration, metricsFactory: metrics, clock: { start })
        let added = await table.add((1...5).map { syn(port: $0, at: start) })
        #expect(added.flowsStarted == 3)
        #expect(added.refused == 2)
        #expect(added.activeFlows == 3)
        // Packets of an open flow still count; a new flow is still refused.
        let more = await table.add([syn(port: 1, at: start), syn(port: 9, at: start)])
        #expect(more.refused == 1 && more.activeFlows == 3)
        #expect(metrics.counterTotal(label: "flowforest_ingest_table_full_packets_total") == 3)
        let batch = await table.advance()
        #expect(batch.statistics.tableFull == 3)
        #expect(batch.activeFlows == 3)
    }
}
