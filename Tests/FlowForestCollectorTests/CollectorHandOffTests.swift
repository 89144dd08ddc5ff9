import CoreMetrics
import FlowForestCollector
import FlowForestCore
import FlowForestIPFIX
import Foundation
import Logging
import Synchronization
import Testing

/// A pipeline that falls behind holds the collector back instead of letting
/// batches pile up: the collector thread waits for room, still reading
/// datagrams into its bounded table, and every flow arrives in the end.
@Suite("Collector hand-off to a slow pipeline")
struct CollectorHandOffTests {
    @Test("a slow consumer gets one batch per turn, not a backlog, and every flow's packets", .timeLimit(.minutes(1)))
    func slowConsumer() async throws {
        var logger = Logger(label: "collect-handoff")
        logger.logLevel = .warning
        let port = RoundTripTests.freeUDPPort()
        let source = try CollectorSource(endpoints: [CollectorEndpoint("udp://127.0.0.1:\(port)")], pollIntervalNs: 10_000_000,
                                         metricsFactory: NOOPMetricsHandler.instance, logger: logger)
        let exporter = try IPFIXExporter(destination: ExportDestination("udp://127.0.0.1:\(port)"), biflow: false,
                                         metricsFactory: NOOPMetricsHandler.instance, logger: logger)
        // Ten rounds of the round-trip's IPv4 flows, each round towards
        // destinations of its own, sent while the consumer takes 100 ms over every batch.
        let rounds = 10
        let now = UInt64(Date().timeIntervalSince1970 * 1e9)
        let sent = (0..<rounds).map { round in
            RoundTripTests.traffic(nowNs: now).compactMap { r -> FlowRecord? in
                guard let destination = r.destinationAddress.ipv4Value else { return nil }
                var r = r
                r.id += UInt64(round) * 10_000
                r.destinationAddress = IPAddress(ipv4: destination &+ UInt32(round) << 8)
                return r
            }
        }
        // Once the collector has read every sent packet, the source stops (and ends the flows).
        let want = RoundTripTests.totals(sent.flatMap { $0 })
        let expectedPackets = sent.flatMap { $0 }.filter { $0.state == .ended }.reduce(0) { $0 + $1.packets }
        let stopped = StopTime()
        let consumer = Task { () throws -> (batches: Int, records: [FlowRecord]) in
            var batches = 0, records: [FlowRecord] = []
            for try await batch in source.batches() {
                batches += 1
                records += batch.records
                if stopped.value.withLock({ $0 == nil }), batch.statistics.packetsAccounted >= expectedPackets {
                    stopped.value.withLock { $0 = Date() }
                    source.stop()
                }
                try await Task.sleep(for: .milliseconds(100))
            }
            return (batches, records)
        }
        let started = Date()
        for round in sent {
            exporter.export(round, wait: true)
            try await Task.sleep(for: .milliseconds(50))
        }
        exporter.finish()
        // A deadline in case a datagram is lost: stop anyway, and the comparison says what is missing.
        let deadline = Task {
            try await Task.sleep(for: .seconds(20))
            stopped.value.withLock { $0 = $0 ?? Date() }
            source.stop()
        }
        let (batches, received) = try await consumer.value
        deadline.cancel()
        let elapsed = try #require(stopped.value.withLock { $0 }).timeIntervalSince(started)

        // Unbounded, the 10 ms polls would have queued a batch for every 10 ms
        // until the stop, and the consumer would take them all, 100 ms each.
        #expect(Double(batches) <= elapsed / 0.1 + 3, "\(batches) batches for \(elapsed) s until the stop")
        let got = RoundTripTests.totals(received)
        #expect(got.count == want.count, "flows: collected \(got.count), sent \(want.count)")
        #expect(got == want)
    }
}

/// When the source was stopped, set once by whoever stops it first.
final class StopTime: Sendable {
    let value = Mutex<Date?>(nil)
}
