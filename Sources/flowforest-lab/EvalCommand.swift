import ArgumentParser
import CoreMetrics
import EBPFCapture
import FlowForestCore
import FlowForestDetection
import FlowForestLab
import FlowForestPipeline
import Foundation
import Logging
import Synchronization

/// Sensor polls completed, shared with the task that consumes them.
final class PollCount: Sendable {
    let value = Atomic<Int>(0)
}

/// `flowforest-lab eval` (`make eval`): the detector against real attack
/// tools in a namespace lab, scoring live as `flowforest run` does.
struct EvalCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "The detector, scoring live on eBPF capture, against nmap, hping3 and scripted attacks (root).",
        discussion: """
            The sensor is eBPF tc capture (as `flowforest run --mode tc --namespace` opens it) on
            the servers' end of the lab's veth, polled once a second; each poll's batch goes to
            the detector as it arrives, and each alert is stamped with the wall-clock time the
            detector produced it.

            1. Normal clients (web, DNS-style UDP, pings, bulk downloads) run while the sensor's
               polls train a model (as `flowforest train` does with a file), written to
               out/eval/model.json.
            2. Normal traffic alone with other seeds, scored live: every alert is a false alert.
            3. Each attack (nmap, hping3, scripted slow connections, beacons, upload) starts a few
               seconds into normal traffic, scored live; the time to detection is the first alert
               with the expected label minus the moment the attack tool was started.

            Two sets: development (the reference scenarios and their variants, three normal
            clients; rules are tuned on it) and validation (other tools, flags, rates and
            targets, fifteen normal clients, other seeds; never tuned on).

            Prints a Markdown table (also written to out/eval/results-<set>.md): scenario,
            detected, label, time to first alert, anomalies raised, the incidents they were grouped
            into, false alerts and false incidents per hour; and how many explanation lines were
            true. Every alert is also written to out/eval/alerts-<set>.jsonl. Environment: FLOWFOREST_EVAL_SET (development
            or validation), FLOWFOREST_EVAL_TRAIN_SECONDS (180), FLOWFOREST_EVAL_NORMAL_SECONDS
            (300), FLOWFOREST_EVAL_OUT (out/eval), FLOWFOREST_EVAL_ONLY (scenario names
            as the table prints them, "reference" or "variants", separated by semicolons; a name
            that is not a scenario of the set is an error). FLOWFOREST_EVAL_NORMAL_SECONDS=3600 runs
            an hour of normal traffic alone for the false-alert figure (about 70 minutes in all).

            Example:
              sudo flowforest-lab eval                                  about 25 minutes
              sudo FLOWFOREST_EVAL_SET=validation flowforest-lab eval   about 30 minutes
            """
    )

    func run() async throws {
        guard Command.isRoot else { throw failure("eval needs root for network namespaces and eBPF (sudo make eval)") }
        try await Self.evaluate(try Evaluation.Settings(environment: ProcessInfo.processInfo.environment))
    }

    /// On the main actor, as a script's top level: the phases block their
    /// thread while tools run, and that must not be a cooperative one.
    @MainActor
    static func evaluate(_ settings: Evaluation.Settings) async throws {
        try FileManager.default.createDirectory(at: settings.outDirectory, withIntermediateDirectories: true)
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("flowforest-eval-\(getpid())")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        Evaluation.unblockSignals()
        let traffic = try TrafficLab(workDirectory: work)
        // The lab must not outlive an interrupted run.
        let interruption = InterruptTeardown("eval") {
            traffic.teardown()
            try? FileManager.default.removeItem(at: work)
        }
        defer {
            interruption.cancel()
            traffic.teardown()
            try? FileManager.default.removeItem(at: work)
        }
        try await Evaluation(settings: settings, traffic: traffic).run()
    }
}

/// One evaluation run over a ``TrafficLab``: training, normal traffic, then
/// every selected attack, each phase scored live.
@MainActor
final class Evaluation {
    typealias Settings = EvalSettings

