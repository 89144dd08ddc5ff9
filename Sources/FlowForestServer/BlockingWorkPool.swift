import Foundation
import Synchronization

private enum PoolDecision { case start, queued, refused }

/// Runs CPU-heavy request work (password hashing, decoding large ingest
/// bodies) on at most `width` Dispatch threads, never on the event loops or
/// the Swift concurrency pool, so a few expensive requests cannot stall the
/// others (`/api/health` among them). At most `maxWaiting` jobs queue behind
/// them; more get 503 with `Retry-After` and `busy` as the message.
///
/// With `maxPerKey`, one requester (a key such as an agent's credential)
/// holds at most that many of the running and waiting places, so a client
/// sending many large requests at once cannot take the queue from the rest.
final class BlockingWorkPool: Sendable {
    typealias Job = @Sendable () -> Void
    let width: Int
    let maxWaiting: Int
    let maxPerKey: Int?
    let busy: String
    private let queue: DispatchQueue
    private let state = Mutex<State>(State())

    private struct State {
        var running = 0
        var waiting: [Job] = []
        /// Running and waiting jobs per key, for keys that hold any.
        var held: [String: Int] = [:]
    }

    /// Two jobs at once at most, one on a machine with two cores or fewer.
    static let defaultWidth = min(2, max(1, ProcessInfo.processInfo.activeProcessorCount - 1))

    init(label: String, width: Int = BlockingWorkPool.defaultWidth, maxWaiting: Int = 16, maxPerKey: Int? = nil,
         busy: String = "server busy; retry shortly") {
        self.width = max(1, width)
        self.maxWaiting = maxWaiting
        self.maxPerKey = maxPerKey.map { max(1, $0) }
        self.busy = busy
        queue = DispatchQueue(label: label, attributes: .concurrent)
    }

    /// Runs `work` on the pool. `key` names the requester for `maxPerKey`.
    func run<T: Sendable>(key: String? = nil, _ work: @escaping @Sendable () -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<T, any Error>) in
            // The slot is released before the caller resumes, so a caller that
            // sees its result also sees the pool's load without its check.
            let job: Job = { [self] in
                let result = work()
                finished(key: key)
                c.resume(returning: result)
            }
            let decision = state.withLock { s -> PoolDecision in
                if let key, let maxPerKey, s.held[key, default: 0] >= maxPerKey { return .refused }
                let decision: PoolDecision
                if s.running < width {
                    s.running += 1
                    decision = .start
                } else {
                    guard s.waiting.count < maxWaiting else { return .refused }
                    s.waiting.append(job)
                    decision = .queued
                }
                if let key { s.held[key, default: 0] += 1 }
                return decision
            }
            switch decision {
            case .start: queue.async(execute: job)
            case .queued: break
            case .refused:
                c.resume(throwing: APIError(.serviceUnavailable, busy, headers: [.retryAfter: "1"]))
            }
        }
    }

    /// Checks running and waiting now.
    var load: (running: Int, waiting: Int) { state.withLock { ($0.running, $0.waiting.count) } }

    private func finished(key: String?) {
        let next = state.withLock { s -> Job? in
            if let key {
                let left = s.held[key, default: 1] - 1
                s.held[key] = left > 0 ? left : nil
            }
            guard !s.waiting.isEmpty else {
                s.running -= 1
                return nil
            }
            return s.waiting.removeFirst()
        }
        if let next { queue.async(execute: next) }
    }
}
