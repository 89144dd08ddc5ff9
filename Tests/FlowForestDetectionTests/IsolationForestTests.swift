import Foundation
import Testing
@testable import FlowForestDetection

/// Gaussian cluster rows (Box–Muller from the project's own generator) plus optional outliers.
func gaussianRows(count: Int, features d: Int, seed: UInt64, center: Double = 0, spread: Double = 1) -> [Double] {
    var rng = SeededGenerator(seed: seed)
    return (0..<(count * d)).map { _ in center + spread * rng.gaussian() }
}

@Suite("Isolation forest")
struct IsolationForestTests {
    @Test("c(n) matches the closed form 2H(n−1) − 2(n−1)/n")
    func averagePathLength() {
        let gamma = 0.5772156649015329
        #expect(IsolationForest.averagePathLength(0) == 0)
        #expect(IsolationForest.averagePathLength(1) == 0)
        #expect(IsolationForest.averagePathLength(2) == 1)
        // Hand-computed: c(3) = 2(ln 2 + γ) − 4/3, c(256) = 2(ln 255 + γ) − 510/256.
        #expect(abs(IsolationForest.averagePathLength(3) - 1.2073924) < 1e-7)
        #expect(abs(IsolationForest.averagePathLength(4) - 1.8516559) < 1e-7)
        #expect(abs(IsolationForest.averagePathLength(256) - 10.2447709) < 1e-7)
        #expect(abs(IsolationForest.averagePathLength(256) - (2 * (log(255.0) + gamma) - 510.0 / 256)) < 1e-12)
    }

    @Test("path lengths of a hand-built case: a lone point is isolated by the root split")
    func handComputedPathLength() throws {
        // Four 1-D points {0, 0, 0, 10}: ψ = 4, depth limit 2. Every tree's root
        // threshold lies in [0, 10), so 10 sits alone at depth 1 (h = 1) and the
        // three zeros share a leaf at depth 1 (h = 1 + c(3)).
        let forest = try IsolationForest(rows: [0, 0, 0, 10], featureCount: 1, parameters: ForestParameters(trees: 50, sampleSize: 4, seed: 7))
        #expect(forest.maxDepth == 2)
        #expect(abs(forest.meanPathLength([10]) - 1) < 1e-12)
        #expect(abs(forest.meanPathLength([0]) - (1 + 1.2073924)) < 1e-7)
        #expect(abs(forest.score([10]) - pow(2, -1 / 1.8516559)) < 1e-7)
    }

    @Test("identical vectors cannot be split: every path is c(n) and every score 0.5")
    func constantData() throws {
        let rows = [Double](repeating: 3, count: 8 * 2)
        let forest = try IsolationForest(rows: rows, featureCount: 2, parameters: ForestParameters(trees: 10, sampleSize: 8))
        #expect(abs(forest.meanPathLength([3, 3]) - IsolationForest.averagePathLength(8)) < 1e-12)
        #expect(abs(forest.score([100, -5]) - 0.5) < 1e-12)
    }

    @Test("an outlier scores above every point of the cluster", arguments: [false, true])
    func outlierScoresHigh(extended: Bool) throws {
        let d = 4
        let rows = gaussianRows(count: 1000, features: d, seed: 1)
        let forest = try IsolationForest(rows: rows, featureCount: d, parameters: ForestParameters(extended: extended, seed: 3))
        let inliers = forest.scores(rows: Array(rows.prefix(200 * d)))
        let outlier = forest.score([8, 8, -8, 8])
        // Extended forests score more conservatively than axis-parallel ones.
        #expect(outlier > (extended ? 0.65 : 0.7))
        #expect(outlier > inliers.max()!)
        #expect(inliers.reduce(0, +) / Double(inliers.count) < 0.5)
    }

    @Test("the same seed grows the same forest; another seed another")
    func deterministic() throws {
        let rows = gaussianRows(count: 500, features: 3, seed: 9)
        let a = try IsolationForest(rows: rows, featureCount: 3, parameters: ForestParameters(seed: 11))
        let b = try IsolationForest(rows: rows, featureCount: 3, parameters: ForestParameters(seed: 11))
        let c = try IsolationForest(rows: rows, featureCount: 3, parameters: ForestParameters(seed: 12))
        #expect(a == b)
        #expect(a != c)
        #expect(a.treeCount == 100 && a.effectiveSampleSize == 256 && a.maxDepth == 8)
    }

    @Test("batch scores equal one-at-a-time scores and scores with credit", arguments: [false, true])
    func batchMatchesSingle(extended: Bool) throws {
        let d = 5
        let rows = gaussianRows(count: 400, features: d, seed: 4)
        let forest = try IsolationForest(rows: rows, featureCount: d, parameters: ForestParameters(extended: extended))
        let probe = gaussianRows(count: 50, features: d, seed: 5, spread: 3)
        let batch = forest.scores(rows: probe)
        for i in 0..<50 {
            let x = Array(probe[(i * d)..<((i + 1) * d)])
            // Exactly: the detector scores a poll's vectors in a batch and must
            // judge each as it would alone, thresholds and all.
            #expect(batch[i] == forest.score(x))
            #expect(batch[i] == forest.scoreWithCredit(x).score)
        }
    }

