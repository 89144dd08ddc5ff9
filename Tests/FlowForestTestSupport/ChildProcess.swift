public import Foundation
import Synchronization

/// A process a test starts (a peer, a tool, a server), spawned with
/// posix_spawn and reaped by `waitpid` on a thread of its own.
///
/// Not Foundation's `Process`, for three reasons that each stalled a test run:
/// - Foundation learns that a child exited when a descriptor the child
///   inherited closes, then reaps it on the one thread that reaps every
///   child. A grandchild that keeps the descriptor (a daemon the child
///   starts), or a child that closes it and runs on, delays every other
///   child's exit with it; an exit that is never seen hangs whoever waits.
/// - A child inherits every descriptor the test process has open without
///   close-on-exec: a long-lived child (PostgreSQL's postmaster) then holds
///   other children's pipes and sockets open.
/// - A child inherits its spawning thread's signal mask, and the test
///   runner's pool threads block SIGTERM.
///
/// Here a child inherits only its three standard descriptors, starts with no
/// blocked signals and default dispositions, and its exit is seen whatever
/// other children do. Waiting is async (``exit()``) so no concurrency thread
/// blocks on a child.
public final class ChildProcess: Sendable {
    /// Where a standard descriptor goes.
    public enum Output: Sendable {
        case null
        /// A file, created or truncated.
        case file(String)
        /// A file, created or appended to.
        case appending(String)
        /// Standard error only: wherever standard output goes.
        case standardOutput
    }

    public let pid: pid_t
    public let command: String
    /// The exit status once reaped (see ``terminationStatus``), and who waits for it.
    private let state = Mutex<(status: Int32?, waiters: [CheckedContinuation<Int32, Never>])>((nil, []))
    private let exited = DispatchSemaphore(value: 0)
    /// The status reported when waitpid could not say (the child was reaped elsewhere).
    public static let unknownStatus: Int32 = -1

    private init(pid: pid_t, command: String) {
        self.pid = pid
        self.command = command
    }

    /// Starts `path` (an absolute path) with `arguments`; standard input is /dev/null.
    public static func spawn(_ path: String, _ arguments: [String], stdout: Output = .null, stderr: Output = .null) throws -> ChildProcess {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        for (fd, output) in [(Int32(1), stdout), (Int32(2), stderr)] {
            switch output {
            case .null: posix_spawn_file_actions_addopen(&actions, fd, "/dev/null", O_WRONLY, 0)
            case .file(let file): posix_spawn_file_actions_addopen(&actions, fd, file, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
            case .appending(let file): posix_spawn_file_actions_addopen(&actions, fd, file, O_WRONLY | O_CREAT | O_APPEND, 0o644)
            case .standardOutput: posix_spawn_file_actions_adddup2(&actions, 1, fd)
            }
        }
        guard let closeFrom = addCloseFrom else {
            throw ChildProcessError("posix_spawn_file_actions_addclosefrom_np is missing (glibc 2.34 or newer is needed)")
        }
        _ = closeFrom(&actions, 3)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t(), every = sigset_t()
        sigemptyset(&none)
        sigfillset(&every)
        sigdelset(&every, SIGKILL)
        sigdelset(&every, SIGSTOP)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &every)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let error = posix_spawn(&pid, path, &actions, &attributes, argv, environ)
        guard error == 0 else { throw ChildProcessError("cannot start \(path): \(String(cString: strerror(error)))") }
        let child = ChildProcess(pid: pid, command: ([path] + arguments).joined(separator: " "))
        Thread { child.reap() }.start()
        return child
    }

    /// `posix_spawn_file_actions_addclosefrom_np`, which Swift's Glibc module does not export.
    private typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
    private static let addCloseFrom: CloseFrom? = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np")
        .map { unsafeBitCast($0, to: CloseFrom.self) }

