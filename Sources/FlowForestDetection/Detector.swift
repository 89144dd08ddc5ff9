public import FlowForestCore
public import Logging

/// Scores every capture poll: flow vectors of ended and interim flows, host
/// and destination vectors of every address whose traffic changed.
///
/// Without a model it learns first (no alerts while it does), then scores.
/// A value type with no clock: the batch's time drives learning, windows,
/// persistence and retraining, so a capture file replays identically.
public struct Detector: Sendable {
    struct KindState: Sendable {
        var learning: [Double] = []
        var learningCount = 0
        /// Batch time of the kind's first vector while it learns: its
        /// learning window starts there (destination vectors can first
        /// come long after flow vectors).
        var learningSinceNs: UInt64?
        var reservoir: [Double] = []
        var reservoirSeen: UInt64 = 0
        /// Vectors of anomalies a suppression rule matches, a ring of at most
        /// `expectedSampleSize`; `expectedNext` is the slot the next one takes when full.
        var expected: [Double] = []
        var expectedNext = 0
        var vectorsSeen: UInt64 = 0
        var vectorsScored: UInt64 = 0
        var anomalies: [Severity: UInt64] = [:]
        var nextTree = 0
    }

    struct EntityKey: Hashable {
        var kind: AnomalyKind
        var address: IPAddress
    }

    struct ReportKey: Hashable {
        var kind: AnomalyKind
        var address: IPAddress
        var label: AnomalyLabel
    }

    public let configuration: DetectorConfiguration
    public let sensor: String
    public private(set) var model: DetectionModel?
    private var logger: Logger
    private var tracker: HostTracker
    /// The flows of ``process(_:)``, for a detector used on its own; a
    /// pipeline passes its ledger to ``process(_:changes:flows:)`` and this
    /// one stays empty.
    private var ownFlows = FlowLedger()
    private var kinds: [AnomalyKind: KindState] = [:]
    /// Persistence bits per address: whether each of its last vectors was flagged.
    private var history: RecentMap<EntityKey, UInt32>
    /// The last report per (kind, address, label), for repeat suppression.
    private var reported: RecentMap<ReportKey, (timeNs: UInt64, severity: Severity)>

    /// Entries of the per-address memory (persistence bits, last reports).
    var perAddressEntries: (history: Int, reported: Int) { (history.count, reported.count) }
    private var lastRetrainNs: UInt64?
    /// The batches whose time drives learning windows and the retraining
    /// schedule: those reported the way the first batch was. A pipeline fed
    /// by local capture and by the collector or ingest holds two clocks
    /// after a wall-clock step (the drainer keeps its start's offset), and
    /// alternating between them would make every other poll a retraining.
    private var scheduleClock: FlowReporting?
    private var suppressedRepeats: UInt64 = 0
    private var unconfirmed: UInt64 = 0
    private var unexplained: UInt64 = 0
    private var retrainings: UInt64 = 0
    private var rng: SeededGenerator
    private var grouper: AnomalyGrouper
    /// Rules whose anomalies are expected here: their vectors join the next
    /// retraining's sample, so the model learns what the admin called normal.
    private var expectedRules: [Suppression] = []

    /// - Parameters:
    ///   - model: a trained model (`flowforest train`); without one the
    ///     detector learns from the first traffic it sees.
    ///   - sensor: the name every anomaly carries.
    public init(configuration: DetectorConfiguration = .init(), model: DetectionModel? = nil, sensor: String,
                logger: Logger = Logger(label: "flowforest.detection")) {
        self.configuration = configuration
        self.model = model
        self.sensor = sensor
        self.logger = logger
        self.rng = SeededGenerator(seed: configuration.forest.seed ^ 0xD37E_C70A)
        self.grouper = AnomalyGrouper(minimum: configuration.groupMinimum, windowSeconds: configuration.repeatSuppressionSeconds)
        self.tracker = HostTracker(limits: configuration.trackerLimits)
        self.history = RecentMap(idleNs: Self.historyIdleNs, limit: 2 * configuration.trackerLimits.entities)
        self.reported = RecentMap(idleNs: UInt64(min(max(0, configuration.repeatSuppressionSeconds), 1e9) * 1e9), limit: 100_000)
        for kind in AnomalyKind.allCases { kinds[kind] = KindState() }
    }

