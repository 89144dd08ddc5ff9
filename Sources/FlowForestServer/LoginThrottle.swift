import Dispatch
import FlowForestStore
import Foundation
import Hummingbird
import Synchronization

/// Slows password guessing: failed sign-ins are counted per client address
/// and per user name; after `freeFailures` of them each further failure
/// blocks that key for a delay that doubles (1 s, 2 s, 4 s ... up to
/// `maxDelay`), and a blocked key gets 429 with `Retry-After` before any
/// password is hashed. A success clears the user's and the address's count.
/// Attempts still being checked count as failures until they finish, so
/// parallel guesses cannot slip past the limit before the first one fails.
///
/// The table is bounded: at `maxEntries` keys, entries idle longer than
/// `forgetAfter` go first, then the least recently failed that are neither
/// blocked nor being checked; when nothing else can go, a new attempt waits
/// (429) rather than free a blocked key. Addresses are keyed as connection
/// limits key them (IPv6 by /64), so a host cannot take a new key with each
/// of its addresses.
final class LoginThrottle: Sendable {
    struct Entry: Sendable {
        var failures: Int
        var inFlight = 0
        var blockedUntil: ContinuousClock.Instant
        var lastFailure: ContinuousClock.Instant
    }

    let freeFailures: Int
    let firstDelay: Duration
    let maxDelay: Duration
    let maxEntries: Int
    let forgetAfter: Duration
    private let table = Mutex<[String: Entry]>([:])

    init(freeFailures: Int = 5, firstDelay: Duration = .seconds(1), maxDelay: Duration = .seconds(900),
         maxEntries: Int = 10_000, forgetAfter: Duration = .seconds(3600)) {
        self.freeFailures = freeFailures
        self.firstDelay = firstDelay
        self.maxDelay = maxDelay
        self.maxEntries = maxEntries
        self.forgetAfter = forgetAfter
    }

    /// The keys of one attempt: the client's address and the user name.
    static func keys(address: String, user: String) -> [String] {
        ["addr:" + ConnectionLimitHandler.key(address).key, "user:" + String(user.lowercased().prefix(64))]
    }

    /// How long an attempt waits when the table has no room for its keys.
    static let fullTableWait: Duration = .seconds(10)

    /// How long the attempt must wait, nil when it may go ahead. A nil
    /// answer reserves the attempt: end it with ``failed(_:)``,
    /// ``succeeded(_:)`` or ``abandoned(_:)``.
    func begin(_ keys: [String]) -> Duration? {
        let now = ContinuousClock.now
        return table.withLock { t -> Duration? in
            var wait: Duration = .zero
            for key in keys {
                guard let e = t[key] else { continue }
                wait = max(wait, e.blockedUntil - now)
                // As many checks under way as free failures left: wait for them.
                if e.inFlight > 0, e.failures + e.inFlight >= freeFailures { wait = max(wait, .seconds(1)) }
            }
            if wait > .zero { return wait }
            let new = keys.filter { t[$0] == nil }.count
            if t.count + new > maxEntries { evict(&t, now: now) }
            if t.count + new > maxEntries { return Self.fullTableWait }
            for key in keys { t[key, default: Entry(failures: 0, blockedUntil: now, lastFailure: now)].inFlight += 1 }
            return nil
        }
    }

    /// How long an attempt with these keys would wait now (reserves nothing).
    func retryAfter(_ keys: [String]) -> Duration? {
        let now = ContinuousClock.now
        let waits = table.withLock { t in keys.compactMap { t[$0].map { $0.blockedUntil - now } }.filter { $0 > .zero } }
        return waits.max()
    }

    func failed(_ keys: [String]) {
        let now = ContinuousClock.now
        table.withLock { t in
            // Keys begin() reserved are here; others take room if there is any.
            let new = keys.filter { t[$0] == nil }.count
            if t.count + new > maxEntries { evict(&t, now: now) }
            for key in keys {
                guard t[key] != nil || t.count < maxEntries else { continue }
                var e = t[key] ?? Entry(failures: 0, blockedUntil: now, lastFailure: now)
                e.inFlight = max(0, e.inFlight - 1)
                e.failures += 1
                e.lastFailure = now
                if e.failures >= freeFailures {
                    let exponent = min(e.failures - freeFailures, 20)
                    e.blockedUntil = now + min(firstDelay * (1 << exponent), maxDelay)
                }
                t[key] = e
            }
        }
    }

    func succeeded(_ keys: [String]) {
        table.withLock { t in for key in keys { t[key] = nil } }
    }

    /// Ends a reserved attempt that neither failed nor succeeded (an error).
    func abandoned(_ keys: [String]) {
        table.withLock { t in
            for key in keys { if let e = t[key] { t[key]?.inFlight = max(0, e.inFlight - 1) } }
        }
    }

    var count: Int { table.withLock { $0.count } }

    private func evict(_ t: inout [String: Entry], now: ContinuousClock.Instant) {
        func held(_ e: Entry) -> Bool { e.inFlight > 0 || e.blockedUntil > now }
        t = t.filter { held($0.value) || now - $0.value.lastFailure < forgetAfter }
        if t.count + 2 > maxEntries {
            // Still full: drop the least recently failed tenth of those not
            // blocked or being checked. A blocked key stays blocked: freeing
            // it would let a flood of fresh keys buy guesses at it.
            let drop = max(2, maxEntries / 10)
            let free = t.filter { !held($0.value) }.sorted { $0.value.lastFailure < $1.value.lastFailure }
            for (key, _) in free.prefix(drop) { t[key] = nil }
        }
    }
}

extension BlockingWorkPool {
    /// The pool for password checks (scrypt: ~32 MiB and a tenth of a second
    /// each), so wrong passwords cannot stall other requests.
    static func passwordHashing() -> BlockingWorkPool {
        BlockingWorkPool(label: "flowforest.password-hashing", busy: "too many sign-ins at once; retry shortly")
    }

    /// True when `password` matches `hash`.
    func verify(_ password: String, against hash: String) async throws -> Bool {
        try await run { PasswordHash.verify(password, against: hash) }
    }
}
