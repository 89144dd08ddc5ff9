import ArgumentParser
import Foundation

/// Standard output through a 1 MiB buffer, for large listings: a write
/// call per line would cost more than the line. `flush()` before exiting.
struct StandardOutput: TextOutputStream {
    private var buffer: [UInt8] = []

    mutating func write(_ bytes: some Sequence<UInt8>) {
        buffer += bytes
        if buffer.count >= 1 << 20 { flush() }
    }

    mutating func write(_ string: String) { write(string.utf8) }

    mutating func flush() {
        FileHandle.standardOutput.write(Data(buffer))
        buffer.removeAll(keepingCapacity: true)
    }
}

/// A progress line on standard error for work that takes longer than a
/// second: rewritten in place on a terminal, one line per second otherwise.
final class ProgressLine {
    private let label: String
    private let start = Date()
    private var lastPrint = Date.distantPast
    private var printed = false
    private let isTerminal = isatty(STDERR_FILENO) == 1

    init(label: String) { self.label = label }

    func update(fraction: Double?, detail: String) {
        let now = Date()
        guard now.timeIntervalSince(start) > 1, now.timeIntervalSince(lastPrint) >= (isTerminal ? 0.2 : 1) else { return }
        lastPrint = now
        let percent = fraction.map { String(Int($0 * 100)) + "%, " } ?? ""
        let line = "\(label): \(percent)\(detail)"
        FileHandle.standardError.write(Data((isTerminal ? "\r\u{1B}[K" + line : line + "\n").utf8))
        printed = true
    }

    func clear() {
        if printed && isTerminal { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
    }
}

/// Prints a one-line error to standard error; throw the result to exit 1.
func failure(_ message: String) -> ExitCode {
    FileHandle.standardError.write(Data("flowforest: \(message)\n".utf8))
    return ExitCode.failure
}
