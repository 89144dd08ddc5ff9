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
}
