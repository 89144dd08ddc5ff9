public import Foundation

/// The outcome of a finished command.
public struct CommandResult: Sendable {
    public var status: Int32
    public var stdout: String
    public var stderr: String
    public var timedOut: Bool
}

/// Errors from running lab commands.
public enum LabError: Error, CustomStringConvertible {
    case failed(command: [String], status: Int32, stderr: String)
    case notRoot
    /// A condition a lab waited on did not come true in time.
    case timedOut(waitingFor: String, seconds: Double, detail: String)

    public var description: String {
        switch self {
        case let .failed(command, status, stderr):
            return "\(command.joined(separator: " ")) exited \(status): \(stderr.trimmingCharacters(in: .whitespacesAndNewlines))"
        case .notRoot:
            return "the network lab needs root (network namespaces and veth pairs)"
        case let .timedOut(what, seconds, detail):
            let suffix = detail.isEmpty ? "" : " (\(detail))"
            return "timed out after \(seconds) s waiting for \(what)\(suffix)"
        }
    }
}

/// Runs external tools (ip, tcpdump, ping, ...) with a time limit.
public enum Command {
    /// Runs `arguments` to completion or until `timeout` seconds pass (then
    /// SIGTERM, and SIGKILL a second later), capturing both outputs.
    @discardableResult
    public static func run(_ arguments: [String], timeout: Double = 60, input: Data? = nil) throws -> CommandResult {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        // The parent's own limit is a backstop: the deadline below ends it first.
        process.arguments = underWaitingParent(arguments, limit: timeout + 5)
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        let stdin = Pipe()
        process.standardInput = input == nil ? FileHandle.nullDevice : stdin
        try startUnblocked(process)
        if let input {
            stdin.fileHandleForWriting.write(input)
            try? stdin.fileHandleForWriting.close()
        }
        // Read both pipes concurrently so a chatty child never blocks on a full pipe.
        let group = DispatchGroup()
        nonisolated(unsafe) var outData = Data(), errData = Data()
        DispatchQueue.global().async(group: group) { outData = out.fileHandleForReading.readDataToEndOfFile() }
        DispatchQueue.global().async(group: group) { errData = err.fileHandleForReading.readDataToEndOfFile() }
        var timedOut = false
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning {
            if Date() > deadline {
                timedOut = true
                process.terminate()
                Thread.sleep(forTimeInterval: 1)
                if process.isRunning { killWithCommand(process) }
                break
            }
            Thread.sleep(forTimeInterval: 0.01)
        }
        process.waitUntilExit()
        // A killed child's own children (e.g. a tool under `timeout`) may still
        // hold the pipes open: read what is there, don't wait for them.
        if group.wait(timeout: .now() + (timedOut ? 2 : 30)) == .timedOut {
            try? out.fileHandleForReading.close()
            try? err.fileHandleForReading.close()
        }
        return CommandResult(
            status: process.terminationStatus,
            stdout: String(decoding: outData, as: UTF8.self),
            stderr: String(decoding: errData, as: UTF8.self),
            timedOut: timedOut)
    }

    /// Like ``run(_:timeout:input:)`` but throws unless the command exits 0.
    @discardableResult
    public static func check(_ arguments: [String], timeout: Double = 60) throws -> CommandResult {
        let result = try run(arguments, timeout: timeout)
        guard result.status == 0, !result.timedOut else {
            throw LabError.failed(command: arguments, status: result.status, stderr: result.stderr)
        }
        return result
    }

    /// `arguments` run by a parent that stays until the command ends and
    /// waits for it: coreutils `timeout` (with no time limit when `limit` is
    /// nil). Foundation learns that a child exited when a descriptor the
    /// child inherited closes, and then blocks in waitpid() for it on the one
    /// thread that reaps every child. A tool that closes its inherited
    /// descriptors at start (softflowd does) would hold that thread, and with
    /// it every other child's exit, until the tool ends; under a waiting
    /// parent the descriptor stays with the parent. `timeout` passes the
    /// signals it gets (SIGINT, SIGTERM, SIGHUP) on to the command alone
    /// (`--foreground`: no process group of its own, as if started directly)
    /// and exits with the command's status, or dies by the command's signal.
    public static func underWaitingParent(_ arguments: [String], limit: Double? = nil) -> [String] {
        let seconds = limit.map { String(format: "%.3f", max($0, 0.001)) } ?? "0"
        return ["timeout", "--foreground", seconds] + arguments
    }

    /// Sends SIGKILL to a process started ``underWaitingParent(_:limit:)``
    /// and to the command it waits for, which a SIGKILL to the parent alone
    /// would leave running.
    public static func killWithCommand(_ process: Process) {
        let pid = process.processIdentifier
        guard pid > 0 else { return }
        if let command = command(under: process) { kill(command, SIGKILL) }
        kill(pid, SIGKILL)
    }

    /// The process a waiting parent (``underWaitingParent(_:limit:)``) runs,
    /// for its CPU time and memory: the parent's only child, once started.
    public static func command(under parent: Process) -> Int32? {
        let pid = parent.processIdentifier
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/task/\(pid)/children", encoding: .utf8) else { return nil }
        return text.split(separator: " ").first.flatMap { Int32($0) }
    }

    /// Starts a process with an empty signal mask. A child inherits the mask
    /// of the thread that spawns it, and pool threads block signals: tools
    /// that pace themselves with SIGALRM (hping3) would then hang.
    public static func startUnblocked(_ process: Process) throws {
        var empty = sigset_t(), previous = sigset_t()
        sigemptyset(&empty)
        pthread_sigmask(SIG_SETMASK, &empty, &previous)
        defer { pthread_sigmask(SIG_SETMASK, &previous, nil) }
        try process.run()
    }

    /// True when this process runs as root.
    public static var isRoot: Bool { geteuid() == 0 }
}
