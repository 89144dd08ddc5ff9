import Foundation

/// A loopback server for tests, written in Python: it prints the port it
/// listens on as its first line, then whatever it has to report at exit.
public final class ScriptServer: Sendable {
    public let port: Int
    private let process: Process
    private let output: Pipe

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// Starts `python3 -c script arguments…` and waits for its port.
    public init(_ script: String, arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", script] + arguments
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        var line = Data()
        while !line.contains(UInt8(ascii: "\n")) {
            let byte = output.fileHandleForReading.readData(ofLength: 1)
            if byte.isEmpty { break }
            line += byte
        }
        guard let port = Int(String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) else {
            process.terminate()
            throw Failure(description: "the test server did not print its port")
        }
        (self.process, self.output, self.port) = (process, output, port)
    }

    /// Waits for the server to exit; what it printed after its port.
    public func report() -> String {
        process.waitUntilExit()
        return String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    }

    /// The integer printed after `name` in the report (`-1` when none).
    public func value(_ name: String, in report: String) -> Int {
        let words = report.split(whereSeparator: \.isWhitespace)
        return words.firstIndex(of: Substring(name)).flatMap { $0 + 1 < words.count ? Int(words[$0 + 1]) : nil } ?? -1
    }

    /// Ends it if it is still running (a test that failed early).
    public func stop() {
        if process.isRunning { process.terminate() }
    }
}
