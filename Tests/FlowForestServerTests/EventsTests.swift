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

    @Test("the event stream needs a credential")
    func needsCredential() async throws {
        try await withService { client, _, _ async throws in
            #expect(try await client.call("/api/events").status == .unauthorized)
        }
    }
}

/// A server-sent event stream read by curl while the test runs, so the test
/// waits for the events it needs rather than reading for a fixed time.
final class EventStream: Sendable {
    private final class Received: Sendable { let text = Mutex("") }
    private let process: Process
    private let received = Received()

    init(url: String, token: String) throws {
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        // --max-time bounds a stream nobody closes, well beyond any wait below.
        process.arguments = ["-sN", "--max-time", "120", "-H", "Authorization: Bearer \(token)", url]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        let received = self.received
        pipe.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            if data.isEmpty { handle.readabilityHandler = nil; return }
            received.text.withLock { $0 += String(decoding: data, as: UTF8.self) }
        }
        try process.run()
    }

    /// Everything read so far.
    var text: String { received.text.withLock { $0 } }

    func wait(for what: String, timeout: Double = 15, _ condition: @escaping (String) -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(timeout)
        while !condition(text) {
            guard ContinuousClock.now < deadline, process.isRunning else {
                let state = process.isRunning ? "" : "curl exited \(process.terminationStatus); "
                throw WaitTimedOut(what: "\(what) in the event stream", seconds: timeout, detail: "\(state)got: \(text.suffix(1000))")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    func close() {
        // SIGKILL: the runner's threads block SIGTERM, and curl inherits that mask.
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }
}
