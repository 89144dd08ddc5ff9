@testable import FlowForestServer
import Foundation
import Hummingbird
import Synchronization
import Testing

/// The API's store reads take turns: a few run, some wait in order, the
/// rest are told to come back, so slow lists cannot take every connection.
@Suite("Store read admission")
struct ReadAdmissionTests {
    /// Holds readers until opened.
    final class Latch: Sendable {
        private let state = Mutex<(open: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))
        func wait() async {
            await withCheckedContinuation { c in
                let now = state.withLock { s -> Bool in
                    if s.open { return true }
                    s.waiters.append(c)
                    return false
                }
                if now { c.resume() }
            }
        }
        func open() {
            let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
                s.open = true
                defer { s.waiters = [] }
                return s.waiters
            }
            for w in waiters { w.resume() }
        }
    }

    final class Started: Sendable {
        let count = Mutex(0)
    }

    @Test("past the running and waiting places a read is answered 503 with Retry-After and counted; the waiting ones run once places free",
          .timeLimit(.minutes(1)))
    func boundedAndOrdered() async throws {
        let metrics = FlowForestMetrics()
        let admission = ReadAdmission(width: 2, maxWaiting: 1, factory: metrics.factory)
        let latch = Latch()
        let started = Started()
        var readers: [Task<Int, any Error>] = []
        for i in 0..<3 {
            readers.append(Task {
                try await admission.run {
                    started.count.withLock { $0 += 1 }
                    await latch.wait()
                    return i
                }
            })
            // In order: two run, the third waits.
            try await waitFor("reader \(i) admitted or queued") {
                started.count.withLock { $0 } == min(i + 1, 2) && admission.waitingCount == max(0, i - 1)
            }
        }
        #expect(started.count.withLock { $0 } == 2, "two places")
        do {
            _ = try await admission.run { 0 }
            Issue.record("a fourth read ran with every place taken")
        } catch let error as APIError {
            #expect(error.status == .serviceUnavailable && error.headers[.retryAfter] == "1")
        }
        latch.open()
        var done: [Int] = []
        for r in readers { done.append(try await r.value) }
        #expect(done == [0, 1, 2] && started.count.withLock { $0 } == 3)
        let refused = metrics.render().split(separator: "\n").first { $0.hasPrefix("flowforest_http_store_reads_refused_total") }
        #expect(refused?.hasSuffix(" 1") == true, "\(refused ?? "no series")")
        // Every place is free again.
        #expect(try await admission.run { 7 } == 7)
    }
}
