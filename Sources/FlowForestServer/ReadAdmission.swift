import CoreMetrics
import Hummingbird
import Synchronization

/// How many of the API's store reads run at once: lists and lookups a
/// client can make slow (`/api/hosts?since=0` groups every stored flow)
/// must not take every connection the writer and the token checks need (a
/// PostgreSQL pool is shared; SQLite has two reader connections). At most
/// `width` run, `maxWaiting` wait in order behind them, and more are
/// answered 503 with `Retry-After` at once, counted in
/// `flowforest_http_store_reads_refused_total`.
final class ReadAdmission: Sendable {
    let width: Int
    let maxWaiting: Int
    private let refused: Counter
    private let state = Mutex(State())

    private struct State {
        var running = 0
        var waiting: [CheckedContinuation<Bool, Never>] = []
        var head = 0
    }

    init(width: Int = 4, maxWaiting: Int = 32, factory: any MetricsFactory) {
        self.width = max(1, width)
        self.maxWaiting = max(0, maxWaiting)
        refused = Counter(label: "flowforest_http_store_reads_refused_total", factory: factory)
    }

    /// Reads waiting for a place now.
    var waitingCount: Int { state.withLock { $0.waiting.count - $0.head } }

    /// Runs `body` once a place is free; 503 when too many wait already.
    func run<T: Sendable>(isolation: isolated (any Actor)? = #isolation, _ body: () async throws -> T) async throws -> T {
        try await enter()
        defer { leave() }
        return try await body()
    }

    /// Takes a place, waiting in order for one; 503 when too many wait already.
    private func enter() async throws {
        // One lock for the decision and the queueing, so no burst waits past the bound.
        let admitted = await withCheckedContinuation { (c: CheckedContinuation<Bool, Never>) in
            let now = state.withLock { s -> Bool? in
                if s.running < width {
                    s.running += 1
                    return true
                }
                guard s.waiting.count - s.head < maxWaiting else { return false }
                s.waiting.append(c)
                return nil
            }
            if let now { c.resume(returning: now) }
        }
        guard admitted else {
            refused.increment()
            throw APIError(.serviceUnavailable, "too many database reads under way; retry shortly", headers: [.retryAfter: "1"])
        }
    }

    /// Hands the place to the first waiter, or frees it.
    private func leave() {
        let next = state.withLock { s -> CheckedContinuation<Bool, Never>? in
            guard s.head < s.waiting.count else {
                s.running -= 1
                return nil
            }
            let c = s.waiting[s.head]
            s.head += 1
            // Resumed entries go once they are half the array, so it never
            // grows past twice the waiting bound, however long reads stay busy.
            if s.head * 2 >= s.waiting.count {
                s.waiting.removeFirst(s.head)
                s.head = 0
            }
            return c
        }
        next?.resume(returning: true)
    }
}

/// Runs the routes of its group through a ``ReadAdmission``.
struct StoreReadLimit: RouterMiddleware {
    typealias Context = AppRequestContext
    let admission: ReadAdmission

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        try await admission.run { try await next(request, context) }
    }
}