    @Test("path credit names the feature that makes a vector odd")
    func creditFindsTheOddFeature() throws {
        let extended = false
        let d = 6
        let rows = gaussianRows(count: 2000, features: d, seed: 21)
        let forest = try IsolationForest(rows: rows, featureCount: d, parameters: ForestParameters(extended: extended, seed: 5))
        for odd in [0, 3, 5] {
            var x = [Double](repeating: 0, count: d)
            x[odd] = 9
            let (_, credit) = forest.scoreWithCredit(x)
            #expect(credit.indices.max(by: { credit[$0] < credit[$1] }) == odd)
        }
    }

    @Test("bad training data is refused with a clear error")
    func badTrainingData() {
        #expect(throws: ForestTrainingError.noVectors) { try IsolationForest(rows: [], featureCount: 2) }
        #expect(throws: ForestTrainingError.ragged(expected: 2, count: 3)) { try IsolationForest(rows: [1, 2, 3], featureCount: 2) }
        #expect(throws: ForestTrainingError.notFinite(row: 1, column: 0)) { try IsolationForest(rows: [1, 2, .nan, 4], featureCount: 2) }
    }

    @Test("replacing trees keeps the rest of the forest and the node links valid", arguments: [false, true])
    func replacingTrees(extended: Bool) throws {
        let d = 3
        let rows = gaussianRows(count: 600, features: d, seed: 2)
        let a = try IsolationForest(rows: rows, featureCount: d, parameters: ForestParameters(trees: 10, extended: extended, seed: 1))
        let b = try IsolationForest(rows: rows, featureCount: d, parameters: ForestParameters(trees: 10, extended: extended, seed: 2))
        let all = a.replacingTrees(Array(0..<10), with: b)
        let none = a.replacingTrees([], with: b)
        let x = [0.5, -1.0, 2.0]
        #expect(abs(all.score(x) - b.score(x)) < 1e-12)
        #expect(abs(none.score(x) - a.score(x)) < 1e-12)
        let half = a.replacingTrees([0, 2, 4, 6, 8], with: b)
        let data = try JSONEncoder().encode(half)
        #expect(try JSONDecoder().decode(IsolationForest.self, from: data) == half)
    }
    @Test("trees from a larger sample swapped into a forest of a small one: every walk reaches its leaf, and credit scoring agrees with batch scoring",
          arguments: [false, true])
    func replacingWithDeeperTrees(extended: Bool) throws {
        let d = 3
        // 40 vectors: a sample of 40, trees at most 6 deep; 1,000: a sample of 256, 8 deep.
        let small = try IsolationForest(rows: gaussianRows(count: 40, features: d, seed: 3), featureCount: d,
                                        parameters: ForestParameters(trees: 10, extended: extended, seed: 1))
        let large = try IsolationForest(rows: gaussianRows(count: 1_000, features: d, seed: 4), featureCount: d,
                                        parameters: ForestParameters(trees: 5, extended: extended, seed: 2))
        #expect(large.maxDepth >= small.maxDepth + 2)
        let mixed = small.replacingTrees([0, 2, 4, 6, 8], with: large)
        #expect(mixed.maxDepth == large.maxDepth)
        let probes: [[Double]] = [[0, 0, 0], [0.5, -1.0, 2.0], [9, -9, 9], [0.01, 0.02, -0.03]]
        let batched = mixed.scores(rows: probes.flatMap { $0 })
        for (x, b) in zip(probes, batched) {
            #expect(abs(mixed.scoreWithCredit(x).score - b) < 1e-12, "\(x)")
            #expect(abs(mixed.score(x) - b) < 1e-12, "\(x)")
        }
        // Written and read back: the file's depth bound holds its trees.
        #expect(try JSONDecoder().decode(IsolationForest.self, from: JSONEncoder().encode(mixed)) == mixed)
    }

    @Test("a forest file whose trees go deeper than its max_depth is refused, not walked short or past a path's end")
    func deeperThanMaxDepthRefused() throws {
        let d = 3
        let forest = try IsolationForest(rows: gaussianRows(count: 1_000, features: d, seed: 4), featureCount: d,
                                         parameters: ForestParameters(trees: 3, seed: 2))
        var object = try #require(try JSONSerialization.jsonObject(with: JSONEncoder().encode(forest)) as? [String: Any])
        object["max_depth"] = forest.maxDepth - 2
        let edited = try JSONSerialization.data(withJSONObject: object)
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(IsolationForest.self, from: edited) }
    }
}