    /// Replaces the rules whose matching anomalies are expected (the
    /// suppression rules in force); from now on the vectors of anomalies they
    /// match are kept for retraining, and those anomalies are marked
    /// suppressed and left out of groups.
    public mutating func setExpected(_ rules: [Suppression]) {
        expectedRules = rules
    }

    /// Feed one capture poll to a detector used on its own (tests, tools):
    /// it keeps the flows in a ledger of its own. Returns anomalies found in
    /// it (none while learning).
    public mutating func process(_ batch: FlowBatch) -> [Anomaly] {
        let changes = ownFlows.apply(batch.records, origin: "", nowNs: batch.timeNs, reporting: batch.reporting)
        return process(batch, changes: changes, flows: ownFlows)
    }

    /// Feed one capture poll whose records `flows` has already taken
    /// (`changes` is what it made of them, in the batch's order); returns
    /// anomalies found in it (none while learning).
    public mutating func process(_ batch: FlowBatch, changes: [FlowChange], flows: FlowLedger) -> [Anomaly] {
        let now = batch.timeNs
        if scheduleClock == nil { scheduleClock = batch.reporting }
        let onScheduleClock = batch.reporting == scheduleClock
        // A model given at start (a file, the stored one) is retrained on
        // the schedule from the first batch, as a learned one is from when it was learned.
        if onScheduleClock, lastRetrainNs == nil, model != nil { lastRetrainNs = now }
        // The model only changes after the batch (learning, retraining), so
        // each kind's vectors are scored together, sixteen walks at a time.
        var out = scoreFlows(batch.records, nowNs: now)
        let touched = tracker.beginPoll(changes, flows: flows, nowNs: now)
        out += scoreEntities(touched, nowNs: now)
        tracker.endPoll(flows: flows, nowNs: now)
        if onScheduleClock { finishLearningIfDue(nowNs: now) }
        if onScheduleClock, configuration.retrainIntervalSeconds > 0, let last = lastRetrainNs {
            // A clock that went back (a capture file whose record was stamped
            // far ahead) restarts the interval, rather than making every poll due.
            if now < last {
                lastRetrainNs = now
            } else if Double(now - last) / 1e9 >= configuration.retrainIntervalSeconds {
                retrain(nowNs: now, endingLearning: false)
            }
        }
        // Marked before grouping: a group's report leaves out the members'
        // own addresses and ports, so a rule naming them would not match it.
        for i in out.indices where expectedRules.contains(where: { $0.matches(out[i], nowMs: out[i].timeMs) }) {
            out[i].suppressed = true
        }
        return grouper.group(out, nowNs: now)
    }

    /// Flow vectors a slice of records at a time: a poll that ends a million
    /// flows would otherwise hold a vector (and a row) for each. Only interim
    /// and ended records are scored: their states are read in place, and
    /// only those records are copied.
    private mutating func scoreFlows(_ records: [FlowRecord], nowNs now: UInt64) -> [Anomaly] {
        let flowModel = model?[.flow]
        var out: [Anomaly] = []
        var sliceStart = 0
        while sliceStart < records.count {
            let slice = sliceStart..<min(sliceStart + Self.flowSlice, records.count)
            sliceStart = slice.upperBound
            let scored = slice.filter { records[$0].state != .active }
            let flowVectors = scored.map { FlowFeatures.vector(of: records[$0]) }
            let flowScores = Self.scores(flowVectors, model: flowModel)
            for (next, i) in scored.enumerated() {
                let anomaly = handle(kind: .flow, vector: flowVectors[next], score: flowScores?[next], model: flowModel,
                                     nowNs: now, subject: .flow(records[i]))
                if let anomaly { out.append(anomaly) }
            }
        }
        return out
    }

