import FlowForestLab
import Foundation
import Testing

/// A lab command started as from a shell (no signal blocked), sent SIGTERM
/// once `ready` holds, and waited for: what the interruption tests of
/// `bench`, `bench-collector` and `bench-offline` share.
struct InterruptedRun {
    let process: Process

    /// - Parameters:
    ///   - executable: `flowforest` or `flowforest-lab`.
    ///   - ready: given the command's pid, whether to interrupt it now.
    init(_ executable: String, _ arguments: [String], waitingFor what: String, timeout: Double,
         detail: @escaping (pid_t) -> String = { _ in "" }, ready: @escaping (pid_t) -> Bool) async throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = arguments
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try Command.startUnblocked(p)
        process = p
        let pid = p.processIdentifier
        do {
            try await Wait.until(what, timeout: timeout, detail: { detail(pid) }) { !p.isRunning || ready(pid) }
            try #require(p.isRunning, "it ended before it was interrupted (status \(p.terminationStatus))")
            kill(pid, SIGTERM)
            try await Wait.until("it to exit after SIGTERM", timeout: 60) { !p.isRunning }
        } catch {
            if p.isRunning { Command.killWithCommand(p) }
            throw error
        }
    }

    var pid: pid_t { process.processIdentifier }

    /// Exited with status 130, as an interrupted command should.
    var exitedInterrupted: Bool { process.terminationReason == .exit && process.terminationStatus == 130 }

    /// Processes whose command line contains `text`, as "pid: command line".
    static func processes(mentioning text: String) -> [String] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.filter { Int($0) != nil }.compactMap { pid in
            guard let bytes = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return nil }
            let line = String(decoding: bytes.map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self)
            return line.contains(text) ? "\(pid): \(line)" : nil
        }
    }
}
