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

@Suite("Flows, anomalies and incidents filtered by exporter")
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

    @Test("/api/anomalies and /api/incidents?interface= match an exporter with or without its ingress interface; a bad one is 400")
    func anomaliesAndIncidents() async throws {
        let db = try await TestDatabase.make()
        defer { db.remove() }
        let (app, parts) = try await buildApplicationParts(configuration: testConfiguration(db), flowSource: FixedSource(records: []),
                                                           logger: quietLogger, detector: NeverDetects())
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        var pending: [PendingAnomaly] = []
        for (i, (point, incident)) in [("198.18.9.1%3", "inc-1"), ("198.18.9.10%3", "inc-2"), (nil, "inc-3")].enumerated() {
            var a = Anomaly(sensor: "collector", timeMs: now - Int64(i), kind: .host, sourceAddress: IPAddress("198.18.0.\(i + 1)"),
                            destinationAddress: nil, score: 0.8, severity: .high, label: .portScan, interfaceName: point)
            a.incidentUID = incident
            pending.append(PendingAnomaly(uid: "u\(i)", anomaly: a))
        }
        let ids = try await parts.store.insertAnomalies(pending)
        try await parts.store.upsertIncidents(["inc-1", "inc-2", "inc-3"].map { uid in
            Incident(uid: uid, sensor: "collector", label: .portScan, actors: [IPAddress("198.18.0.1")!], targets: [],
                     firstSeenMs: now - 1000, lastSeenMs: now, peakSeverity: .high, peakScore: 0.8, anomalyCount: 1, state: .open, explanation: [])
        })
        try await app.test(.live) { client in
            func list(_ path: String, _ key: String, _ field: String) async throws -> [String] {
                let r = try await client.call(path, token: db.viewerToken)
                #expect(r.status == .ok, "\(path): \(r.text)")
                return ((try r.object()[key] as? [[String: Any]]) ?? []).map { "\($0[field] ?? "null")" }.sorted()
            }
            #expect(try await list("/api/anomalies?interface=198.18.9.1", "anomalies", "interface") == ["198.18.9.1%3"])
            #expect(try await list("/api/anomalies?interface=198.18.9.10%253", "anomalies", "id") == ["\(ids["u1"]!)"])
            #expect(try await list("/api/anomalies", "anomalies", "interface") == ["198.18.9.1%3", "198.18.9.10%3", "<null>"])
            #expect(try await list("/api/incidents?interface=198.18.9.1", "incidents", "id").count == 1)
            let one = try await client.call("/api/incidents?interface=198.18.9.1", token: db.viewerToken).object()
            #expect(((one["incidents"] as? [[String: Any]])?.first?["anomaly_ids"] as? [Int]) == [Int(ids["u0"]!)])
            #expect(try await list("/api/incidents?interface=198.18.9.2", "incidents", "id").isEmpty)
            for path in ["/api/anomalies", "/api/incidents"] {
                for bad in ["", String(repeating: "x", count: 65)] {
                    let r = try await client.call("\(path)?interface=\(bad)", token: db.viewerToken)
                    #expect(r.status == .badRequest, "\(path) interface=\(bad)")
                    #expect((try r.object()["error"] as? String)?.hasPrefix("interface:") == true, "\(r.text)")
                }
            }
        }
    }
}