    /// Host and destination vectors of the entities this poll touched, a
    /// slice of them at a time, as flow vectors are.
    private mutating func scoreEntities(_ touched: HostTracker.TouchedEntities, nowNs now: UInt64) -> [Anomaly] {
        let hostModel = model?[.host], destinationModel = model?[.destination]
        var out: [Anomaly] = []
        var sliceStart = 0
        while sliceStart < touched.count {
            let entities = tracker.vectors(of: touched, in: sliceStart..<min(sliceStart + Self.flowSlice, touched.count))
            sliceStart += entities.count
            // Thin vectors are never scored (see `handle`).
            let hostScores = Self.scores(entities.map { $0.kind == .host && !$0.isThin ? $0.vector : nil }, model: hostModel)
            let destinationScores = Self.scores(entities.map { $0.kind == .destination && !$0.isThin ? $0.vector : nil },
                                                model: destinationModel)
            for (i, entity) in entities.enumerated() {
                let isHost = entity.kind == .host
                let anomaly = handle(kind: entity.kind, vector: entity.vector, score: isHost ? hostScores?[i] : destinationScores?[i],
                                     model: isHost ? hostModel : destinationModel, nowNs: now, subject: .entity(entity))
                if let anomaly { out.append(anomaly) }
            }
        }
        return out
    }

    /// Records whose flow vectors, or entities whose vectors, are built and
    /// scored together: enough for the batched walk, few enough that the
    /// vectors stay small beside the batch.
    static let flowSlice = 4096

    /// Scores of the given vectors (nil entries are skipped and get no
    /// score) by one kind's forest in one batched walk: each equals
    /// `forest.score(vector)`. Nil without a model.
    private static func scores(_ vectors: [[Double]?], model km: KindModel?) -> [Double?]? {
        guard let km else { return nil }
        let d = km.forest.featureCount
        var rows: [Double] = []
        rows.reserveCapacity(vectors.count * d)
        var positions: [Int] = []
        var out = [Double?](repeating: nil, count: vectors.count)
        for (i, v) in vectors.enumerated() {
            guard let v else { continue }
            precondition(v.count == d, "vector has \(v.count) features, forest expects \(d)")
            // The batched walk parks finished walks on their leaves by comparison,
            // which a NaN feature would slip past; such a vector walks on its own.
            if v.contains(where: \.isNaN) {
                out[i] = km.forest.score(v)
                continue
            }
            rows.append(contentsOf: v)
            positions.append(i)
        }
        guard !positions.isEmpty else { return out }
        for (k, score) in km.forest.scores(rows: rows).enumerated() { out[positions[k]] = score }
        return out
    }

    enum Subject {
        case flow(FlowRecord)
        case entity(EntityVector)

        /// The address whose history and reports the vector counts towards.
        var address: IPAddress {
            switch self {
            case .flow(let r): return r.sourceAddress
            case .entity(let e): return e.address
            }
        }
    }

    /// What scoring and the labelling rules made of one vector.
    struct Verdict {
        var severity: Severity?
        /// A label certain without the forest (Zeek's scan rules, a metronome beacon).
        var certain: AnomalyLabel?
        /// A label already worked out on the way, so it is not derived twice.
        var guessed: AnomalyLabel?
    }