    /// An alert with the wall-clock time the detector produced it.
    struct StampedAlert: Sendable {
        var wallNs: UInt64
        var anomaly: Anomaly
    }

    /// What one live phase saw.
    struct LiveResult: Sendable {
        var alerts: [StampedAlert] = []
        var trainer = ModelTrainer()
        var statistics = CaptureStatistics()
        var polls = 0
    }

    /// One line of out/eval/alerts-<set>.jsonl.
    struct RecordedAlert: Encodable {
        var phase: String
        var anomaly: Anomaly
    }

    /// One attack's line in the results table.
    struct Row {
        var attack: Attack
        var detected: Bool
        var delay: Double?
        var firstLabel: AnomalyLabel?
        var alerts: Int
        /// Incidents the attack's alerts were grouped into (one is the goal).
        var incidents: Int
        var unrelated: Int
        /// Incidents of the alerts not about the attack.
        var unrelatedIncidents: Int
        /// Seconds of normal traffic the phase ran.
        var seconds: Double
    }

    /// Normal traffic runs for up to this long in each attack phase, longer for
    /// an attack that may run longer (it is stopped 3 s after the attack ends).
    static let attackPhaseSeconds = 50.0

    let settings: Settings
    let traffic: TrafficLab
    let logger: Logger = {
        var l = Logger(label: "flowforest.eval")
        l.logLevel = .warning
        return l
    }()
    /// Seconds the attack phases ran, and their alerts not about the attack.
    private var attackPhaseTotal = 0.0
    private var attackPhaseOther = 0
    private var attackPhaseOtherIncidents = 0
    /// Explanation lines seen, and the false ones.
    private var explanationLines = 0
    private var falseLines: [String] = []

    init(settings: Settings, traffic: TrafficLab) {
        self.settings = settings
        self.traffic = traffic
    }

    /// Progress lines go out at once, even into a pipe.
    func say(_ line: String) { FileHandle.standardOutput.write(Data((line + "\n").utf8)) }

    /// Children inherit the spawning thread's signal mask, and this process's
    /// threads block most signals; hping3 paces packets with SIGALRM and hangs
    /// forever with it blocked. Clear the mask before starting tools.
    nonisolated static func unblockSignals() {
        var none = sigset_t()
        sigemptyset(&none)
        pthread_sigmask(SIG_SETMASK, &none, nil)
    }

    nonisolated static func nowNs() -> UInt64 { UInt64(Date().timeIntervalSince1970 * 1e9) }

    func normal(seconds: Double, seed: Int) throws {
        let clients = try traffic.startNormalTraffic(seconds: seconds, seed: seed, manyClients: settings.evalSet == .validation,
                                                   siteJobs: true)
        for p in clients { p.waitUntilExit() }
    }

    /// Runs `body` with the sensor capturing live: eBPF tc on the servers' end
    /// of the veth, polled every second. Each poll's batch goes through the
    /// pipeline `run` uses (to its detector with `model`, its trainer with
    /// `training`) the moment it arrives. The sensor stops once two polls
    /// have completed after `body` returns, so the last packets are drained.
    func live(_ name: String, model: DetectionModel?, training: Bool = false, _ body: () throws -> Void) async throws -> LiveResult {
        let source = try EBPFFlowSource(configuration: EBPFConfiguration(
            mode: .tc, interfaces: [traffic.sensorInterface], pollInterval: 1, namespace: traffic.serversNamespace), logger: logger)
        let pipeline = Pipeline(sensor: "eval", detector: model.map { Detector(model: $0, sensor: "eval", logger: logger) },
                                trainer: training ? ModelTrainer() : nil, logger: logger, metricsFactory: NOOPMetricsHandler.instance)
        let polls = PollCount()
        let consumer = Task.detached { () throws -> LiveResult in
            var result = LiveResult()
            for try await batch in source.batches() {
                let found = await pipeline.process(batch, mode: source.mode)
                let produced = Evaluation.nowNs()
                result.alerts += found.map { StampedAlert(wallNs: produced, anomaly: $0) }
                result.statistics = batch.statistics
                result.polls += 1
                polls.value.add(1, ordering: .relaxed)
            }
            if let trainer = await pipeline.trainer { result.trainer = trainer }
            return result
        }
        do {
            try body()
        } catch {
            source.stop()
            _ = try? await consumer.value
            throw error
        }
        let after = polls.value.load(ordering: .relaxed)
        try Wait.blockingUntil("two sensor polls after \(name)", timeout: 15) { polls.value.load(ordering: .relaxed) >= after + 2 }
        source.stop()
        let result = try await consumer.value
        let s = result.statistics
        say("  sensor \(name): \(result.polls) polls, \(s.packetsSeen) packets, \(s.packetsAccounted) in flows, \(s.flowsStarted) flows"
            + (s.tableFull > 0 ? ", \(s.tableFull) not counted (ring buffer full)" : ""))
        return result
    }

