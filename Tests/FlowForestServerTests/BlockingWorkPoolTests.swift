import Dispatch
@testable import FlowForestServer
import Synchronization
import Testing

/// The pool behind password checks and ingest decoding: bounded, and fair
/// between requesters.
@Suite("Blocking work pool")
struct BlockingWorkPoolTests {
    /// Jobs that hold their thread until released, counting how many run at once.
    final class Gate: Sendable {
        let m = Mutex((now: 0, peak: 0))
        let gate = DispatchSemaphore(value: 0)

        func hold() -> Bool {
            m.withLock { $0.now += 1; $0.peak = max($0.peak, $0.now) }
            gate.wait()
            m.withLock { $0.now -= 1 }
            return true
        }
    }

    static func refused(_ pool: BlockingWorkPool, key: String? = nil) async -> Bool {
        do {
            _ = try await pool.run(key: key) { true }
            return false
        } catch let error as APIError {
            return error.status == .serviceUnavailable && error.headers[.retryAfter] == "1"
        } catch {
            return false
        }
    }

    @Test("the hashing pool runs at most its width at once and refuses beyond its queue")
    func boundedPool() async throws {
        let pool = BlockingWorkPool(label: "test", width: 2, maxWaiting: 3)
        let running = Gate()
        let jobs = (0..<5).map { _ in Task { try await pool.run { running.hold() } } }
        try await waitFor("2 checks running and 3 waiting") { pool.load == (2, 3) && running.m.withLock { $0.now } == 2 }
        // Queue full: the next check is refused at once, 503 with Retry-After.
        #expect(await Self.refused(pool))
        for _ in 0..<5 { running.gate.signal() }
        for job in jobs { #expect(try await job.value) }
        #expect(running.m.withLock { $0.peak } == 2)
        #expect(pool.load == (0, 0))
    }

    @Test("one requester holds at most its share of the places; the others still queue and are served")
    func fairShare() async throws {
        let pool = BlockingWorkPool(label: "test", width: 1, maxWaiting: 4, maxPerKey: 2)
        let running = Gate()
        let a = (0..<2).map { _ in Task { try await pool.run(key: "agent-a") { running.hold() } } }
        try await waitFor("agent a running one job and queueing one") { pool.load == (1, 1) }
        // A third from the same agent is refused although the queue has room ...
        #expect(await Self.refused(pool, key: "agent-a"))
        // ... which other agents still get.
        let b = Task { try await pool.run(key: "agent-b") { running.hold() } }
        let c = Task { try await pool.run(key: "agent-c") { running.hold() } }
        try await waitFor("agents b and c queued") { pool.load == (1, 3) }
        for _ in 0..<4 { running.gate.signal() }
        for job in a + [b, c] { #expect(try await job.value) }
        #expect(running.m.withLock { $0.peak } == 1)
        // Places come back as jobs finish: agent a may use two again.
        let again = (0..<2).map { _ in Task { try await pool.run(key: "agent-a") { running.hold() } } }
        try await waitFor("agent a's places back") { pool.load == (1, 1) }
        for _ in 0..<2 { running.gate.signal() }
        for job in again { #expect(try await job.value) }
        #expect(pool.load == (0, 0))
    }
}