    /// Learns from a vector of a kind without a model, or scores it: the
    /// forest and labelling rules judge it, persistence confirms it,
    /// a label explains it and repeat suppression lets it through.
    /// `score` is the forest's score of `vector` when the batch has it
    /// already; `model` is the kind's model (nil while it learns).
    private mutating func handle(kind: AnomalyKind, vector: [Double], score batchScore: Double?, model: KindModel?, nowNs now: UInt64,
                                 subject: Subject) -> Anomaly? {
        kinds[kind]!.vectorsSeen += 1
        guard let km = model else {
            learn(kind: kind, vector: vector, nowNs: now)
            return nil
        }
        if case .entity(let e) = subject, e.isThin { return nil }
        kinds[kind]!.vectorsScored += 1
        let score = batchScore ?? km.forest.score(vector)
        var verdict = judge(kind: kind, vector: vector, score: score, model: km)
        let address = subject.address
        guard confirm(&verdict, kind: kind, vector: vector, address: address, baseline: km.baseline, nowNs: now) else {
            unconfirmed += 1
            return nil
        }
        guard let severity = verdict.severity else {
            addToReservoir(kind: kind, vector: vector)
            return nil
        }
        guard severity >= configuration.minimumSeverity else { return nil }
        let label = verdict.certain ?? verdict.guessed ?? Labeler.label(kind: kind, vector: vector, baseline: km.baseline)
        // A vector the forest flags but no behaviour explains must at least hold
        // a value the baseline never came near; otherwise it is the forest's own
        // noise at the edge of a small baseline, not news.
        if !label.isSpecific && !Labeler.outsideEnvelope(kind: kind, vector: vector, baseline: km.baseline) {
            unexplained += 1
            return nil
        }
        keepIfExpected(subject, kind: kind, vector: vector, score: score, severity: severity, label: label, nowNs: now)
        guard !isRepeat(kind: kind, address: address, label: label, severity: severity, nowNs: now) else { return nil }
        kinds[kind]!.anomalies[severity, default: 0] += 1
        logger.debug("anomaly", metadata: [
            "kind": "\(kind.rawValue)", "label": "\(label.rawValue)", "severity": "\(severity.rawValue)",
            "score": "\(score)", "address": "\(address)",
        ])
        let rule = verdict.certain.flatMap { Labeler.ruleEvidence($0, kind: kind, vector: vector) }
        // Path credit only for the vectors reported: the same walks again, recording their paths.
        let credit = km.forest.scoreWithCredit(vector).credit
        let explanation = Explainer.explain(kind: kind, vector: vector, credit: credit, baseline: km.baseline,
                                            leading: Labeler.keyFeatures(label, kind: kind),
                                            drivers: .init(score: score, threshold: km.thresholds.low, rule: rule))
        return anomaly(subject, kind: kind, vector: vector, score: score, severity: severity, label: label,
                       explanation: explanation, nowNs: now)
    }

    /// Keeps a vector of a kind still learning: a uniform sample of the
    /// learning window's vectors, at most `learningVectors` of them, so a
    /// busy link's first seconds do not make the whole baseline.
    private mutating func learn(kind: AnomalyKind, vector: [Double], nowNs now: UInt64) {
        if kinds[kind]!.learningSinceNs == nil { kinds[kind]!.learningSinceNs = now }
        kinds[kind]!.learningCount += 1
        Self.sample(vector, into: &kinds[kind]!.learning, seen: UInt64(kinds[kind]!.learningCount),
                    capacity: max(configuration.learningVectors, configuration.minimumLearningVectors), rng: &rng)
    }

    /// Algorithm R: `rows` (vectors of `vector.count` values, one after
    /// another) keeps a uniform sample of at most `capacity` of the `seen`
    /// vectors offered, this one the latest.
    private static func sample(_ vector: [Double], into rows: inout [Double], seen: UInt64, capacity: Int,
                               rng: inout SeededGenerator) {
        let d = vector.count
        if rows.count / d < capacity {
            rows.append(contentsOf: vector)
        } else {
            let j = rng.below(Int(min(seen, UInt64(Int.max))))
            if j < capacity { rows.replaceSubrange((j * d)..<((j + 1) * d), with: vector) }
        }
    }

