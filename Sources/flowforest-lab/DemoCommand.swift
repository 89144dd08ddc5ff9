import ArgumentParser
import FlowForestLab
import Foundation

struct DemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Watch FlowForest work: a namespace lab with normal clients and recurring attacks, live on the dashboard.",
        discussion: """
            Builds a lab of network namespaces (198.18.0.0/15), starts the sensor (the flowforest
            beside this executable) on it with eBPF, and serves the dashboard. The detector learns
            from normal clients first; then an attack (port scan, sweep, floods, slow connections,
            beacons, upload) runs every --attack-interval seconds. Ctrl-C removes the lab. Needs root.

            Example:
              sudo flowforest-lab demo      then open http://127.0.0.1:8080/
            """
    )

    @Option(help: "HOST:PORT for the dashboard.")
    var listen = "127.0.0.1:8080"

    @Option(name: .customLong("learning-seconds"), help: "Seconds the detector learns at least; the first attack also waits until the model is trained.")
    var learningSeconds: Double = 60

    @Option(name: .customLong("attack-interval"), help: "Seconds of normal traffic between attacks.")
    var attackInterval: Double = 40

    @Option(help: "SQLite file for the demo's anomalies.")
    var database = "out/demo/flowforest.db"

    func run() throws {
        guard geteuid() == 0 else { throw failure("demo builds network namespaces and loads eBPF: run it as root") }
        guard learningSeconds >= 10, attackInterval >= 5 else { throw failure("--learning-seconds must be at least 10 and --attack-interval at least 5") }
        let sensor = try Daemon.located()
        let work = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("flowforest-demo-\(getpid())")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: (database as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: work) }
        var options = Demo.Options(binary: sensor, database: database, workDirectory: work)
        options.listen = listen
        options.learningSeconds = learningSeconds
        options.attackInterval = attackInterval
        let demo = Demo(options: options)
        // SIGINT/SIGTERM end the demo after its current step; the lab is removed on the way out.
        let signals = [SIGINT, SIGTERM].map { number -> any DispatchSourceSignal in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number)
            source.setEventHandler {
                FileHandle.standardError.write(Data("demo: stopping, removing the lab\n".utf8))
                demo.stop()
            }
            source.resume()
            return source
        }
        defer { signals.forEach { $0.cancel() } }
        do {
            try demo.run { FileHandle.standardError.write(Data("demo: \($0)\n".utf8)) }
        } catch {
            throw failure("\(error)")
        }
    }
}
