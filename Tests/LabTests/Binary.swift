import FlowForestLab
import Foundation

/// The built `flowforest` executable next to the test bundle (override with FLOWFOREST_BIN).
enum Binary {
    static var path: String {
        if let override = ProcessInfo.processInfo.environment["FLOWFOREST_BIN"] { return override }
        var dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        // The runner may live inside an .xctest bundle directory.
        while !FileManager.default.fileExists(atPath: dir.appendingPathComponent("flowforest").path), dir.path != "/" {
            dir.deleteLastPathComponent()
        }
        return dir.appendingPathComponent("flowforest").path
    }

    /// Runs flowforest with arguments (not in a namespace).
    static func run(_ arguments: [String], timeout: Double = 60) throws -> CommandResult {
        try Command.run([path] + arguments, timeout: timeout)
    }
}

/// A fresh temporary directory, removed by the caller.
func temporaryDirectory() throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("flowforest-test-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// Waits until `body` is true, polling, for at most `seconds`.
@discardableResult
func waitUntil(_ seconds: Double, _ body: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if body() { return true }
        Thread.sleep(forTimeInterval: 0.05)
    }
    return body()
}

func fileContains(_ url: URL, _ text: String) -> Bool {
    (try? String(contentsOf: url, encoding: .utf8))?.contains(text) ?? false
}
