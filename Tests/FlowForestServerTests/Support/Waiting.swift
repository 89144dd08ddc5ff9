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
    private final class Received: Sendable { let text = Mutex("") }
    private let process: Process
    private let received = Received()

    init(url: String, token: String) throws {
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        // --max-time bounds a stream nobody closes, well beyond any wait below.
        process.arguments = ["-sN", "--max-time", "120", "-H", "Authorization: Bearer \(token)", url]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        let received = self.received
        pipe.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            if data.isEmpty { handle.readabilityHandler = nil; return }
            received.text.withLock { $0 += String(decoding: data, as: UTF8.self) }
        }
        try process.run()
    }

    /// Everything read so far.
    var text: String { received.text.withLock { $0 } }

    func wait(for what: String, timeout: Double = 15, _ condition: @escaping (String) -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(timeout)
        while !condition(text) {
            guard ContinuousClock.now < deadline, process.isRunning else {
                let state = process.isRunning ? "" : "curl exited \(process.terminationStatus); "
                throw WaitTimedOut(what: "\(what) in the event stream", seconds: timeout, detail: "\(state)got: \(text.suffix(1000))")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    func close() {
        // SIGKILL: the runner's threads block SIGTERM, and curl inherits that mask.
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }
}
