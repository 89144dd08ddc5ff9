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

    /// The lab executable, `flowforest-lab`, built beside `flowforest`.
    static var lab: String {
        URL(fileURLWithPath: path).deletingLastPathComponent().appendingPathComponent("flowforest-lab").path
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

/// The end of a log file, for failure messages.
func tail(_ url: URL, _ characters: Int = 800) -> String {
    String(((try? String(contentsOf: url, encoding: .utf8)) ?? "").suffix(characters))
}
