import FlowForestCore
@testable import FlowForestServer
import FlowForestStore
import Dispatch
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Synchronization
import Testing

/// Finding 5: no throttle on sign-in, and scrypt checks stalled the server.
@Suite("Login throttling and password hashing off the event loop")
struct LoginThrottleTests {
    static let wrong = #"{"username": "alice", "password": "not the password"}"#

    @Test("repeated wrong passwords get 429 with Retry-After, also for the right password, until the delay passes")
    func throttled() async throws {
        // A first delay longer than any sign-in on a busy machine, so the block cannot lapse mid-test.
        try await withService(.live, configure: { $0.loginFirstDelay = .seconds(120) }) { client, _, _ in
            var statuses: [HTTPResponse.Status] = []
            var retryAfter: String?
            for _ in 0..<10 {
                let r = try await client.call("/api/login", .post, json: Self.wrong)
                statuses.append(r.status)
                if r.status == .tooManyRequests { retryAfter = r.headers[.retryAfter] }
            }
            #expect(statuses.prefix(5).allSatisfy { $0 == .unauthorized }, "\(statuses)")
            #expect(statuses.last == .tooManyRequests, "\(statuses)")
            let seconds = try #require(retryAfter.flatMap(Int.init))
            #expect((1...900).contains(seconds))
            // While blocked even the right password waits: guessing cannot continue in the meantime.
            let right = try await client.call("/api/login", .post, json: #"{"username": "alice", "password": "correct horse battery"}"#)
            #expect(right.status == .tooManyRequests)
            #expect(right.headers[.retryAfter] != nil)
            // Another user from the same address is blocked by the address count too.
            #expect(try await client.call("/api/login", .post, json: #"{"username": "victor", "password": "x"}"#).status == .tooManyRequests)
        }
    }

    @Test("the delay grows with each failure past the free ones, and the table stays bounded")
    func growingDelayBoundedTable() throws {
        let throttle = LoginThrottle(freeFailures: 3, maxDelay: .seconds(60), maxEntries: 100)
        let keys = LoginThrottle.keys(address: "198.18.0.1", user: "alice")
        for _ in 0..<2 { throttle.failed(keys) }
        #expect(throttle.retryAfter(keys) == nil)
        throttle.failed(keys)
        let first = try #require(throttle.retryAfter(keys))
        throttle.failed(keys)
        throttle.failed(keys)
        let later = try #require(throttle.retryAfter(keys))
        #expect(later > first)
        for _ in 0..<20 { throttle.failed(keys) }
        #expect(throttle.retryAfter(keys)! <= .seconds(60))
        throttle.succeeded(keys)
        #expect(throttle.retryAfter(keys) == nil)
        for i in 0..<10_000 { throttle.failed(LoginThrottle.keys(address: "10.0.\(i / 256).\(i % 256)", user: "u\(i)")) }
        #expect(throttle.count <= 100)
        // Checks under way count: with 3 free failures, a 4th parallel attempt waits.
        let parallel = LoginThrottle(freeFailures: 3)
        let k = LoginThrottle.keys(address: "198.18.0.9", user: "bob")
        for _ in 0..<3 { #expect(parallel.begin(k) == nil) }
        #expect(parallel.begin(k) != nil)
        parallel.abandoned(k)
        #expect(parallel.begin(k) == nil)
    }

    @Test("a flood of fresh addresses and user names neither frees a blocked key nor grows the table; a full table makes attempts wait")
    func floodKeepsBlocks() throws {
        let throttle = LoginThrottle(freeFailures: 3, maxDelay: .seconds(600), maxEntries: 100)
        let admin = LoginThrottle.keys(address: "198.18.0.1", user: "admin")
        for _ in 0..<6 { throttle.failed(admin) }
        let blocked = try #require(throttle.retryAfter(admin))
        // One /64: every address of it is the same address key.
        #expect(LoginThrottle.keys(address: "2001:db8::1", user: "x") == LoginThrottle.keys(address: "2001:db8::ffff:2", user: "x"))
        for i in 0..<10_000 {
            let keys = LoginThrottle.keys(address: "10.\(i / 65_536).\(i / 256 % 256).\(i % 256)", user: "junk\(i)")
            if throttle.begin(keys) == nil { throttle.failed(keys) }
        }
        #expect(throttle.count <= 100)
        #expect(try #require(throttle.retryAfter(admin)) > blocked - .seconds(60), "the admin key is still blocked")
        // Every entry blocked or being checked: a new attempt waits rather than free one.
        let full = LoginThrottle(freeFailures: 1, maxEntries: 10)
        for i in 0..<5 { full.failed(LoginThrottle.keys(address: "10.1.0.\(i)", user: "u\(i)")) }
        #expect(full.begin(LoginThrottle.keys(address: "10.2.0.1", user: "new")) == LoginThrottle.fullTableWait)
    }

    @Test("16 concurrent wrong sign-ins leave /api/health fast: hashing runs on its own bounded pool")
    func healthStaysFast() async throws {
        try await withService(.live, configure: { $0.openMetrics = true }) { client, _, _ in
            let port = try #require(client.port)
            // One password check alone, as the yardstick of this (possibly busy) machine.
            let single = ContinuousClock.now
            #expect(try await client.call("/api/login", .post, json: #"{"username": "yardstick", "password": "wrong"}"#).status == .unauthorized)
            let oneCheck = ContinuousClock.now - single
            let started = ContinuousClock.now
            // Distinct user names from one address: the first few get hashed, the rest are throttled or queued.
            let logins = Task {
                try await withThrowingTaskGroup(of: Int.self) { group in
                    for i in 0..<16 {
                        group.addTask {
                            try await curl(["-X", "POST", "-H", "Content-Type: application/json",
                                      "--data", #"{"username": "user\#(i)", "password": "wrong password"}"#,
                                      "http://127.0.0.1:\(port)/api/login"]).status
                        }
                    }
                    return try await group.reduce(into: [Int]()) { $0.append($1) }
                }
            }
            var latencies: [Duration] = []
            while latencies.count < 10 {
                let t = ContinuousClock.now
                #expect(try await client.call("/api/health").status == .ok)
                latencies.append(ContinuousClock.now - t)
                try await Task.sleep(for: .milliseconds(50))
            }
            let statuses = try await logins.value
            #expect(statuses.allSatisfy { [401, 429, 503].contains($0) }, "\(statuses)")
            #expect(statuses.filter { $0 == 401 }.count <= 4, "at most the free failures left get a password check: \(statuses)")
            latencies.sort()
            let median = latencies[latencies.count / 2]
            // Before, each check held one of the few concurrency threads and health queued behind
            // several of them (2.5 s median, over six checks' worth); now it waits for none. The
            // bound is relative to this machine's own check, with room for a loaded machine.
            #expect(median < max(.seconds(1), oneCheck * 2), "health median \(median), one password check \(oneCheck), sign-ins ran \(ContinuousClock.now - started); latencies \(latencies)")
        }
    }
}
