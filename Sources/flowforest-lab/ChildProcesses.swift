import FlowForestLab
import Foundation
import Synchronization

/// The children a bench has running (collectors, `flowforest analyze`,
/// nfpcapd), so an interruption can end them before it removes their work
/// directories: a SIGTERM sent to the bench alone reaches none of them.
final class ChildProcesses: Sendable {
    static let shared = ChildProcesses()

    private struct State {
        var running: Set<pid_t> = []
        /// Set once an interruption ends them: a child started after that is ended at once.
        var closed = false
    }
    private let state = Mutex(State())

    /// A child was started; it is ended by ``terminateAll(timeout:)``.
    func started(_ pid: pid_t) {
        let closed = state.withLock { s in
            if !s.closed { s.running.insert(pid) }
            return s.closed
        }
        if closed { kill(pid, SIGKILL) }
    }

    /// A child was reaped: its pid may be reused from now on.
    func reaped(_ pid: pid_t) {
        _ = state.withLock { $0.running.remove(pid) }
    }

    /// Sends SIGTERM to every running child and waits until each has exited
    /// (SIGKILL for one still there after `timeout` seconds). Children
    /// started afterwards are killed as they register.
    func terminateAll(timeout: Double = 10) {
        let running = state.withLock { s in
            s.closed = true
            return s.running
        }
        for pid in running { kill(pid, SIGTERM) }
        try? Wait.blockingUntil("the bench's children to exit", timeout: timeout, every: 0.02) {
            running.allSatisfy { !Self.alive($0) }
        }
        for pid in running where Self.alive(pid) { kill(pid, SIGKILL) }
    }

    /// Still running: its /proc entry exists and it is not a zombie
    /// (Foundation's Process, or the bench's own wait4, reaps it later).
    static func alive(_ pid: pid_t) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return false }
        let state = stat[stat.index(after: close)...].drop { $0 == " " }.first
        return state != "Z" && state != "X"
    }
}