    /// Distinct incidents among `alerts` (the pipeline files every alert into one).
    static func incidentCount(_ alerts: [Anomaly]) -> Int {
        Set(alerts.map { $0.incidentUID ?? "anomaly-\($0.timeMs)-\($0.score)" }).count
    }

    /// Appends a phase's alerts, one JSON object a line, to out/eval/alerts-<set>.jsonl:
    /// the recorded vectors behind the table, for a later look or a test.
    func record(_ phase: String, _ alerts: [Anomaly]) {
        let url = settings.outDirectory.appendingPathComponent("alerts-\(settings.evalSet.rawValue).jsonl")
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        var text = ""
        for a in alerts {
            guard let data = try? encoder.encode(RecordedAlert(phase: phase, anomaly: a)) else { continue }
            text += String(decoding: data, as: UTF8.self) + "\n"
        }
        guard let handle = FileHandle(forWritingAtPath: url.path) else { return }
        handle.seekToEndOfFile()
        handle.write(Data(text.utf8))
        try? handle.close()
    }

    func describe(_ a: Anomaly) -> String {
        "\(a.kind.rawValue) \(a.label.rawValue) \(a.severity.rawValue) \(a.sourceAddress?.description ?? "-") -> \(a.destinationAddress?.description ?? "-"): \(a.explanation.first?.text ?? "")"
    }

    func run() async throws {
        // 1. Baseline and model.
        say("eval: \(settings.evalSet.rawValue) set; \(Int(settings.trainSeconds)) s of normal traffic to train on")
        let trainer = try await live("train", model: nil, training: true) { try normal(seconds: settings.trainSeconds, seed: settings.seeds.train) }.trainer
        let model = try trainer.model(nowMs: Int64(Date().timeIntervalSince1970 * 1000))
        try model.save(to: settings.outDirectory.appendingPathComponent("model.json").path)
        FileManager.default.createFile(atPath: settings.outDirectory.appendingPathComponent("alerts-\(settings.evalSet.rawValue).jsonl").path, contents: nil)
        say("eval: model trained: " + model.models.map { "\($0.kind.rawValue) \($0.trainingVectors + $0.heldOutVectors) vectors" }.joined(separator: ", "))

        // 2. Normal traffic only.
        say("eval: \(Int(settings.normalSeconds)) s of normal traffic only, scored live")
        let falseAlerts = try await live("normal", model: model) { try normal(seconds: settings.normalSeconds, seed: settings.seeds.normal) }.alerts.map(\.anomaly)
        audit(falseAlerts, model: model)
        record("normal", falseAlerts)
        let perHour = Double(falseAlerts.count) / settings.normalSeconds * 3600
        let falseIncidents = Self.incidentCount(falseAlerts)
        say("eval: \(falseAlerts.count) alerts (\(falseIncidents) incidents) in \(Int(settings.normalSeconds)) s of normal traffic (\(String(format: "%.1f", perHour)) alerts per hour)")
        for a in falseAlerts { say("  false alert: \(describe(a))") }

        // 3. Attacks.
        var rows: [Row] = []
        for (index, attack) in Attack.allCases.enumerated() where settings.attacks.contains(attack) {
            say("eval: \(attack.name)")
            guard FileManager.default.fileExists(atPath: "/run/netns/\(traffic.serversNamespace)") else {
                say("eval: the lab's namespaces are gone (removed from outside); stopping")
                break
            }
            if let row = try await attackPhase(index: index, attack: attack, model: model) { rows.append(row) }
        }
        let table = results(rows, falseAlerts: falseAlerts.count, falseIncidents: falseIncidents)
        say("\n" + table)
        try table.write(to: settings.outDirectory.appendingPathComponent("results-\(settings.evalSet.rawValue).md"), atomically: true, encoding: .utf8)
    }