    /// Severity from the forest's score, raised by a certain label, or set
    /// by a specific behaviour far outside the baseline envelope.
    private func judge(kind: AnomalyKind, vector: [Double], score: Double, model km: KindModel) -> Verdict {
        var verdict = Verdict(severity: km.thresholds.severity(of: score))
        verdict.certain = Labeler.certainLabel(kind: kind, vector: vector)
        if verdict.certain == nil && Labeler.isCertainBeacon(kind: kind, vector: vector, baseline: km.baseline) {
            verdict.certain = .beaconing
        }
        if verdict.severity == nil && verdict.certain == nil {
            // The forest may under-score a vector extreme in one feature of many: a
            // specific behaviour far outside the baseline envelope counts too.
            let label = Labeler.label(kind: kind, vector: vector, baseline: km.baseline)
            if label.isSpecific && Labeler.outsideEnvelope(kind: kind, vector: vector, baseline: km.baseline) {
                verdict.severity = .medium
                verdict.guessed = label
            }
        }
        if verdict.certain != nil { verdict.severity = max(verdict.severity ?? .high, .high) }
        return verdict
    }

    /// How long an address's persistence bits outlive its last vector: the
    /// bits say whether its last few vectors were flagged, which stops
    /// meaning "in a row" once it has been quiet this long.
    static let historyIdleNs: UInt64 = 300_000_000_000

    /// Persistence: remembers whether each of the last n vectors of this
    /// address was flagged, and returns false for a flagged vector that
    /// is not yet confirmed.
    private mutating func confirm(_ verdict: inout Verdict, kind: AnomalyKind, vector: [Double], address: IPAddress,
                                  baseline: [FeatureBaseline], nowNs now: UInt64) -> Bool {
        let key = EntityKey(kind: kind, address: address)
        let (k, n) = kind == .flow
            ? (configuration.flowPersistenceK, configuration.flowPersistenceN)
            : (configuration.persistenceK, configuration.persistenceN)
        let mask: UInt32 = (1 << UInt32(min(max(n, 1), 31))) &- 1
        let bits = ((history[key] ?? 0) << 1 | (verdict.severity != nil ? 1 : 0)) & mask
        history.set(key, bits == 0 ? nil : bits, nowNs: now)
        guard verdict.severity != nil && verdict.certain == nil && bits.nonzeroBitCount < k else { return true }
        // Persistence screens out the forest's one-off noise. A named behaviour
        // whose own tell-tale feature lies far beyond anything the baseline held
        // is not that noise, and waiting a poll for it only delays the alert.
        let label = verdict.guessed ?? Labeler.label(kind: kind, vector: vector, baseline: baseline)
        guard Labeler.keyFeatureOutsideEnvelope(label, kind: kind, vector: vector, baseline: baseline) else { return false }
        verdict.guessed = label
        return true
    }

    /// One report per (kind, address, label) per suppression window, unless
    /// it got worse: true for a repeat to fold into the earlier report.
    private mutating func isRepeat(kind: AnomalyKind, address: IPAddress, label: AnomalyLabel, severity: Severity,
                                   nowNs now: UInt64) -> Bool {
        let reportKey = ReportKey(kind: kind, address: address, label: label)
        if let previous = reported[reportKey],
           Double(now.nanosecondsApart(from: previous.timeNs)) / 1e9 < configuration.repeatSuppressionSeconds,
           severity <= previous.severity {
            suppressedRepeats += 1
            return true
        }
        // An address reported with a named behaviour moments ago, now only
        // "unusual": its slower windows still hold that attack after the
        // fast one has emptied (a flood's victim once the flood stops). It
        // is the same story, folded into that report like a repeat.
        if !label.isSpecific && reportedSpecific(kind: kind, address: address, nowNs: now) {
            suppressedRepeats += 1
            return true
        }
        reported.set(reportKey, (now, severity), nowNs: now)
        return false
    }

    /// True when `address` was reported as `kind` with a specific label within the repeat window.
    private func reportedSpecific(kind: AnomalyKind, address: IPAddress, nowNs now: UInt64) -> Bool {
        AnomalyLabel.allCases.contains { label in
            guard label.isSpecific, let previous = reported[ReportKey(kind: kind, address: address, label: label)] else { return false }
            return Double(now.nanosecondsApart(from: previous.timeNs)) / 1e9 < configuration.repeatSuppressionSeconds
        }
    }

