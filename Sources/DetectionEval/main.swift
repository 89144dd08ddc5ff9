// `make eval`: the detector against real attack tools in a namespace lab,
// scoring live as `flowforest run` does.
//
// The sensor is eBPF tc capture (EBPFCapture's flow source, as the daemon
// opens it with --mode tc --namespace) on the servers' end of the lab's veth,
// polled once a second; each poll's batch goes through the pipeline `run`
// uses (to its detector, or its trainer while training) as it arrives, and
// each alert is stamped with the wall-clock time the detector produced it.
//
// 1. Normal clients (web, DNS-style UDP, pings, bulk downloads) run while the
//    sensor's polls feed a ModelTrainer (as `flowforest train` does with a
//    file); the model is written to out/eval/model.json.
// 2. Normal traffic alone with other seeds, scored live: every alert is a
//    false alert.
// 3. Each attack (nmap, hping3, scripted slow connections, beacons, upload)
//    starts a few seconds into normal traffic, scored live; the time to
//    detection is the first alert with the expected label minus the moment
//    the attack tool was started.
// Prints a Markdown table (also written to out/eval/results.md).
import CoreMetrics
import EBPFCapture
import FlowForestCore
import FlowForestDetection
import FlowForestLab
import FlowForestPipeline
import Foundation
import Logging

let environment = ProcessInfo.processInfo.environment
let trainSeconds = Double(environment["FLOWFOREST_EVAL_TRAIN_SECONDS"] ?? "") ?? 180
let normalSeconds = Double(environment["FLOWFOREST_EVAL_NORMAL_SECONDS"] ?? "") ?? 300
let outDirectory = URL(fileURLWithPath: environment["FLOWFOREST_EVAL_OUT"] ?? "out/eval")
let logger: Logger = {
    var l = Logger(label: "flowforest.eval")
    l.logLevel = .warning
    return l
}()

guard Command.isRoot else {
    FileHandle.standardError.write(Data("eval: needs root for network namespaces and eBPF (sudo make eval)\n".utf8))
    exit(2)
}
try FileManager.default.createDirectory(at: outDirectory, withIntermediateDirectories: true)
let work = FileManager.default.temporaryDirectory.appendingPathComponent("flowforest-eval-\(getpid())")
try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)

unblockSignals()
let traffic = try TrafficLab(workDirectory: work)
// The lab must not outlive an interrupted run. The teardown runs ip(8) and
// takes a lock, neither of which is safe inside a signal handler, so the
// signals arrive through dispatch sources instead.
let interruptions = [SIGINT, SIGTERM].map { number -> any DispatchSourceSignal in
    signal(number, SIG_IGN)
    let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
    source.setEventHandler {
        FileHandle.standardError.write(Data("eval: interrupted, removing the lab\n".utf8))
        traffic.teardown()
        try? FileManager.default.removeItem(at: work)
        exit(130)
    }
    source.resume()
    return source
}
defer {
    traffic.teardown()
    try? FileManager.default.removeItem(at: work)
}

/// Progress lines go out at once, even into a pipe.
func say(_ line: String) { FileHandle.standardOutput.write(Data((line + "\n").utf8)) }

/// Children inherit the spawning thread's signal mask, and this process's
/// threads block most signals; hping3 paces packets with SIGALRM and hangs
/// forever with it blocked. Clear the mask before starting tools.
func unblockSignals() {
    var none = sigset_t()
    sigemptyset(&none)
    pthread_sigmask(SIG_SETMASK, &none, nil)
}

func nowNs() -> UInt64 { UInt64(Date().timeIntervalSince1970 * 1e9) }

func normal(seconds: Double, seed: Int) throws {
    let clients = try traffic.startNormalTraffic(seconds: seconds, seed: seed)
    for p in clients { p.waitUntilExit() }
}

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