    /// One attack during normal traffic, scored live; nil when the tool did not run.
    func attackPhase(index: Int, attack: Attack, model: DetectionModel) async throws -> Row? {
        var startNs: UInt64 = 0
        let found: [StampedAlert]
        let phaseStart = Date()
        defer { attackPhaseTotal += Date().timeIntervalSince(phaseStart) }
        do {
            found = try await live("attack \(index)", model: model) {
                let clients = try traffic.startNormalTraffic(seconds: max(Self.attackPhaseSeconds, 14 + attack.timeLimit),
                                                             seed: settings.seeds.attacks + index, manyClients: settings.evalSet == .validation,
                                                             siteJobs: true)
                // 8 s in, at a random point of the poll cycle: the delay then
                // includes an honest share of waiting for the next poll.
                Thread.sleep(forTimeInterval: 8 + Double.random(in: 0..<1))
                startNs = Self.nowNs()
                Self.unblockSignals()
                try traffic.run(attack)
                Thread.sleep(forTimeInterval: 3)
                for p in clients { traffic.lab.stop(p, signal: SIGTERM, timeout: 2) }
            }.alerts
            audit(found.map(\.anomaly), model: model)
            record(attack.name, found.map(\.anomaly))
        } catch {
            // One failed tool run costs its row, not the whole evaluation.
            say("  \(attack.name) did not run: \(error)")
            return nil
        }
        let involved: Set<String> = [traffic.attacker, traffic.outside]
        // Alerts about the attack: naming the attacker, the outside host or the
        // sweep range, or the victim's destination vector with the attack's label.
        func isRelated(_ s: StampedAlert) -> Bool {
            let a = s.anomaly
            return s.wallNs + 1_000_000_000 >= startNs && (a.label == attack.expectedLabel
                || [a.sourceAddress, a.destinationAddress].contains { address in
                    address.map { involved.contains($0.description) || $0.description.hasPrefix("198.18.2.") || $0.description.hasPrefix("198.19.") } ?? false
                })
        }
        let related = found.filter(isRelated)
        let other = found.filter { !isRelated($0) }
        let seconds = { (s: StampedAlert) in (Double(s.wallNs) - Double(startNs)) / 1e9 }
        let hit = related.first { $0.anomaly.label == attack.expectedLabel }
        attackPhaseOther += other.count
        let otherIncidents = Self.incidentCount(other.map(\.anomaly))
        attackPhaseOtherIncidents += otherIncidents
        for s in other.prefix(3) { say("  other: \(describe(s.anomaly))") }
        for s in related.prefix(4) {
            say("  \(String(format: "%+.1f", seconds(s))) s \(s.anomaly.kind.rawValue) \(s.anomaly.label.rawValue) \(s.anomaly.severity.rawValue): \(s.anomaly.explanation.map(\.text).joined(separator: "; "))")
        }
        return Row(attack: attack, detected: hit != nil, delay: hit.map(seconds),
                   firstLabel: related.first?.anomaly.label, alerts: related.count,
                   incidents: Self.incidentCount(related.map(\.anomaly)), unrelated: other.count, unrelatedIncidents: otherIncidents,
                   seconds: Date().timeIntervalSince(phaseStart))
    }

