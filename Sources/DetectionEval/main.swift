// `make eval`: the detector against real attack tools in a namespace lab.
//
// 1. Normal clients (web, DNS-style UDP, pings, bulk downloads) run while a
//    capture on the sensor interface records them; a model is trained from it.
// 2. Normal traffic alone, captured again with other seeds: every alert is a
//    false alert.
// 3. Each attack (nmap, hping3, scripted slow connections, beacons, upload)
//    starts a few seconds into normal traffic; the capture is replayed
//    through the detector in one-second polls by packet time, as live
//    capture polls, and the first alert with the expected label gives the
//    time to detection.
// Prints a Markdown table (also written to out/eval/results.md).
import FlowForestCore
import FlowForestDetection
import FlowForestLab
import Foundation
import Logging
import PcapCapture

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
    FileHandle.standardError.write(Data("eval: needs root for network namespaces (sudo make eval)\n".utf8))
    exit(2)
}
try FileManager.default.createDirectory(at: outDirectory, withIntermediateDirectories: true)
let work = FileManager.default.temporaryDirectory.appendingPathComponent("flowforest-eval-\(getpid())")
try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)

nonisolated(unsafe) var activeLab: TrafficLab?
// The lab must not outlive an interrupted run.
for sig in [SIGINT, SIGTERM] {
    signal(sig) { _ in
        activeLab?.teardown()
        _exit(130)
    }
}
unblockSignals()
let traffic = try TrafficLab(workDirectory: work)
activeLab = traffic
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

/// Records the sensor interface while `body` runs; returns the capture's path.
func capture(_ name: String, _ body: () throws -> Void) throws -> String {
    let pcap = work.appendingPathComponent("\(name).pcap")
    let err = work.appendingPathComponent("\(name).tcpdump.err")
    let tcpdump = try traffic.lab.spawn(in: traffic.serversNamespace,
                                        ["tcpdump", "-i", traffic.sensorInterface, "-n", "-U", "-B", "65536", "-s", "160", "-w", pcap.path], stderr: err)
    let deadline = Date().addingTimeInterval(10)
    while Date() < deadline, !((try? String(contentsOf: err, encoding: .utf8))?.contains("listening on") ?? false) {
        Thread.sleep(forTimeInterval: 0.05)
    }
    try body()
    Thread.sleep(forTimeInterval: 0.5)
    traffic.lab.stop(tcpdump, signal: SIGINT)
    if let text = try? String(contentsOf: err, encoding: .utf8), let line = text.split(separator: "\n").first(where: { $0.contains("dropped by kernel") }) {
        say("  capture \(name): \(line)")
    }
    return pcap.path
}

func normal(seconds: Double, seed: Int) throws {
    let clients = try traffic.startNormalTraffic(seconds: seconds, seed: seed)
    for p in clients { p.waitUntilExit() }
}

/// Replays a capture through a detector in one-second polls by packet time.
@MainActor
func replay(_ path: String, model: DetectionModel?, training: Bool = false) async throws -> (anomalies: [Anomaly], trainer: ModelTrainer) {
    var detector = model.map { Detector(model: $0, sensor: "eval", logger: logger) }
    var trainer = ModelTrainer()
    var found: [Anomaly] = []
    for try await batch in PcapFileSource(path: path, logger: logger).batches() {
        if training { trainer.add(batch) }
        if detector != nil { found += detector!.process(batch) }
    }
    return (found, trainer)
}

// 1. Baseline and model.
say("eval: \(Int(trainSeconds)) s of normal traffic to train on")
let trainPcap = try capture("train") { try normal(seconds: trainSeconds, seed: 1) }
let trainer = try await replay(trainPcap, model: nil, training: true).trainer
let model = try trainer.model(nowMs: Int64(Date().timeIntervalSince1970 * 1000))
try model.save(to: outDirectory.appendingPathComponent("model.json").path)
say("eval: model trained: " + model.models.map { "\($0.kind.rawValue) \($0.trainingVectors + $0.heldOutVectors) vectors" }.joined(separator: ", "))

