import ArgumentParser
import Foundation

/// `flowforest bench` and `flowforest demo`: the lab that runs them starts
/// traffic generators and attack tools, so it lives in its own executable,
/// `flowforest-lab`, which is never linked into the daemon. These commands
/// replace this process with `flowforest-lab <command>` from the same
/// directory, passing every argument on.
enum LabExecutable {
    static let name = "flowforest-lab"

    static func exec(_ command: String, _ arguments: [String]) throws -> Never {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        let lab = URL(fileURLWithPath: exe).deletingLastPathComponent().appendingPathComponent(name).path
        guard FileManager.default.isExecutableFile(atPath: lab) else {
            throw failure("`\(command)` runs in the lab executable, which is not installed beside this one (\(lab) is missing): "
                          + "build it with `make build` or `swift build --product \(name)`; the container image has no lab")
        }
        let argv = ([lab, command] + arguments).map { strdup($0) } + [nil]
        execv(lab, argv)
        let err = errno
        throw failure("cannot run \(lab): \(String(cString: strerror(err)))")
    }
}

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Compare the capture modes on a namespace lab (runs `flowforest-lab bench`; root).",
        discussion: """
            The lab lives in the flowforest-lab executable beside this one (built from source,
            not in the container image); every argument is passed on to it.
            `flowforest-lab bench --help` lists the options.

            Example:
              sudo flowforest bench --json bench.json
            """
    )

    @Argument(parsing: .captureForPassthrough, help: "Options for `flowforest-lab bench`.")
    var arguments: [String] = []

    func run() throws { try LabExecutable.exec("bench", arguments) }
}

struct DemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Watch FlowForest work on a namespace lab with recurring attacks (runs `flowforest-lab demo`; root).",
        discussion: """
            The lab lives in the flowforest-lab executable beside this one (built from source,
            not in the container image); every argument is passed on to it.
            `flowforest-lab demo --help` lists the options.

            Example:
              sudo flowforest demo          then open http://127.0.0.1:8080/
            """
    )

    @Argument(parsing: .captureForPassthrough, help: "Options for `flowforest-lab demo`.")
    var arguments: [String] = []

    func run() throws { try LabExecutable.exec("demo", arguments) }
}
