public import Foundation
import Synchronization

/// A live demonstration: a ``TrafficLab`` with normal clients, the sensor
/// (`flowforest run`) watching it with eBPF and serving its dashboard, and
/// one attack after another once the detector has learned.
public final class Demo: Sendable {
    public struct Options: Sendable {
        public var binary: String
        public var listen = "127.0.0.1:8080"
        public var database: String
        public var learningSeconds = 60.0
        /// Seconds between attacks.
        public var attackInterval = 40.0
        public var workDirectory: URL

        public init(binary: String, database: String, workDirectory: URL) {
            self.binary = binary
            self.database = database
            self.workDirectory = workDirectory
        }
    }

    let options: Options
    private let stopped = Atomic<Bool>(false)

    public init(options: Options) { self.options = options }

    /// True for a `--listen` address only this machine can reach.
    static func isLoopback(_ listen: String) -> Bool {
        listen.hasPrefix("127.") || listen.hasPrefix("localhost:") || listen.hasPrefix("[::1]:")
    }

    /// Ends ``run(progress:)`` after its current step.
    public func stop() { stopped.store(true, ordering: .relaxed) }

    /// Runs until ``stop()``; the lab and the sensor are removed on return.
    public func run(progress: @Sendable (String) -> Void) throws {
        let traffic = try TrafficLab(workDirectory: options.workDirectory)
        defer { traffic.teardown() }
        let sensorLog = options.workDirectory.appendingPathComponent("sensor.log")
        let sensor = Process()
        sensor.executableURL = URL(fileURLWithPath: options.binary)
        sensor.arguments = ["run", "--mode", "tc", "--namespace", traffic.serversNamespace, "--interface", traffic.sensorInterface,
                            "--listen", options.listen, "--database", options.database, "--sensor-name", "demo",
                            "--learning-seconds", String(options.learningSeconds), "--print-flows", "none"]
            // A loopback demo needs no sign-in; elsewhere the sensor log holds the first-start sign-in link.
            + (Self.isLoopback(options.listen) ? ["--no-auth"] : [])
        _ = FileManager.default.createFile(atPath: sensorLog.path, contents: nil)
        let log = try FileHandle(forWritingTo: sensorLog)
        sensor.standardOutput = log
        sensor.standardError = log
        try Command.startUnblocked(sensor)
        defer {
            if sensor.isRunning {
                kill(sensor.processIdentifier, SIGTERM)
                sensor.waitUntilExit()
            }
        }
        progress("sensor started (log: \(sensorLog.path)); dashboard at http://\(options.listen)/"
                 + (Self.isLoopback(options.listen) ? "" : " (sign in with the link in the log)"))
        var round = 0
        while !stopped.load(ordering: .relaxed) && sensor.isRunning {
            let normalSeconds = round == 0 ? options.learningSeconds + 5 : options.attackInterval
            try traffic.startNormalTraffic(seconds: normalSeconds + 30, seed: round + 1)
            progress(round == 0 ? "normal traffic: the detector learns for \(Int(options.learningSeconds)) s" : "normal traffic")
            let until = Date().addingTimeInterval(normalSeconds)
            while Date() < until && !stopped.load(ordering: .relaxed) { Thread.sleep(forTimeInterval: 0.2) }
            guard !stopped.load(ordering: .relaxed) else { break }
            let attack = Attack.reference[round % Attack.reference.count]
            progress("attack: \(attack.name) from \(traffic.attacker)")
            try? traffic.run(attack)
            round += 1
        }
        if !sensor.isRunning { progress("the sensor stopped; see \(sensorLog.path)") }
    }
}
