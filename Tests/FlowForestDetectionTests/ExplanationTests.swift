import FlowForestCore
import Foundation
import Testing
@testable import FlowForestDetection

/// Every explanation line must be true: the feature's value lies strictly
/// beyond its baseline in the stated direction, as printed.
@Suite("Explanations are true")
struct ExplanationTests {
    /// Checks one anomaly's lines against the model it was scored with;
    /// returns a description of every false line.
    static func falseLines(_ a: Anomaly, model: DetectionModel) -> [String] {
        guard !a.explanation.isEmpty else { return ["\(a.kind) \(a.label): no explanation line"] }
        let features = FeatureSchema.features(of: a.kind)
        let baseline = model[a.kind]!.baseline
        var wrong: [String] = []
        for item in a.explanation {
            guard item.isTrue else { wrong.append("\(a.label): \(item.text) stated \(item.direction)"); continue }
            guard let j = features.firstIndex(where: { $0.name == item.feature }) else {
                // Not a feature's line: the score's or a rule's.
                if item.feature == "isolation_score" && !(a.score > item.baseline) { wrong.append("score line \(item.text)") }
                continue
            }
            let value = try! #require(a.features[item.feature])
            let reference = features[j].display(item.direction == "above" ? baseline[j].p99 : baseline[j].p01)
            let beyond = item.direction == "above" ? value > reference : value < reference
            // The printed numbers themselves must say it: "0 (baseline p1: 0)" is not below.
            if !beyond || !printedBeyond(item) {
                wrong.append("\(a.label): \(item.text) (value \(value), reference \(reference))")
            }
        }
        // Ranked by share of the isolation: the first lines' shares never rise.
        let shares = a.explanation.prefix(3).compactMap(\.share)
        if zip(shares, shares.dropFirst()).contains(where: { $0 < $1 }) { wrong.append("\(a.label): not ranked by share \(shares)") }
        return wrong
    }

    /// "words 412 (baseline p99: 9; 40 % of the isolation)": the printed value
    /// and reference compare in the stated direction.
    static func printedBeyond(_ item: ExplanationItem) -> Bool {
        let quantile = item.direction == "above" ? "p99" : "p1"
        guard let open = item.text.range(of: " (baseline \(quantile): ") else { return false }
        let valueText = item.text[..<open.lowerBound].split(separator: " ").last.map(String.init) ?? ""
        let baseText = item.text[open.upperBound...].prefix { $0 != ";" && $0 != ")" }
        guard let value = Double(valueText), let base = Double(baseText) else { return false }
        return item.direction == "above" ? value > base : value < base
    }

    static let attacks: [(String, @Sendable (inout TrafficSimulator, Int) -> Void, Int)] = [
        ("port scan", Attacks.portScan, 4), ("host sweep", Attacks.hostSweep, 4), ("syn flood", Attacks.synFlood, 4),
        ("forged syn flood", Attacks.spoofedSynFlood(answered: false), 8), ("udp flood", Attacks.udpFlood, 4),
        ("icmp flood", Attacks.icmpFlood, 4), ("slow connections", Attacks.slowConnections, 6),
        ("exfiltration", Attacks.exfiltration, 6), ("beaconing", Attacks.beaconing, 20),
        ("ack flood", TCPFloods.oneSource(.ack), 4), ("forged xmas flood", TCPFloods.forged([.fin, .psh, .urg]), 4),
    ]

    @Test("every line of every anomaly the simulated attacks and normal traffic raise is true")
    func everyAnomalyIsTrue() throws {
        var sim = TrafficSimulator()
        let trained = trainedDetector(&sim)
        let model = try #require(trained.model)
        var all: [Anomaly] = []
        for (_, attack, seconds) in Self.attacks {
            var detector = trained
            var s = sim
            all += s.runAttack(seconds: seconds, into: &detector, attack).map(\.anomaly)
            all += s.runNormal(seconds: 20, into: &detector)
        }
        var quiet = trained
        all += sim.runNormal(seconds: 300, into: &quiet)
        #expect(all.count >= Self.attacks.count, "too few anomalies to test: \(all.count)")
        let wrong = all.flatMap { Self.falseLines($0, model: model) }
        #expect(wrong.isEmpty, "\(wrong.count) false lines of \(all.reduce(0) { $0 + $1.explanation.count }): \(wrong.prefix(5))")
    }

