import FlowForestCore

/// What one delivery attempt of a route came to.
enum DeliveryOutcome: Equatable {
    /// Everything due was posted.
    case delivered
    /// A post failed and stays queued; `progressed` when posts before it in
    /// the same attempt went through (the receiver answers again: the
    /// back-off starts over).
    case failed(progressed: Bool)
}

/// The one delivery loop every alert route runs: incident changes from the
/// writer's feed are handed to the route's queue, and the route's delivery
/// runs whenever something new is queued, retried with doubling back-off
/// while the destination is down. When the feed ends (the writer stopped)
/// the route gets one last delivery.
///
/// The route owns its queue and what a delivery posts; the loop owns only
/// the timing, so an outage is handled the same way for every destination.
struct DeliveryLoop: Sendable {
    private let wake: AsyncStream<Void>.Continuation
    private let wakes: AsyncStream<Void>
    private let retryDelay: Duration
    private let maxRetryDelay: Duration
    /// After a successful delivery, the loop also wakes this long after it
    /// with nothing new queued (re-posts that fall due); nil waits for changes only.
    private let recheck: Duration?

    init(configuration: AlertConfiguration, recheck: Duration? = nil) {
        retryDelay = configuration.retryDelay
        maxRetryDelay = configuration.maxRetryDelay
        self.recheck = recheck
        (wakes, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// Asks for a delivery now: the route queued something.
    func poke() { wake.yield() }

    /// Runs until `feed` ends. Each batch of changes goes to `accept`;
    /// after a failed `deliver` it is tried again after the back-off;
    /// `finish` runs once at the end.
    func run(feed: AsyncStream<[IncidentUpdate]>, accept: @escaping @Sendable ([IncidentUpdate]) async -> Void,
             deliver: @escaping @Sendable () async -> DeliveryOutcome, finish: @Sendable () async -> Void) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await retrying(deliver) }
            for await updates in feed { await accept(updates) }
            group.cancelAll()
        }
        await finish()
    }

    private func retrying(_ deliver: @Sendable () async -> DeliveryOutcome) async {
        var backoff = Backoff(first: retryDelay, last: maxRetryDelay)
        var iterator = wakes.makeAsyncIterator()
        while !Task.isCancelled {
            if case .failed(let progressed) = await deliver() {
                if progressed { backoff.succeeded() }
                try? await Task.sleep(for: backoff.failed())
                continue
            }
            backoff.succeeded()
            let tick = recheck.map { delay in
                Task { [wake] in
                    try? await Task.sleep(for: delay)
                    wake.yield()
                }
            }
            _ = await iterator.next()
            tick?.cancel()
        }
    }
}

/// Doubling back-off between failed posts.
struct Backoff {
    let first: Duration
    let last: Duration
    private(set) var next: Duration

    init(first: Duration, last: Duration) {
        self.first = first
        self.last = last
        next = first
    }

    /// The delay to wait now; the one after is doubled, up to `last`.
    mutating func failed() -> Duration {
        defer { next = min(next * 2, last) }
        return next
    }

    mutating func succeeded() { next = first }
}