    /// The anomaly report: a flow's own five-tuple, or a host or
    /// destination with its one peer, if it had only one.
    private func anomaly(_ subject: Subject, kind: AnomalyKind, vector: [Double], score: Double, severity: Severity,
                         label: AnomalyLabel, explanation: [ExplanationItem], nowNs now: UInt64) -> Anomaly {
        let features = FeatureSchema.features(of: kind)
        // Sized up front: growing it rehashed every name several times over.
        var named = [String: Double](minimumCapacity: features.count)
        for (i, info) in features.enumerated() { named[info.name] = info.display(vector[i]) }
        switch subject {
        case .flow(let r):
            return Anomaly(
                sensor: sensor, timeMs: Int64(now / 1_000_000), kind: .flow,
                sourceAddress: r.sourceAddress, destinationAddress: r.destinationAddress,
                sourcePort: r.sourcePort, destinationPort: r.destinationPort, ipProtocol: r.ipProtocol,
                score: score, severity: severity, label: label, explanation: explanation, features: named, flowIDs: [r.id],
                interfaceName: r.interfaceName)
        case .entity(let e):
            let isHost = e.kind == .host
            return Anomaly(
                sensor: sensor, timeMs: Int64(now / 1_000_000), kind: e.kind,
                sourceAddress: isHost ? e.address : e.peer, destinationAddress: isHost ? e.peer : e.address,
                sourcePort: nil, destinationPort: e.peer != nil && e.port != 0 ? e.port : nil, ipProtocol: e.ipProtocol,
                score: score, severity: severity, label: label, explanation: explanation, features: named, flowIDs: e.recentFlowIDs,
                interfaceName: e.observationPoint)
        }
    }

    /// Keeps the vector of an anomaly a suppression rule matches, repeats
    /// included: the rule says it is normal here, so retraining should learn it.
    private mutating func keepIfExpected(_ subject: Subject, kind: AnomalyKind, vector: [Double], score: Double,
                                         severity: Severity, label: AnomalyLabel, nowNs now: UInt64) {
        let capacity = configuration.expectedSampleSize
        guard capacity > 0, !expectedRules.isEmpty else { return }
        let probe = anomaly(subject, kind: kind, vector: vector, score: score, severity: severity, label: label,
                            explanation: [], nowNs: now)
        guard expectedRules.contains(where: { $0.matches(probe, nowMs: probe.timeMs) }) else { return }
        // In place: a copy of the state would copy the whole sample on every vector.
        let d = vector.count
        if kinds[kind]!.expected.count / d < capacity {
            kinds[kind]!.expected.append(contentsOf: vector)
        } else {
            let slot = kinds[kind]!.expectedNext
            kinds[kind]!.expected.replaceSubrange((slot * d)..<((slot + 1) * d), with: vector)
            kinds[kind]!.expectedNext = (slot + 1) % capacity
        }
    }

    /// The expected vectors as training rows: repeated, in turn, until they
    /// are at least ``DetectorConfiguration/expectedShare`` of a sample
    /// with `normal` normal vectors.
    private func expectedRows(_ expected: [Double], dimensions d: Int, normal: Int) -> [Double] {
        let k = expected.count / d
        guard k > 0 else { return [] }
        let share = min(max(configuration.expectedShare, 0), 0.5)
        let wanted = max(k, Int((Double(normal) * share / (1 - share)).rounded(.up)))
        var rows: [Double] = []
        rows.reserveCapacity(wanted * d)
        for i in 0..<wanted { rows.append(contentsOf: expected[((i % k) * d)..<((i % k + 1) * d)]) }
        return rows
    }

    /// Reservoir sampling (Algorithm R) over vectors that scored normal:
    /// flagged vectors never train.
    private mutating func addToReservoir(kind: AnomalyKind, vector: [Double]) {
        let capacity = configuration.reservoirSize
        guard capacity > 0 else { return }
        // In place: a copy of the state would copy the whole reservoir on every vector.
        kinds[kind]!.reservoirSeen += 1
        Self.sample(vector, into: &kinds[kind]!.reservoir, seen: kinds[kind]!.reservoirSeen, capacity: capacity, rng: &rng)
    }

