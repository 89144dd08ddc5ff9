import FlowForestCore
import FlowForestServer
@testable import FlowForestStore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

/// Finding 7: /api/health said "ok" while no write could land.
@Suite("Store health reports failed writes and a lost database file", .serialized)
struct StoreHealthTests {
    @Test("deleting the SQLite file under a running store turns health degraded (503) and flowforest_store_healthy 0")
    func deletedFile() async throws {
        try await withService(.live) { client, db, parts in
            let ok = try await client.call("/api/health", token: db.viewerToken)
            #expect(ok.status == .ok)
            #expect(try ok.object()["store"] as? String == "ok")
            #expect(metricValue(try await client.call("/metrics", token: db.viewerToken).text, "flowforest_store_healthy") == 1)

            guard case .sqlite(let path) = db.location else { throw TestFailure("not SQLite") }
            for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) }
            // Writes still "succeed", into the unlinked file: only the file check can tell.
            #expect(parts.writer.enqueue(anomalies: [storedAnomaly(1, src: "198.18.0.1", dst: "198.18.0.2", severity: .high).anomaly]))
            try await waitFor("the anomaly written to the deleted file") { parts.writer.pending.anomalies == 0 }

            let health = try await client.call("/api/health", token: db.viewerToken)
            #expect(health.status == .serviceUnavailable)
            let body = try health.object()
            #expect(body["status"] as? String == "degraded")
            #expect(body["store"] as? String == "degraded")
            #expect((body["reason"] as? String)?.contains("is gone") == true, "\(body)")
            #expect(metricValue(try await client.call("/metrics", token: db.viewerToken).text, "flowforest_store_healthy") == 0)
        }
    }

    @Test("writes failing behind another process's exclusive lock turn health degraded; the next successful write recovers it")
    func failedWrites() async throws {
        try await withService(.live) { client, db, parts in
            // Another connection, as another process would, takes the write lock and keeps it.
            let other = try await Store.open(db.location, logger: quietLogger)
            try await other.withSQL { try await $0.raw("BEGIN EXCLUSIVE").run() }
            #expect(parts.writer.enqueue(anomalies: [storedAnomaly(2, src: "198.18.0.3", dst: "198.18.0.4", severity: .high).anomaly]))
            try await waitFor("a failed write (SQLite busy after its 5 s timeout)", seconds: 30) { parts.writer.errorCount >= 1 }

            // A failure ends health's trust in earlier successful writes.
            #expect(!parts.writer.wroteSuccessfully(within: .seconds(3600)))
            let degraded = try await client.call("/api/health", token: db.viewerToken)
            #expect(degraded.status == .serviceUnavailable)
            let body = try degraded.object()
            #expect(body["store"] as? String == "degraded")
            #expect((body["reason"] as? String)?.contains("writing anomalies failed") == true, "\(body)")
            #expect(metricValue(try await client.call("/metrics", token: db.viewerToken).text, "flowforest_store_healthy") == 0)

            try await other.withSQL { try await $0.raw("COMMIT").run() }
            await other.close()
            try await waitFor("the anomaly written once the lock is gone", seconds: 30) { parts.writer.pending.anomalies == 0 }
            #expect(parts.writer.wroteSuccessfully(within: .seconds(3600)))
            let recovered = try await client.call("/api/health", token: db.viewerToken)
            #expect(recovered.status == .ok)
            #expect(try recovered.object()["store"] as? String == "ok")
            #expect(metricValue(try await client.call("/metrics", token: db.viewerToken).text, "flowforest_store_healthy") == 1)
        }
    }
}
