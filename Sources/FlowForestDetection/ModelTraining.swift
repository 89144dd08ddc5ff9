public import FlowForestCore

extension KindModel {
    /// Share of baseline vectors kept out of training to set the thresholds.
    public static let defaultHeldOutShare = 0.2

    /// Grows the forest of one vector kind from baseline `rows` (vectors of
    /// that kind, one after another). A share of the vectors, picked by the
    /// seed, is held out: their scores set the severity thresholds, so the
    /// thresholds measure how new normal traffic scores, not how the
    /// training vectors score against their own trees.
    public static func train(
        kind: AnomalyKind, rows: [Double], parameters: ForestParameters = ForestParameters(),
        heldOutShare: Double = defaultHeldOutShare, contamination: Double? = nil, nowMs: Int64
    ) throws -> KindModel {
        let d = FeatureSchema.features(of: kind).count
        guard rows.count % d == 0 else { throw ForestTrainingError.ragged(expected: d, count: rows.count) }
        let n = rows.count / d
        guard n >= 2 else { throw ForestTrainingError.noVectors }
        var order = Array(0..<n)
        var rng = SeededGenerator(seed: parameters.seed ^ 0x5EED)
        order.shuffle(using: &rng)
        let heldOut = min(n - 1, max(1, Int((Double(n) * heldOutShare).rounded())))
        var train: [Double] = []
        train.reserveCapacity((n - heldOut) * d)
        for i in order[heldOut...] { train.append(contentsOf: rows[(i * d)..<((i + 1) * d)]) }
        var held: [Double] = []
        held.reserveCapacity(heldOut * d)
        for i in order[..<heldOut] { held.append(contentsOf: rows[(i * d)..<((i + 1) * d)]) }
        let forest = try IsolationForest(rows: train, featureCount: d, parameters: parameters)
        let scores = forest.scores(rows: held)
        return KindModel(
            kind: kind, featureNames: FeatureSchema.names(of: kind), forest: forest,
            thresholds: SeverityThresholds.from(heldOutScores: scores, contamination: contamination),
            baseline: FeatureBaseline.of(rows: rows, featureCount: d),
            trainingVectors: n - heldOut, heldOutVectors: heldOut,
            baselineMaxScore: scores.max() ?? 0, trainedAtMs: nowMs)
    }
}
