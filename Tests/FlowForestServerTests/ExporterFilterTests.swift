import FlowForestCore
import FlowForestServer
import FlowForestStore
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

/// A source of fixed batches: flows as the collector names them.
private struct FixedSource: FlowSource {
    let records: [FlowRecord]
    var mode: String { "collect" }

    func batches() -> AsyncThrowingStream<FlowBatch, any Error> {
        let records = self.records
        return AsyncThrowingStream { continuation in
            let now = UInt64(Date().timeIntervalSince1970 * 1e9)
            continuation.yield(FlowBatch(timeNs: now, records: records, statistics: CaptureStatistics(), activeFlows: 0))
            continuation.finish()
        }
    }

    func stop() {}
}

@Suite("Flows filtered by exporter")
struct ExporterFilterTests {
    @Test("/api/flows?interface= matches an exporter with or without its ingress interface")
    func filter() async throws {
        let db = try await TestDatabase.make()
        defer { db.remove() }
        let now = UInt64(Date().timeIntervalSince1970 * 1e9) - 5_000_000_000
        let records = [("198.18.9.1%3", 1), ("198.18.9.1", 2), ("198.18.9.10%3", 3)].map { name, id in
            var f = DirectionStats()
            (f.packets, f.bytes, f.firstSeenNs, f.lastSeenNs) = (2, 120, now, now + 1_000_000)
            return FlowRecord(id: UInt64(id), sourceAddress: IPAddress("198.18.0.\(id)")!, destinationAddress: IPAddress("198.18.1.1")!,
                              sourcePort: 40000, destinationPort: 53, ipProtocol: IPProtocol.udp, interfaceName: name,
                              forward: f, state: .ended, endReason: .idle)
        }
        let (app, parts) = try await buildApplicationParts(configuration: testConfiguration(db), flowSource: FixedSource(records: records),
                                                           logger: quietLogger, detector: NeverDetects())
        try await app.test(.live) { client in
            try await waitFor("the collected flows stored") { try await parts.store.flowCount() == 3 }
            func ids(_ query: String) async throws -> [Int] {
                let flows = try await client.call("/api/flows?\(query)", token: db.viewerToken).object()
                return ((flows["recent"] as? [[String: Any]]) ?? []).compactMap { $0["id"] as? Int }.sorted()
            }
            #expect(try await ids("interface=198.18.9.1") == [1, 2])
            #expect(try await ids("interface=198.18.9.1%253") == [1])
            #expect(try await ids("interface=198.18.9.2").isEmpty)
        }
    }
}
