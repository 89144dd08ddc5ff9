@testable import FlowForestStore
import Foundation
import Synchronization
import Testing

/// A gate the work waits on without heeding cancellation, as a pooled
/// connection being set up or a query on a dropped connection can.
private final class Gate: Sendable {
    private let state = Mutex<(open: Bool, waiter: CheckedContinuation<Void, Never>?)>((false, nil))

    func wait() async {
        await withCheckedContinuation { continuation in
            let resumeNow = state.withLock { s -> Bool in
                if s.open { return true }
                s.waiter = continuation
                return false
            }
            if resumeNow { continuation.resume() }
        }
    }

    func open() {
        let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
            s.open = true
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?.resume()
    }

    var isOpen: Bool { state.withLock { $0.open } }
}

/// The writer counts an outage only when a query gives up at its deadline:
/// the deadline must answer even if the work does not end when cancelled.
@Suite("Store query deadline")
struct StoreDeadlineTests {
    @Test("work that ignores cancellation: the caller gets 'unavailable' at the deadline, before the work ends")
    func deadlineAnswersFirst() async throws {
        let gate = Gate()
        // Only a safety net: the gate opens by itself after 30 s so a broken deadline fails instead of hanging.
        let safety = Task { try await Task.sleep(for: .seconds(30)); gate.open() }
        defer { safety.cancel() }
        do {
            _ = try await Store.withDeadline(.milliseconds(200)) { await gate.wait(); return 1 }
            Issue.record("the work's result came back: the deadline never answered")
        } catch let error as StoreError {
            #expect("\(error)".contains("did not answer"), "\(error)")
        }
        #expect(!gate.isOpen, "the caller was answered only when the work ended, not at its deadline")
        gate.open()
    }

    @Test("work that ends in time: its result or its error, unchanged")
    func resultInTime() async throws {
        #expect(try await Store.withDeadline(.seconds(30)) { 42 } == 42)
        struct Refused: Error {}
        await #expect(throws: Refused.self) { try await Store.withDeadline(.seconds(30)) { () async throws -> Int in throw Refused() } }
    }

    @Test("an API read on PostgreSQL past its deadline is ended by the server too, and its connection reads on afterwards")
    func readEndedByServer() async throws {
        try await withFreshStore(.postgresql) { store, _ in
            let start = ContinuousClock.now
            await #expect(throws: (any Error).self) {
                try await Store.$deadline.withValue(.now + .seconds(1)) {
                    try await store.withSQL(.read) { db in try await db.raw("SELECT pg_sleep(20)").run() }
                }
            }
            #expect(ContinuousClock.now - start < .seconds(10))
            // Nothing is left sleeping on the server once its statement timeout passed.
            var sleeping = -1
            let until = ContinuousClock.now + .seconds(10)
            repeat {
                if sleeping > 0 { try await Task.sleep(for: .milliseconds(50)) }
                sleeping = try await store.withSQL(.write) { db in
                    try await db.raw("SELECT COUNT(*) AS n FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%' AND state = 'active'")
                        .first()?.decode(column: "n", as: Int.self) ?? -1
                }
            } while sleeping != 0 && ContinuousClock.now < until
            #expect(sleeping == 0, "the read still runs on the server")
            // Reads go on, and writes on the pooled connections carry no timeout of a read.
            #expect(try await store.withSQL(.read) { db in try await db.raw("SELECT 1 AS n").first()?.decode(column: "n", as: Int.self) } == 1)
            for _ in 0..<4 {
                let setting = try await store.withSQL(.write) { db in
                    try await db.raw("SHOW statement_timeout").first()?.decode(column: "statement_timeout", as: String.self)
                }
                #expect(setting == "0", "a write's connection: statement_timeout \(setting ?? "?")")
            }
        }
    }
}
