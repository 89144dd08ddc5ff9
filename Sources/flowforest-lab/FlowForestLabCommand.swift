import ArgumentParser
import Foundation

/// `flowforest-lab`: the namespace lab, apart from the daemon. It starts
/// attack tools and traffic generators, so it is built and installed beside
/// `flowforest` for people who build from source, and never linked into the
/// daemon or shipped in its container image.
@main
struct FlowForestLabCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "flowforest-lab",
        abstract: "FlowForest's namespace lab: capture, collector and offline benchmarks, a live demo and the detector's evaluation (root).",
        discussion: """
            Each command but bench-collector (loopback only) and bench-offline (a capture file) builds network namespaces in 198.18.0.0/15 and removes them when it ends. \
            `flowforest bench` and `flowforest demo` run the same commands from this binary, which \
            must sit beside the `flowforest` executable; the lab runs that `flowforest` as the sensor.

            Examples:
              sudo flowforest-lab bench --json bench.json
              flowforest-lab bench-collector --model model.json
              flowforest-lab bench-offline --json offline.json
              sudo flowforest-lab demo                    then open http://127.0.0.1:8080/
              sudo flowforest-lab eval                    about 25 minutes
            """,
        subcommands: [BenchCommand.self, CollectorBenchCommand.self, OfflineBenchCommand.self, DemoCommand.self, EvalCommand.self]
    )
}

/// Prints a one-line error to standard error; throw the result to exit 1.
func failure(_ message: String) -> ExitCode {
    FileHandle.standardError.write(Data("flowforest-lab: \(message)\n".utf8))
    return ExitCode.failure
}

/// The `flowforest` daemon the lab runs as its sensor: the one installed
/// beside this executable, as `swift build` and `make build` place them.
enum Daemon {
    static var path: String {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return URL(fileURLWithPath: exe).deletingLastPathComponent().appendingPathComponent("flowforest").path
    }

    /// ``path``, or an error saying how to build it.
    static func located() throws -> String {
        let path = Self.path
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw failure("the sensor \(path) is missing: flowforest-lab runs the flowforest beside it; build both with `make build`")
        }
        return path
    }
}
