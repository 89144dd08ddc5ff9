public import Foundation
import Synchronization

/// A live demonstration: a ``TrafficLab`` with normal clients, the sensor
/// (`flowforest run`) watching it with eBPF and serving its dashboard, and
/// one attack after another once the detector has learned: the first attack
/// waits until the sensor reports its model trained, so it is never learned
/// as normal and always shown.
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

    /// Normal traffic, renewed while it lasts, until the sensor's model is
    /// trained (at least the learning window: learning also needs enough
    /// vectors). False when stopped or the sensor exited first.
    func learn(_ traffic: TrafficLab, sensor: Process, progress: (String) -> Void) throws -> Bool {
        progress("normal traffic: the detector learns for at least \(Int(options.learningSeconds)) s; the first attack waits for its model")
        var seed = 1
        var clients = try traffic.startNormalTraffic(seconds: options.learningSeconds + 30, seed: seed)
        let window = Date().addingTimeInterval(options.learningSeconds)
        var waited = false
        while !stopped.load(ordering: .relaxed) && sensor.isRunning {
            if modelState() == "detecting" {
                progress("the model is trained")
                return true
            }
            if Date() >= window && !waited {
                progress("still learning after \(Int(options.learningSeconds)) s: waiting for enough traffic")
                waited = true
            }
            if clients.allSatisfy({ !$0.isRunning }) {
                seed += 1
                clients = try traffic.startNormalTraffic(seconds: 60, seed: seed)
            }
            Thread.sleep(forTimeInterval: 0.5)
        }
        return false
    }

    /// The sensor's model state from `GET /api/health` (`learning` or `detecting`), nil while it does not answer.
    func modelState() -> String? {
        guard let result = try? Command.run(["curl", "-s", "-m", "2", "http://\(options.listen)/api/health"], timeout: 5),
              result.status == 0,
              let body = try? JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any] else { return nil }
        return body["model"] as? String
    }

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
        sensor.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        let arguments = [options.binary, "run", "--mode", "tc", "--namespace", traffic.serversNamespace,
                         "--interface", traffic.sensorInterface, "--listen", options.listen, "--database", options.database,
                         "--sensor-name", "demo", "--learning-seconds", String(options.learningSeconds), "--print-flows", "none"]
            // A loopback demo needs no sign-in; elsewhere the sensor log holds the first-start sign-in link,
            // and /api/health is open so the demo can see when the model is trained.
            + (Self.isLoopback(options.listen) ? ["--no-auth"] : ["--open-metrics"])
        sensor.arguments = Command.underWaitingParent(arguments)
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
        guard try learn(traffic, sensor: sensor, progress: progress) else {
            if !sensor.isRunning { progress("the sensor stopped; see \(sensorLog.path)") }
            return
        }
        var round = 0
        while !stopped.load(ordering: .relaxed) && sensor.isRunning {
            if round > 0 {
                try traffic.startNormalTraffic(seconds: options.attackInterval + 30, seed: round + 1)
                progress("normal traffic")
                let until = Date().addingTimeInterval(options.attackInterval)
                while Date() < until && !stopped.load(ordering: .relaxed) { Thread.sleep(forTimeInterval: 0.2) }
                guard !stopped.load(ordering: .relaxed) else { break }
            }
            let attack = Attack.reference[round % Attack.reference.count]
            progress("attack: \(attack.name) from \(traffic.attacker)")
            try? traffic.run(attack)
            round += 1
        }
        if !sensor.isRunning { progress("the sensor stopped; see \(sensorLog.path)") }
    }
}
