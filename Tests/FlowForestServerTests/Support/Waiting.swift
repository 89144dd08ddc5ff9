import FlowForestTestSupport
import Foundation
import Synchronization
import Testing

/// Polls `condition` every 50 ms until true; after `seconds` throws an error
/// naming `what`, so the test stops at the step that failed and says why.
func waitFor(_ what: String, seconds: Double = 15, _ condition: () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
    while ContinuousClock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(50))
    }
    throw WaitTimedOut(what: what, seconds: seconds)
}

/// A condition a test waited on did not come true in time.
struct WaitTimedOut: Error, CustomStringConvertible {
    var what: String
    var seconds: Double
    var detail = ""
    var description: String { "timed out after \(seconds) s waiting for \(what)\(detail.isEmpty ? "" : ": \(detail)")" }
}

/// A server-sent event stream read by curl while the test runs, so the test
/// waits for the events it needs rather than reading for a fixed time.
final class EventStream: Sendable {
    private let process: ChildProcess
    private let file: String

    /// A stream read with a bearer token.
    convenience init(url: String, token: String) throws {
        try self.init(url: url, header: "Authorization: Bearer \(token)")
    }

    /// A stream read with a dashboard session's cookie (`name=value`).
    convenience init(url: String, cookie: String) throws {
        try self.init(url: url, header: "Cookie: \(cookie)")
    }

    private init(url: String, header: String) throws {
        file = FileManager.default.temporaryDirectory.appendingPathComponent("flowforest-events-\(UUID().uuidString)").path
        // --max-time bounds a stream nobody closes, well beyond any wait below.
        process = try ChildProcess.spawn("/usr/bin/curl", ["-sN", "--max-time", "120", "-H", header, url], stdout: .file(file))
    }

    /// True while the server keeps the stream open (curl is still reading).
    var isOpen: Bool { process.isRunning }

    /// Everything read so far.
    var text: String { ChildProcess.text(ofFile: file) }

    func wait(for what: String, timeout: Double = 15, _ condition: @escaping (String) -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(timeout)
        while !condition(text) {
            guard ContinuousClock.now < deadline, process.isRunning else {
                // What curl wrote just before it ended counts.
                if condition(text) { return }
                let state = process.terminationStatus.map { "curl exited \($0); " } ?? ""
                throw WaitTimedOut(what: "\(what) in the event stream", seconds: timeout, detail: "\(state)got: \(text.suffix(1000))")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Ends the stream; the child is reaped on its own thread.
    func close() {
        process.send(SIGKILL)
        unlink(file)
    }
}