    @Test("on generated vectors and baselines, every line is true and the order follows the credit", arguments: [1, 2, 3, 4, 5])
    func generated(seed: UInt64) {
        var rng = SeededGenerator(seed: seed)
        for kind in [AnomalyKind.host, .destination, .flow] {
            let features = FeatureSchema.features(of: kind)
            for _ in 0..<400 {
                let baseline = features.map { _ -> FeatureBaseline in
                    // Many features sit at 0 in training (p1 = p99 = 0): nothing can be below them.
                    let low = rng.unit() < 0.3 ? 0 : rng.unit() * 3
                    let high = low + (rng.unit() < 0.2 ? 0 : rng.unit() * 4)
                    return FeatureBaseline(median: (low + high) / 2, mad: (high - low) / 4, p01: low, p99: high, max: high + rng.unit())
                }
                let vector = baseline.map { b in max(0, b.p01 + (rng.unit() * 1.4 - 0.2) * (b.p99 - b.p01 + 1)) }
                let credit = features.map { _ in rng.unit() < 0.5 ? 0 : rng.unit() }
                let score = 0.5 + rng.unit() * 0.3
                let lines = Explainer.explain(kind: kind, vector: vector, credit: credit, baseline: baseline,
                                              drivers: .init(score: score, threshold: 0.6))
                for line in lines {
                    guard let j = features.firstIndex(where: { $0.name == line.feature }) else {
                        #expect(line.feature == "isolation_score" && score > 0.6 && line.isTrue)
                        continue
                    }
                    #expect(line.isTrue, "\(line.text)")
                    #expect(line.direction == "above" ? vector[j] > baseline[j].p99 : vector[j] < baseline[j].p01, "\(line.text)")
                }
                let shares = lines.compactMap(\.share)
                #expect(zip(shares, shares.dropFirst()).allSatisfy { $0 >= $1 })
                // No line at all only when nothing lies beyond the baseline and the score is below the threshold.
                if lines.isEmpty { #expect(score <= 0.6) }
            }
        }
    }

    @Test("the evaluation's audit passes true lines and names false ones")
    func audit() throws {
        var sim = TrafficSimulator()
        var detector = trainedDetector(&sim)
        let model = try #require(detector.model)
        let scan = try #require(sim.runAttack(seconds: 3, into: &detector, Attacks.portScan).map(\.anomaly).first { $0.label == .portScan })
        #expect(ExplanationAudit.falseLines(of: scan, model: model).isEmpty)
        var wrong = scan
        wrong.explanation[0].direction = wrong.explanation[0].direction == "above" ? "below" : "above"
        #expect(ExplanationAudit.falseLines(of: wrong, model: model).count == 1)
        var empty = scan
        empty.explanation = []
        #expect(ExplanationAudit.falseLines(of: empty, model: model) == ["port scan: no explanation"])
    }

    @Test("lines that would print as equal are left out; the score speaks when no feature is beyond its baseline")
    func edges() {
        let kind = AnomalyKind.host
        let features = FeatureSchema.features(of: kind)
        let zero = FeatureBaseline(median: 0, mad: 0, p01: 0, p99: 0, max: 0)
        var baseline = [FeatureBaseline](repeating: zero, count: features.count)
        let j = FeatureSchema.index("mean_flow_bytes_100s", in: kind)
        baseline[j] = FeatureBaseline(median: log1p(150), mad: 0.2, p01: log1p(100), p99: log1p(300), max: log1p(400))
        var vector = [Double](repeating: 0, count: features.count)
        vector[j] = log1p(100.3)  // prints as 100, like its p1
        let credit = [Double](repeating: 1, count: features.count)
        let lines = Explainer.explain(kind: kind, vector: vector, credit: credit, baseline: baseline,
                                      drivers: .init(score: 0.7123, threshold: 0.7121))
        #expect(lines.count == 1)
        #expect(lines.first?.feature == "isolation_score")
        #expect(lines.first?.text.contains("0.7123") == true && lines.first?.text.contains("0.7121") == true)
        vector[j] = log1p(90)
        var own = [Double](repeating: 0, count: features.count)
        own[j] = 0.4
        let below = Explainer.explain(kind: kind, vector: vector, credit: own, baseline: baseline, drivers: .init(score: 0.7, threshold: 0.6))
        #expect(below.map(\.text) == ["mean bytes per flow (100 s) 90 (baseline p1: 100; 100 % of the isolation)"])
    }
}