/// Runs `body` with the sensor capturing live: eBPF tc on the servers' end
/// of the veth, polled every second. Each poll's batch goes through a
/// pipeline with a detector (with `model`) and a trainer (with `training`)
/// the moment it arrives. The sensor stops a poll and a half after `body` returns.
@MainActor
func live(_ name: String, model: DetectionModel?, training: Bool = false, _ body: () throws -> Void) async throws -> LiveResult {
    let source = try EBPFFlowSource(configuration: EBPFConfiguration(
        mode: .tc, interfaces: [traffic.sensorInterface], pollInterval: 1, namespace: traffic.serversNamespace), logger: logger)
    let pipeline = Pipeline(sensor: "eval", detector: model.map { Detector(model: $0, sensor: "eval", logger: logger) },
                            trainer: training ? ModelTrainer() : nil, logger: logger, metricsFactory: NOOPMetricsHandler.instance)
    let consumer = Task.detached { () throws -> LiveResult in
        var result = LiveResult()
        for try await batch in source.batches() {
            let found = await pipeline.process(batch, mode: source.mode)
            let produced = nowNs()
            result.alerts += found.map { StampedAlert(wallNs: produced, anomaly: $0) }
            result.statistics = batch.statistics
            result.polls += 1
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
    try await Task.sleep(for: .milliseconds(1500))
    source.stop()
    let result = try await consumer.value
    let s = result.statistics
    say("  sensor \(name): \(result.polls) polls, \(s.packetsSeen) packets, \(s.packetsAccounted) in flows, \(s.flowsStarted) flows"
        + (s.tableFull > 0 ? ", \(s.tableFull) not counted (ring buffer full)" : ""))
    return result
}

func describe(_ a: Anomaly) -> String {
    "\(a.kind.rawValue) \(a.label.rawValue) \(a.severity.rawValue) \(a.sourceAddress?.description ?? "-") -> \(a.destinationAddress?.description ?? "-"): \(a.explanation.first?.text ?? "")"
}

// 1. Baseline and model.
say("eval: \(Int(trainSeconds)) s of normal traffic to train on")
let trainer = try await live("train", model: nil, training: true) { try normal(seconds: trainSeconds, seed: 1) }.trainer
let model = try trainer.model(nowMs: Int64(Date().timeIntervalSince1970 * 1000))
try model.save(to: outDirectory.appendingPathComponent("model.json").path)
say("eval: model trained: " + model.models.map { "\($0.kind.rawValue) \($0.trainingVectors + $0.heldOutVectors) vectors" }.joined(separator: ", "))

// 2. Normal traffic only.
say("eval: \(Int(normalSeconds)) s of normal traffic only, scored live")
let falseAlerts = try await live("normal", model: model) { try normal(seconds: normalSeconds, seed: 2) }.alerts.map(\.anomaly)
let perHour = Double(falseAlerts.count) / normalSeconds * 3600
say("eval: \(falseAlerts.count) alerts in \(Int(normalSeconds)) s of normal traffic (\(String(format: "%.1f", perHour)) per hour)")
for a in falseAlerts { say("  false alert: \(describe(a))") }

// 3. Attacks.
struct Row {
    var attack: Attack
    var detected: Bool
    var delay: Double?
    var firstLabel: AnomalyLabel?
    var alerts: Int
    var unrelated: Int
}
var rows: [Row] = []
/// Normal traffic runs for up to this long in each attack phase, longer for
/// an attack that may run longer (it is stopped 3 s after the attack ends).
let attackPhaseSeconds = 50.0
/// Seconds the attack phases ran, and their alerts not about the attack.
var attackPhaseTotal = 0.0
var attackPhaseOther = 0
let involved: Set<String> = [traffic.attacker, traffic.outside]
/// FLOWFOREST_EVAL_ONLY: scenario names, "reference" or "variants", comma-separated.
let only = environment["FLOWFOREST_EVAL_ONLY"].map { Set($0.split(separator: ",").map(String.init)) }
func selected(_ attack: Attack) -> Bool {
    guard let only else { return true }
    return only.contains(attack.name) || only.contains(attack.isVariant ? "variants" : "reference")
}
for (index, attack) in Attack.allCases.enumerated() where selected(attack) {
    var startNs: UInt64 = 0
    say("eval: \(attack.name)")
    guard FileManager.default.fileExists(atPath: "/run/netns/\(traffic.serversNamespace)") else {
        say("eval: the lab's namespaces are gone (removed from outside); stopping")
        break
    }
    let found: [StampedAlert]
    let phaseStart = Date()
    defer { attackPhaseTotal += Date().timeIntervalSince(phaseStart) }
    do {
        found = try await live("attack \(index)", model: model) {
            let clients = try traffic.startNormalTraffic(seconds: max(attackPhaseSeconds, 14 + attack.timeLimit), seed: 10 + index)
            // 8 s in, at a random point of the poll cycle: the delay then
            // includes an honest share of waiting for the next poll.
            Thread.sleep(forTimeInterval: 8 + Double.random(in: 0..<1))
            startNs = nowNs()
            unblockSignals()
            try traffic.run(attack)
            Thread.sleep(forTimeInterval: 3)
            for p in clients { traffic.lab.stop(p, signal: SIGTERM, timeout: 2) }
        }.alerts
    } catch {
        // One failed tool run costs its row, not the whole evaluation.
        say("  \(attack.name) did not run: \(error)")
        continue
    }
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
    rows.append(Row(attack: attack, detected: hit != nil, delay: hit.map(seconds),
                    firstLabel: related.first?.anomaly.label, alerts: related.count, unrelated: other.count))
    for s in other.prefix(3) { say("  other: \(describe(s.anomaly))") }
    for s in related.prefix(4) {
        say("  \(String(format: "%+.1f", seconds(s))) s \(s.anomaly.kind.rawValue) \(s.anomaly.label.rawValue) \(s.anomaly.severity.rawValue): \(s.anomaly.explanation.map(\.text).joined(separator: "; "))")
    }
}

var table = ""
for (title, variants) in [("Reference scenarios", false), ("Variants", true)] where rows.contains(where: { $0.attack.isVariant == variants }) {
    table += """
    \(title):

    | scenario | detected | time to first alert with that label | first label given | alerts about the attack | other alerts |
    |---|---|---|---|---|---|

    """
    for r in rows where r.attack.isVariant == variants {
        table += "| \(r.attack.name) | \(r.detected ? "yes" : "no") | \(r.delay.map { String(format: "%.1f s", $0) } ?? "-") | \(r.firstLabel?.rawValue ?? "-") | \(r.alerts) | \(r.unrelated) |\n"
    }
    table += "\n"
}
let allNormalSeconds = normalSeconds + attackPhaseTotal
let allFalse = falseAlerts.count + attackPhaseOther
table += """

Run \(ISO8601DateFormatter().string(from: Date())). Live eBPF tc capture, one-second polls; time is from the attack tool's start to the wall-clock time the detector produced the alert.
Normal traffic only: \(falseAlerts.count) alerts in \(Int(normalSeconds)) s (\(String(format: "%.1f", perHour)) per hour); \
with the normal traffic around the attacks: \(allFalse) alerts not about an attack in \(String(format: "%.0f", allNormalSeconds / 60)) minutes \
(\(String(format: "%.1f", Double(allFalse) / allNormalSeconds * 3600)) per hour). Model trained on \(Int(trainSeconds)) s.

"""
say("\n" + table)
try table.write(to: outDirectory.appendingPathComponent("results.md"), atomically: true, encoding: .utf8)