    /// Counts explanation lines and keeps the false ones (every line must be true).
    func audit(_ anomalies: [Anomaly], model: DetectionModel) {
        for a in anomalies {
            explanationLines += a.explanation.count
            let wrong = ExplanationAudit.falseLines(of: a, model: model)
            falseLines += wrong
            for line in wrong { say("  FALSE explanation: \(line)") }
        }
    }

    /// The Markdown results: one table per scenario group, then the false-alert rates.
    func results(_ rows: [Row], falseAlerts: Int, falseIncidents: Int) -> String {
        var table = ""
        let groups: [(String, (Attack) -> Bool)] = settings.evalSet == .development
            ? [("Reference scenarios", { !$0.isVariant }), ("Variants", { $0.isVariant })]
            : [("Validation scenarios", { _ in true })]
        let hourly = { (count: Int, seconds: Double) in seconds > 0 ? String(format: "%.0f", Double(count) / seconds * 3600) : "-" }
        for (title, member) in groups where rows.contains(where: { member($0.attack) }) {
            table += """
            \(title):

            | scenario | detected | label | time to first alert | anomalies raised | incidents | false alerts per hour | false incidents per hour |
            |---|---|---|---|---|---|---|---|

            """
            for r in rows where member(r.attack) {
                table += "| \(r.attack.name) | \(r.detected ? "yes" : "no") | \(r.firstLabel?.rawValue ?? "-") | "
                    + "\(r.delay.map { String(format: "%.1f s", $0) } ?? "-") | \(r.alerts) | \(r.incidents) | "
                    + "\(hourly(r.unrelated, r.seconds)) (\(r.unrelated)) | \(hourly(r.unrelatedIncidents, r.seconds)) (\(r.unrelatedIncidents)) |\n"
            }
            table += "\n"
        }
        let detected = rows.filter(\.detected)
        let allNormalSeconds = settings.normalSeconds + attackPhaseTotal
        let allFalse = falseAlerts + attackPhaseOther
        let allFalseIncidents = falseIncidents + attackPhaseOtherIncidents
        let rate = { (count: Int, seconds: Double) in String(format: "%.1f", seconds > 0 ? Double(count) / seconds * 3600 : 0) }
        table += """

        Run \(ISO8601DateFormatter().string(from: Date())). Live eBPF tc capture, one-second polls; time is from the attack tool's start to the wall-clock time the detector produced the alert.
        Detected with the expected label: \(detected.count) of \(rows.count); \
        incidents per attack: \(rows.map { String($0.incidents) }.joined(separator: ", ")) \
        (\(rows.filter { $0.incidents == 1 }.count) of \(rows.count) attacks are one incident).
        Normal traffic only: \(falseAlerts) alerts, \(falseIncidents) incidents in \(Int(settings.normalSeconds)) s \
        (\(rate(falseAlerts, settings.normalSeconds)) alerts, \(rate(falseIncidents, settings.normalSeconds)) incidents per hour); \
        with the normal traffic around the attacks: \(allFalse) alerts, \(allFalseIncidents) incidents not about an attack \
        in \(String(format: "%.0f", allNormalSeconds / 60)) minutes (\(rate(allFalse, allNormalSeconds)) alerts, \
        \(rate(allFalseIncidents, allNormalSeconds)) incidents per hour). Model trained on \(Int(settings.trainSeconds)) s.
        Explanation lines: \(explanationLines), of which \(explanationLines - falseLines.count) true\
        \(explanationLines > 0 ? String(format: " (%.1f %%)", Double(explanationLines - falseLines.count) / Double(explanationLines) * 100) : "").

        """
        return table
    }
}