    private mutating func finishLearningIfDue(nowNs now: UInt64) {
        let grown = model != nil
        var trained = false
        for kind in AnomalyKind.allCases where model?[kind] == nil {
            guard let since = kinds[kind]!.learningSinceNs else { continue }
            // A clock that went back starts the window again from the new time.
            if now < since { kinds[kind]!.learningSinceNs = now }
            // The whole window, however fast the sample filled: a baseline of
            // one busy minute's first seconds would miss the rest of it (and
            // the 100 s windows would still be filling).
            let elapsed = Double(now.subtractingSaturated(since)) / 1e9
            if elapsed >= configuration.learningSeconds && kinds[kind]!.learningCount >= configuration.minimumLearningVectors,
               trainFromLearning(kind: kind, nowNs: now) {
                trained = true
            }
        }
        // A kind added to a model already in use makes a new version, which the pipeline stores.
        if grown && trained { model!.version += 1 }
    }

    /// Grows `kind`'s forest from its learning sample; false when it could
    /// not (the kind goes on learning).
    @discardableResult
    private mutating func trainFromLearning(kind: AnomalyKind, nowNs now: UInt64) -> Bool {
        let rows = kinds[kind]!.learning
        do {
            var parameters = configuration.forest
            parameters.seed &+= UInt64(AnomalyKind.allCases.firstIndex(of: kind)!)
            let km = try KindModel.train(kind: kind, rows: rows, parameters: parameters, heldOutShare: configuration.heldOutShare,
                                         contamination: configuration.contamination, nowMs: Int64(now / 1_000_000))
            var m = model ?? DetectionModel(createdAtMs: Int64(now / 1_000_000), models: [])
            m[kind] = km
            model = m
            kinds[kind]!.learning = []
            kinds[kind]!.learningCount = 0
            kinds[kind]!.learningSinceNs = nil
            // The retraining schedule starts with the first model; a kind
            // that learns later does not put the others' retraining off.
            if lastRetrainNs == nil { lastRetrainNs = now }
            logger.info("learned a model", metadata: [
                "kind": "\(kind.rawValue)", "vectors": "\(km.trainingVectors + km.heldOutVectors)",
                "low_threshold": "\(km.thresholds.low)",
            ])
            return true
        } catch {
            logger.warning("could not learn a model", metadata: ["kind": "\(kind.rawValue)", "error": "\(error)"])
            return false
        }
    }

    /// Retrains now, on demand (`POST /api/model/retrain`): kinds still
    /// learning with enough vectors finish learning at once; trained kinds
    /// regrow `retrainShare` of their trees from the reservoir of vectors
    /// that scored normal and re-derive thresholds from a held-out part of
    /// it. The swap is a value assignment, so scoring never sees half a forest.
    public mutating func retrain(nowNs now: UInt64) {
        retrain(nowNs: now, endingLearning: true)
    }

