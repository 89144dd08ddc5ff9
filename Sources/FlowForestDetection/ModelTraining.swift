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

/// Collects baseline vectors of every kind from capture polls of normal
/// traffic and grows a ``DetectionModel`` from them (`flowforest train`).
public struct ModelTrainer: Sendable {
    public let parameters: ForestParameters
    private var tracker = HostTracker()
    /// The flows of ``add(_:)``; a pipeline passes its ledger instead.
    private var ownFlows = FlowLedger()
    private var rows: [AnomalyKind: [Double]] = [:]
    public private(set) var vectors: [AnomalyKind: Int] = [:]

    public init(parameters: ForestParameters = ForestParameters()) {
        self.parameters = parameters
    }

    /// Adds one poll's vectors, keeping the flows in a ledger of its own
    /// (a trainer used without a pipeline).
    public mutating func add(_ batch: FlowBatch) {
        let changes = ownFlows.apply(batch.records, origin: "", nowNs: batch.timeNs, reporting: batch.reporting)
        add(batch, changes: changes, flows: ownFlows)
    }

    /// Adds one poll's vectors, exactly as the ``Detector`` would compute
    /// them, from the records `flows` has already taken. Records and vectors
    /// are taken in a fixed order (flow ID; kind and address), not the flow
    /// table's hash order, so the same capture and seed grow the same model
    /// in every run.
    public mutating func add(_ batch: FlowBatch, changes: [FlowChange], flows: FlowLedger) {
        let changes = changes.sorted { $0.record.id < $1.record.id }
        for change in changes where change.record.state != .active {
            rows[.flow, default: []].append(contentsOf: FlowFeatures.vector(of: change.record))
            vectors[.flow, default: 0] += 1
        }
        let entities = tracker.update(changes, flows: flows, nowNs: batch.timeNs).sorted {
            ($0.kind == .host ? 0 : 1, $0.address) < ($1.kind == .host ? 0 : 1, $1.address)
        }
        for e in entities {
            rows[e.kind, default: []].append(contentsOf: e.vector)
            vectors[e.kind, default: 0] += 1
        }
    }

    /// Grows one forest per kind that has at least `minimumVectors` vectors.
    /// - Throws: ``ForestTrainingError/noVectors`` when no kind has enough.
    public func model(nowMs: Int64, minimumVectors: Int = 32, contamination: Double? = nil) throws -> DetectionModel {
        var models: [KindModel] = []
        for (i, kind) in AnomalyKind.allCases.enumerated() {
            guard let r = rows[kind], (vectors[kind] ?? 0) >= minimumVectors else { continue }
            var p = parameters
            p.seed &+= UInt64(i)
            models.append(try KindModel.train(kind: kind, rows: r, parameters: p, contamination: contamination, nowMs: nowMs))
        }
        guard !models.isEmpty else { throw ForestTrainingError.noVectors }
        return DetectionModel(createdAtMs: nowMs, models: models)
    }
}
