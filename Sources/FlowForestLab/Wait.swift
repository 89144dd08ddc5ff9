public import Foundation

/// Waiting on conditions, never on fixed sleeps: a lab step that depends on
/// another process (a capture writing, a server listening, a sensor draining)
/// polls for the state it needs and fails with a message naming what did not
/// happen. A fixed sleep passes on the machine it was tuned on and races on
/// the next one.
public enum Wait {
    /// For lab threads and synchronous tests: polls `condition` every `interval` seconds until it is true, for at
    /// most `timeout` seconds; then throws ``LabError/timedOut(waitingFor:seconds:detail:)``
    /// naming `what` and, if given, the last `detail` (for example the
    /// counts that did not match).
    public static func blockingUntil(_ what: @autoclosure () -> String, timeout: Double, every interval: Double = 0.02,
                                     detail: () -> String = { "" }, _ condition: () throws -> Bool) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            if try condition() { return }
            if Date() >= deadline { throw LabError.timedOut(waitingFor: what(), seconds: timeout, detail: detail()) }
            Thread.sleep(forTimeInterval: interval)
        }
    }

    /// The async form of ``blockingUntil(_:timeout:every:detail:_:)``: suspends
    /// between polls instead of blocking a thread of the cooperative pool.
    public static func until(_ what: @autoclosure () -> String, timeout: Double, every interval: Double = 0.02,
                             detail: () -> String = { "" }, _ condition: () async throws -> Bool) async throws {
        let deadline = ContinuousClock.now + .milliseconds(Int(timeout * 1000))
        while true {
            if try await condition() { return }
            if ContinuousClock.now >= deadline { throw LabError.timedOut(waitingFor: what(), seconds: timeout, detail: detail()) }
            try await Task.sleep(for: .milliseconds(Int(interval * 1000)))
        }
    }

    /// True once a file exists and contains `text`.
    public static func file(_ url: URL, contains text: String) -> Bool {
        (try? String(contentsOf: url, encoding: .utf8))?.contains(text) ?? false
    }
}