    private func reap() {
        // Waits without reaping: the pid stays this child's until its status
        // is set under the lock, so ``send(_:)`` never signals a recycled pid.
        var info = siginfo_t()
        while waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT) < 0 && errno == EINTR {}
        let (status, waiters) = state.withLock { s in
            var raw: Int32 = 0
            s.status = waitpid(pid, &raw, WNOHANG) == pid ? Self.decode(raw) : Self.unknownStatus
            defer { s.waiters = [] }
            return (s.status!, s.waiters)
        }
        for waiter in waiters { waiter.resume(returning: status) }
        exited.signal()
    }

    /// The exit code, or 128 plus the signal that ended it (as a shell reports it).
    private static func decode(_ status: Int32) -> Int32 {
        (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }

    public var isRunning: Bool { state.withLock { $0.status == nil } }

    /// The exit code, or 128 plus the signal that ended it; nil while running.
    public var terminationStatus: Int32? { state.withLock { $0.status } }

    /// Sends `signal` unless the process has been reaped (its pid may be someone else's by then).
    public func send(_ signal: Int32) {
        state.withLock { s in
            if s.status == nil { kill(pid, signal) }
        }
    }

    /// Waits for the exit without holding a thread; returns ``terminationStatus``.
    @discardableResult
    public func exit() async -> Int32 {
        await withCheckedContinuation { (continuation: CheckedContinuation<Int32, Never>) in
            let status = state.withLock { s -> Int32? in
                if let status = s.status { return status }
                s.waiters.append(continuation)
                return nil
            }
            if let status { continuation.resume(returning: status) }
        }
    }

    /// Waits up to `seconds` for the exit; nil if it is still running then.
    public func exit(within seconds: Double) async -> Int32? {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while isRunning && ContinuousClock.now < deadline {
            // Cancelled (a test past its limit): stop waiting rather than spin.
            do { try await Task.sleep(for: .milliseconds(20)) } catch { break }
        }
        return terminationStatus
    }

    /// Sends `signal`, waits up to `grace` seconds, then SIGKILL; returns the status.
    @discardableResult
    public func stop(signal: Int32 = SIGTERM, grace: Double = 20) async -> Int32 {
        send(signal)
        if let status = await exit(within: grace) { return status }
        send(SIGKILL)
        return await exit()
    }

    /// Blocks the calling thread until the exit: for synchronous code that runs off the concurrency pool.
    @discardableResult
    public func waitUntilExit() -> Int32 {
        if let status = terminationStatus { return status }
        exited.wait()
        exited.signal()
        return terminationStatus ?? Self.unknownStatus
    }

    /// Blocks up to `seconds` for the exit; nil if it is still running then.
    public func waitUntilExit(seconds: Double) -> Int32? {
        if let status = terminationStatus { return status }
        guard exited.wait(timeout: .now() + seconds) == .success else { return nil }
        exited.signal()
        return terminationStatus
    }

    /// Sends `signal`, blocks up to `grace` seconds for the exit, then SIGKILL: for synchronous code.
    @discardableResult
    public func terminate(signal: Int32 = SIGTERM, grace: Double = 20) -> Int32 {
        send(signal)
        if let status = waitUntilExit(seconds: grace) { return status }
        send(SIGKILL)
        return waitUntilExit()
    }

    /// A file's text, however it ends (a write cut mid-character, bytes that are not UTF-8).
    public static func text(ofFile path: String) -> String {
        String(decoding: FileManager.default.contents(atPath: path) ?? Data(), as: UTF8.self)
    }

    /// Runs `path` to completion and returns its standard output (with its
    /// standard error when `mergeErrors`); throws unless it exits with a
    /// status in `acceptExit`. Blocks the calling thread: for synchronous code.
    public static func output(_ path: String, _ arguments: [String], acceptExit: Set<Int32> = [0], mergeErrors: Bool = false) throws -> String {
        let run = try Run(path, arguments, mergeErrors: mergeErrors)
        return try run.result(status: run.child.waitUntilExit(), acceptExit: acceptExit)
    }

    /// ``output(_:_:acceptExit:mergeErrors:)`` for async code: no thread waits for the child.
    public static func output(_ path: String, _ arguments: [String], acceptExit: Set<Int32> = [0], mergeErrors: Bool = false) async throws -> String {
        let run = try Run(path, arguments, mergeErrors: mergeErrors)
        return try run.result(status: await run.child.exit(), acceptExit: acceptExit)
    }

    /// A child run to completion, its outputs in temporary files.
    private struct Run {
        let child: ChildProcess
        let stdout: String
        let stderr: String?

        init(_ path: String, _ arguments: [String], mergeErrors: Bool) throws {
            let base = "\(FileManager.default.temporaryDirectory.path)/flowforest-child-\(getpid())-\(UInt64.random(in: 0 ... .max))"
            stdout = base + ".out"
            stderr = mergeErrors ? nil : base + ".err"
            child = try spawn(path, arguments, stdout: .file(stdout), stderr: stderr.map { .file($0) } ?? .standardOutput)
        }

        func result(status: Int32, acceptExit: Set<Int32>) throws -> String {
            defer {
                unlink(stdout)
                if let stderr { unlink(stderr) }
            }
            let output = ChildProcess.text(ofFile: stdout)
            guard acceptExit.contains(status) else {
                let errors = stderr.map(ChildProcess.text(ofFile:)) ?? ""
                throw ChildProcessError("\(child.command) exited \(status)\nstandard error: \(errors.suffix(2000))\nstandard output: \(output.suffix(2000))")
            }
            return output
        }
    }
}

public struct ChildProcessError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
