import FlowForestTestSupport
import Foundation
import Testing
@testable import FlowForestDetection

/// The package root, from this file's place in it.
let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// The Python of the reference venv (`make test-parity` creates it from
/// Tests/parity/requirements.txt), or FLOWFOREST_PYTHON.
let parityPython: String? = {
    if let p = ProcessInfo.processInfo.environment["FLOWFOREST_PYTHON"] { return p }
    let p = packageRoot.appendingPathComponent("out/venv/bin/python").path
    return FileManager.default.isExecutableFile(atPath: p) ? p : nil
}()

/// `make test-parity` sets FLOWFOREST_REQUIRE_PARITY=1 so a missing venv fails instead of skipping.
let parityRequired = ProcessInfo.processInfo.environment["FLOWFOREST_REQUIRE_PARITY"] == "1"

/// ROC AUC by the rank-sum (Mann–Whitney) formula, ties counted half.
func rocAUC(scores: [Double], anomalous: [Bool]) -> Double {
    let order = scores.indices.sorted { scores[$0] < scores[$1] }
    var ranks = [Double](repeating: 0, count: scores.count)
    var i = 0
    while i < order.count {
        var j = i
        while j + 1 < order.count && scores[order[j + 1]] == scores[order[i]] { j += 1 }
        let rank = Double(i + j) / 2 + 1
        for k in i...j { ranks[order[k]] = rank }
        i = j + 1
    }
    let positives = Double(anomalous.filter { $0 }.count)
    let negatives = Double(anomalous.count) - positives
    let rankSum = zip(ranks, anomalous).filter(\.1).map(\.0).reduce(0, +)
    return (rankSum - positives * (positives + 1) / 2) / (positives * negatives)
}

/// Normal traffic-like data: two correlated clusters and a heavy-tailed
/// feature; anomalies overlap the clusters' edges, so AUC is far from 1 and
/// a weaker forest would show.
func parityData(seed: UInt64, normal: Int, anomalies: Int, d: Int = 6) -> (rows: [Double], anomalous: [Bool]) {
    var rng = SeededGenerator(seed: seed)
    var rows: [Double] = []
    var labels: [Bool] = []
    for i in 0..<(normal + anomalies) {
        let isAnomaly = i >= normal
        let center = isAnomaly ? 2.0 : (rng.unit() < 0.7 ? 0.0 : 4.0)
        let spread = isAnomaly ? 2.5 : 1.0
        let base = center + spread * rng.gaussian()
        for j in 0..<d {
            switch j {
            case 0: rows.append(base)
            case 1: rows.append(base + 0.3 * spread * rng.gaussian())
            case 2: rows.append(exp(0.5 * rng.gaussian() + (isAnomaly ? 0.6 : 0)))
            default: rows.append(center + spread * rng.gaussian())
            }
        }
        labels.append(isAnomaly)
    }
    return (rows, labels)
}

func csv(_ rows: [Double], d: Int) -> String {
    stride(from: 0, to: rows.count, by: d).map { rows[$0..<($0 + d)].map { "\($0)" }.joined(separator: ",") }.joined(separator: "\n") + "\n"
}

@Suite("Parity with scikit-learn", .enabled(if: parityPython != nil || parityRequired, "no reference venv: run `make test-parity`"))
struct ParityTests {
    @Test("mean ROC AUC over 5 seeds within 0.01 of scikit-learn's IsolationForest")
    func rocAUCMatchesScikitLearn() throws {
        let python = try #require(parityPython, "no reference Python: run `make test-parity` (creates out/venv)")
        let script = packageRoot.appendingPathComponent("Tests/parity/sklearn_scores.py").path
        let d = 6
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("flowforest-parity-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        var ours: [Double] = []
        var theirs: [Double] = []
        for seed in UInt64(1)...5 {
            // Training data is mostly normal with 2 % anomalies, as a live baseline would be.
            let train = parityData(seed: seed * 1000, normal: 3000, anomalies: 60, d: d)
            let test = parityData(seed: seed * 1000 + 1, normal: 2000, anomalies: 200, d: d)
            let trainPath = dir.appendingPathComponent("train-\(seed).csv")
            let testPath = dir.appendingPathComponent("test-\(seed).csv")
            try csv(train.rows, d: d).write(to: trainPath, atomically: true, encoding: .utf8)
            try csv(test.rows, d: d).write(to: testPath, atomically: true, encoding: .utf8)

            let forest = try IsolationForest(rows: train.rows, featureCount: d, parameters: ForestParameters(seed: seed))
            ours.append(rocAUC(scores: forest.scores(rows: test.rows), anomalous: test.anomalous))

            let output = try ChildProcess.output(python, [script, trainPath.path, testPath.path, String(seed)])
            let scores = output.split(separator: "\n").compactMap { Double($0) }
            try #require(scores.count == test.anomalous.count, "scikit-learn returned \(scores.count) scores")
            theirs.append(rocAUC(scores: scores, anomalous: test.anomalous))
        }
        let meanOurs = ours.reduce(0, +) / 5
        let meanTheirs = theirs.reduce(0, +) / 5
        print("parity: FlowForest mean AUC \(meanOurs) \(ours), scikit-learn \(meanTheirs) \(theirs)")
        // The data must be hard enough that the comparison means something.
        #expect(meanTheirs < 0.98 && meanTheirs > 0.6)
        #expect(abs(meanOurs - meanTheirs) < 0.01)
    }

    @Test("the AUC helper agrees with hand-computed cases")
    func aucHelper() {
        #expect(rocAUC(scores: [0.1, 0.2, 0.8, 0.9], anomalous: [false, false, true, true]) == 1)
        #expect(rocAUC(scores: [0.9, 0.8, 0.2, 0.1], anomalous: [false, false, true, true]) == 0)
        #expect(rocAUC(scores: [0.5, 0.5, 0.5, 0.5], anomalous: [false, true, false, true]) == 0.5)
        // One of four positive–negative pairs misordered.
        #expect(rocAUC(scores: [0.1, 0.6, 0.5, 0.9], anomalous: [false, false, true, true]) == 0.75)
    }
}
