import FlowForestCore
import FlowForestServer
import FlowForestStore
import Foundation
import Hummingbird
import HummingbirdTesting
import Synchronization
import Testing

@Suite("Server-sent events")
struct EventsTests {
    @Test("a live client receives stored anomalies and once-a-second stats")
    func liveEvents() async throws {
        try await withService(.live, configure: { $0.tickInterval = .milliseconds(500) }) { client, db, parts in
            let port = try #require(client.port)
            let stream = try EventStream(url: "http://127.0.0.1:\(port)/api/events", token: db.viewerToken)
            defer { stream.close() }
            // A stats event shows the subscription is live before the anomaly is stored.
            try await stream.wait(for: "a first stats event") { $0.contains("event: stats") }
            #expect(parts.writer.enqueue(anomalies: [storedAnomaly(1, src: "198.18.0.7", dst: "198.18.0.8", severity: .critical).anomaly]))
            try await stream.wait(for: "the stored anomaly's event") { $0.contains("event: anomaly") && $0.hasSuffix("\n\n") }
            let text = stream.text
            let events = text.components(separatedBy: "\n\n")
            let anomaly = try #require(events.first { $0.hasPrefix("event: anomaly") }, "no anomaly event in: \(text)")
            #expect(anomaly.contains("id: 1\n"))
            let data = try #require(anomaly.split(separator: "\n").first { $0.hasPrefix("data: ") }).dropFirst(6)
            let json = try JSONSerialization.jsonObject(with: Data(data.utf8)) as? [String: Any]
            #expect(json?["src_ip"] as? String == "198.18.0.7")
            #expect(json?["severity"] as? String == "critical")
            #expect(json?["id"] as? Int == 1)
            let stats = events.filter { $0.hasPrefix("event: stats") }
            #expect(stats.count >= 1, "\(stats.count) stats events")
            #expect(stats.last?.contains("\"anomalies_total\"") == true)
        }
    }

    @Test("an open stream ends once its credential goes: a revoked token, a removed user, a signed-out session; others stay",
          .timeLimit(.minutes(1)))
    func endsWithCredential() async throws {
        try await withService(.live, configure: { $0.tickInterval = .milliseconds(500); $0.sessionRecheck = .zero }) { client, db, parts in
            let port = try #require(client.port)
            let url = "http://127.0.0.1:\(port)/api/events"
            let alice = try await client.signIn("alice", "correct horse battery")
            let victor = try await client.signIn("victor", "viewer password")
            let leaving = try await client.signIn("victor", "viewer password")
            let streams = (token: try EventStream(url: url, token: db.viewerToken), alice: try EventStream(url: url, cookie: alice.cookie),
                           leaving: try EventStream(url: url, cookie: leaving.cookie), victor: try EventStream(url: url, cookie: victor.cookie))
            defer { for s in [streams.token, streams.alice, streams.leaving, streams.victor] { s.close() } }
            for s in [streams.token, streams.alice, streams.leaving, streams.victor] {
                try await s.wait(for: "a first stats event") { $0.contains("event: stats") }
            }
            #expect(try await parts.store.removeToken(name: "viewer-token"))
            #expect(try await parts.store.removeUser(name: "alice"))
            #expect(try await client.call("/api/logout", .post, cookie: leaving.cookie, headers: leaving.sameOrigin).status.code < 300)
            try await waitFor("the three streams to end", seconds: 30) {
                !streams.token.isOpen && !streams.alice.isOpen && !streams.leaving.isOpen
            }
            // Victor's own session stands: his stream still gets the next stats events.
            let seen = streams.victor.text.count
            try await streams.victor.wait(for: "stats after the others ended") { $0.count > seen && $0.hasSuffix("\n\n") }
            #expect(streams.victor.isOpen)
        }
    }

    @Test("a HEAD request for the event stream holds no subscription")
    func headHoldsNothing() async throws {
        try await withService(.live, configure: { $0.tickInterval = .milliseconds(500) }) { client, db, parts in
            for _ in 0..<3 {
                #expect(try await client.call("/api/events", .head, token: db.viewerToken).status == .ok)
            }
            let port = try #require(client.port)
            let stream = try EventStream(url: "http://127.0.0.1:\(port)/api/events", token: db.viewerToken)
            defer { stream.close() }
            try await stream.wait(for: "a first stats event") { $0.contains("event: stats") }
            // The one real stream only.
            let clients = parts.metrics.render().split(separator: "\n").first { $0.hasPrefix("flowforest_sse_clients ") }
            #expect(clients.flatMap { Double($0.split(separator: " ").last ?? "") } == 1, "\(clients ?? "no series")")
        }
    }

    @Test("the event stream needs a credential")
    func needsCredential() async throws {
        try await withService { client, _, _ async throws in
            #expect(try await client.call("/api/events").status == .unauthorized)
        }
    }
}
