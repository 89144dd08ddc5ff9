import FlowForestCore
@testable import FlowForestServer
import Synchronization
import Testing

@Suite("The alert routes' delivery loop")
struct DeliveryLoopTests {
    @Test("back-off doubles from the first delay to the last and starts over after a success")
    func backoff() {
        var b = Backoff(first: .milliseconds(500), last: .seconds(3))
        #expect((0..<5).map { _ in b.failed() } == [.milliseconds(500), .seconds(1), .seconds(2), .seconds(3), .seconds(3)])
        b.succeeded()
        #expect(b.failed() == .milliseconds(500))
    }

    @Test("changes reach the route in order, a failed delivery is retried until it succeeds, and the end delivers once more")
    func retriesAndFinishes() async throws {
        var configuration = AlertConfiguration()
        configuration.retryDelay = .milliseconds(1)
        configuration.maxRetryDelay = .milliseconds(4)
        let loop = DeliveryLoop(configuration: configuration)
        let (feed, input) = AsyncStream.makeStream(of: [IncidentUpdate].self)
        // (changes accepted, attempts, finishes); the first three attempts fail.
        let seen = Mutex<(accepted: [IncidentChange], attempts: Int, finished: Int)>(([], 0, 0))
        let run = Task {
            await loop.run(feed: feed, accept: { updates in
                seen.withLock { $0.accepted += updates.map(\.change) }
                loop.poke()
            }, deliver: {
                let n = seen.withLock { s -> Int in s.attempts += 1; return s.attempts }
                return n <= 3 ? .failed(progressed: n == 2) : .delivered
            }, finish: { seen.withLock { $0.finished += 1 } })
        }
        let incident = Incident(uid: "inc-1", sensor: "s", label: .portScan, actors: [], targets: [], firstSeenMs: 0, lastSeenMs: 0,
                                peakSeverity: .high, peakScore: 0.9, anomalyCount: 1, state: .open, explanation: [])
        input.yield([IncidentUpdate(change: .opened, incident: incident)])
        input.yield([IncidentUpdate(change: .updated, incident: incident), IncidentUpdate(change: .closed, incident: incident)])
        try await waitFor("a delivery after three failures") { seen.withLock { $0.attempts >= 4 } }
        #expect(seen.withLock { $0.accepted } == [.opened, .updated, .closed])
        #expect(seen.withLock { $0.finished } == 0)
        input.finish()
        await run.value
        #expect(seen.withLock { $0.finished } == 1)
    }
}