    /// The retraining; on the schedule (`endingLearning` false) a kind still
    /// learning keeps its whole window.
    private mutating func retrain(nowNs now: UInt64, endingLearning: Bool) {
        lastRetrainNs = now
        var changed = false
        for kind in AnomalyKind.allCases {
            guard let km = model?[kind] else {
                if endingLearning && kinds[kind]!.learningCount >= configuration.minimumLearningVectors,
                   trainFromLearning(kind: kind, nowNs: now) {
                    changed = true
                }
                continue
            }
            let state = kinds[kind]!
            let d = km.forest.featureCount
            let n = state.reservoir.count / d
            guard n >= configuration.minimumLearningVectors else { continue }
            let replace = max(1, Int((Double(km.forest.treeCount) * configuration.retrainShare).rounded()))
            var parameters = km.forest.parameters
            parameters.trees = replace
            // The new trees sample as many vectors as the forest's own did: a
            // forest learned from few vectors, retrained from many, would
            // otherwise get deeper trees than its depth bound and score them
            // against another sample size.
            parameters.sampleSize = km.forest.effectiveSampleSize
            parameters.seed = km.forest.parameters.seed &+ UInt64(retrainings + 1) &* 0x9E37
            do {
                // The expected vectors train the new trees; thresholds still come from normal ones only.
                let fresh = try KindModel.train(kind: kind, rows: state.reservoir + expectedRows(state.expected, dimensions: d, normal: n),
                                                parameters: parameters,
                                                heldOutShare: configuration.heldOutShare, nowMs: Int64(now / 1_000_000))
                let indices = (0..<replace).map { (state.nextTree + $0) % km.forest.treeCount }
                var updated = km
                updated.forest = km.forest.replacingTrees(indices, with: fresh.forest)
                // Thresholds from the part of the reservoir the new trees did not see.
                var held: [Double] = []
                var order = Array(0..<n)
                order.shuffle(using: &rng)
                for i in order.prefix(max(1, n / 5)) { held.append(contentsOf: state.reservoir[(i * d)..<((i + 1) * d)]) }
                let scores = updated.forest.scores(rows: held)
                updated.thresholds = SeverityThresholds.from(heldOutScores: scores, contamination: configuration.contamination)
                updated.baselineMaxScore = scores.max() ?? km.baselineMaxScore
                updated.trainedAtMs = Int64(now / 1_000_000)
                model![kind] = updated
                kinds[kind]!.nextTree = (state.nextTree + replace) % km.forest.treeCount
                // Learned: the next retraining starts its expected sample afresh.
                kinds[kind]!.expected = []
                kinds[kind]!.expectedNext = 0
                changed = true
            } catch {
                logger.warning("retraining failed", metadata: ["kind": "\(kind.rawValue)", "error": "\(error)"])
            }
        }
        if changed, model != nil {
            retrainings += 1
            model!.version += 1
            logger.info("model retrained", metadata: ["version": "\(model!.version)"])
        }
    }

    /// What the host tracker holds and had to drop, without building the whole ``status``.
    public var trackerStatistics: HostTrackerStatistics {
        var s = tracker.statistics
        s.addressMemoryEvicted = history.evicted + reported.evicted
        return s
    }

    /// Learning or scoring, vectors seen, model version, thresholds per kind.
    public var status: DetectorStatus {
        let perKind = AnomalyKind.allCases.map { kind -> DetectorStatus.Kind in
            let s = kinds[kind]!
            let km = model?[kind]
            let d = FeatureSchema.features(of: kind).count
            return DetectorStatus.Kind(
                kind: kind, phase: km == nil ? .learning : .scoring, vectorsSeen: s.vectorsSeen, vectorsScored: s.vectorsScored,
                learningVectors: s.learningCount, reservoirVectors: s.reservoir.count / d, expectedVectors: s.expected.count / d,
                anomalies: Dictionary(uniqueKeysWithValues: s.anomalies.map { ($0.key.rawValue, $0.value) }),
                thresholds: km?.thresholds, trainedAtMs: km?.trainedAtMs)
        }
        let learning = perKind.contains { $0.phase == .learning }
        // The last of the learning kinds' windows to end (a kind with no
        // vector yet has none: its window starts with its first).
        let windowMs = Int64(configuration.learningSeconds * 1000)
        let windowEndMs = AnomalyKind.allCases.filter { model?[$0] == nil }
            .compactMap { kinds[$0]!.learningSinceNs.map { Int64($0 / 1_000_000) + windowMs } }.max()
        return DetectorStatus(
            phase: learning ? .learning : .scoring,
            modelVersion: model?.version, kinds: perKind, suppressedRepeats: suppressedRepeats,
            unconfirmed: unconfirmed, unexplained: unexplained, retrainings: retrainings, tracker: tracker.statistics,
            learningUntilMs: learning ? windowEndMs : nil)
    }
}