// 2. Normal traffic only.
say("eval: \(Int(normalSeconds)) s of normal traffic only")
let normalPcap = try capture("normal") { try normal(seconds: normalSeconds, seed: 2) }
let falseAlerts = try await replay(normalPcap, model: model).anomalies
let perHour = Double(falseAlerts.count) / normalSeconds * 3600
say("eval: \(falseAlerts.count) alerts in \(Int(normalSeconds)) s of normal traffic (\(String(format: "%.1f", perHour)) per hour)")
for a in falseAlerts { say("  false alert: \(a.kind.rawValue) \(a.label) \(a.severity.rawValue) \(a.sourceAddress?.description ?? "-") -> \(a.destinationAddress?.description ?? "-"): \(a.explanation.first?.text ?? "")") }

// 3. Attacks.
struct Row {
    var attack: Attack
    var detected: Bool
    var delay: Double?
    var firstLabel: String?
    var alerts: Int
    var unrelated: Int
}
var rows: [Row] = []
let involved: Set<String> = [traffic.attacker, traffic.outside]
let only = environment["FLOWFOREST_EVAL_ONLY"].map { Set($0.split(separator: ",").map(String.init)) }
for (index, attack) in Attack.allCases.enumerated() where only?.contains(attack.rawValue) ?? true {
    var startNs: UInt64 = 0
    say("eval: \(attack.rawValue)")
    guard FileManager.default.fileExists(atPath: "/run/netns/\(traffic.serversNamespace)") else {
        say("eval: the lab's namespaces are gone (removed from outside); stopping")
        break
    }
    let pcap = try capture("attack-\(index)") {
        let clients = try traffic.startNormalTraffic(seconds: 50, seed: 10 + index)
        Thread.sleep(forTimeInterval: 8)
        startNs = nowNs()
        unblockSignals()
        try traffic.run(attack)
        Thread.sleep(forTimeInterval: 3)
        for p in clients { traffic.lab.stop(p, signal: SIGTERM, timeout: 2) }
    }
    guard FileManager.default.fileExists(atPath: pcap) else {
        say("  no capture was written for \(attack.rawValue)")
        continue
    }
    let found = try await replay(pcap, model: model).anomalies
    let startMs = Int64(startNs / 1_000_000)
    // Alerts about the attack: naming the attacker, the outside host or the
    // sweep range, or the victim's destination vector with the attack's label.
    let related = found.filter { a in
        a.timeMs >= startMs - 1000 && (a.label == attack.expectedLabel
            || [a.sourceAddress, a.destinationAddress].contains { $0.map { involved.contains($0.description) || $0.description.hasPrefix("198.18.2.") } ?? false })
    }
    let hit = related.first { $0.label == attack.expectedLabel }
    rows.append(Row(attack: attack, detected: hit != nil, delay: hit.map { Double($0.timeMs - startMs) / 1000 },
                    firstLabel: related.first?.label, alerts: related.count, unrelated: found.count - related.count))
    for a in found.filter({ a in !related.contains(a) }).prefix(3) {
        say("  other: \(a.kind.rawValue) \(a.label) \(a.severity.rawValue) \(a.sourceAddress?.description ?? "-") -> \(a.destinationAddress?.description ?? "-"): \(a.explanation.first?.text ?? "")")
    }
    for a in related.prefix(4) { say("  \(String(format: "%+.1f", Double(a.timeMs - startMs) / 1000)) s \(a.kind.rawValue) \(a.label) \(a.severity.rawValue): \(a.explanation.map(\.text).joined(separator: "; "))") }
}

var table = """
| scenario | detected | time to first alert with that label | first label given | alerts on attack hosts | other alerts |
|---|---|---|---|---|---|

"""
for r in rows {
    table += "| \(r.attack.rawValue) | \(r.detected ? "yes" : "no") | \(r.delay.map { String(format: "%.1f s", $0) } ?? "-") | \(r.firstLabel ?? "-") | \(r.alerts) | \(r.unrelated) |\n"
}
table += "\nNormal traffic only: \(falseAlerts.count) alerts in \(Int(normalSeconds)) s (\(String(format: "%.1f", perHour)) per hour); model trained on \(Int(trainSeconds)) s.\n"
say("\n" + table)
try table.write(to: outDirectory.appendingPathComponent("results.md"), atomically: true, encoding: .utf8)
