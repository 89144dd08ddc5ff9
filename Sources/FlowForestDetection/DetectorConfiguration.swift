public import FlowForestCore

/// How the ``Detector`` learns, thresholds, confirms and retrains.
public struct DetectorConfiguration: Sendable, Hashable {
    /// Learning window without a model: a kind's forest is grown once this
    /// much time (batch time) has passed with at least
    /// `minimumLearningVectors` of its vectors seen...
    public var learningSeconds: Double = 600
    /// ...from a uniform sample of at most this many of them.
    public var learningVectors: Int = 5000
    public var minimumLearningVectors: Int = 256
    /// Forest shape and seed for training and retraining.
    public var forest = ForestParameters()
    /// Share of baseline vectors held out to set thresholds.
    public var heldOutShare: Double = KindModel.defaultHeldOutShare
    /// With a value, the low threshold is the (1 − contamination) quantile of
    /// held-out scores instead of p99.
    public var contamination: Double?
    /// Host and destination alerts fire only when `persistenceK` of the last
    /// `persistenceN` vectors of that address were anomalous, unless the
    /// label's own feature lies far outside the baseline envelope
    /// (``Labeler/keyFeatureOutsideEnvelope(_:kind:vector:baseline:)``).
    public var persistenceK: Int = 2
    public var persistenceN: Int = 3
    /// Flow alerts need `flowPersistenceK` of the last `flowPersistenceN`
    /// flow vectors of the same source flagged: one odd flow among a host's
    /// many is common, a stream of them is not.
    public var flowPersistenceK: Int = 3
    public var flowPersistenceN: Int = 5
    /// Anomalies below this severity are not reported.
    public var minimumSeverity: Severity = .low
    /// A repeat of the same (kind, address, label) within this many seconds is
    /// folded into the first report unless its severity is higher.
    public var repeatSuppressionSeconds: Double = 60
    /// This many anomalies of one kind and label that share one address (a
    /// sweep's targets, each with the sweeper as its one peer; a flood's
    /// forged sources, each with the victim) in one poll become one grouped
    /// anomaly that counts and lists them (``AnomalyGrouper``).
    public var groupMinimum: Int = 4
    /// Scheduled retraining: every interval, `retrainShare` of the trees are
    /// regrown from the reservoir of vectors that scored normal. 0 disables it.
    public var retrainIntervalSeconds: Double = 3600
    public var retrainShare: Double = 0.1
    public var reservoirSize: Int = 4096
    /// Vectors per kind kept of anomalies an admin marked expected (a
    /// suppression rule matches them): retraining learns them beside the
    /// reservoir of normal ones. When full, the oldest give way. 0 disables it.
    public var expectedSampleSize: Int = 1024
    /// The share of a retraining's sample the expected vectors make up at
    /// least, repeated if there are few: an isolation forest learns dense
    /// regions, so one expected vector among thousands would stay as easy
    /// to isolate as before. A few distinct vectors far from normal traffic
    /// (a scan) form a tight cluster that the trees cut off near the root;
    /// only a leaf holding many copies makes its path long. At 10 % a
    /// recurring scan scored higher after retraining than on a sensor
    /// without the rule (0.66 against 0.61); at 30 % lower (0.55 against 0.62).
    public var expectedShare: Double = 0.3
    /// Hosts, destinations and beacon histories the tracker holds at most
    /// (`--max-hosts`); past them the entities of a single flow go first.
    public var trackerLimits: TrackerLimits = .standard

    public init() {}
}

/// What the detector is doing, for logs, `/api/model` and `/api/health`.
public struct DetectorStatus: Sendable, Hashable, Codable {
    public struct Kind: Sendable, Hashable, Codable {
        public var kind: AnomalyKind
        /// Learning until the kind's forest exists, then scoring.
        public var phase: DetectorState
        public var vectorsSeen: UInt64
        public var vectorsScored: UInt64
        public var learningVectors: Int
        public var reservoirVectors: Int
        /// Vectors of anomalies marked expected, waiting for the next retraining.
        public var expectedVectors: Int
        public var anomalies: [String: UInt64]
        public var thresholds: SeverityThresholds?
        public var trainedAtMs: Int64?

        enum CodingKeys: String, CodingKey {
            case kind, phase, anomalies, thresholds
            case vectorsSeen = "vectors_seen"
            case vectorsScored = "vectors_scored"
            case learningVectors = "learning_vectors"
            case reservoirVectors = "reservoir_vectors"
            case expectedVectors = "expected_vectors"
            case trainedAtMs = "trained_at_ms"
        }
    }

    /// Learning while any kind is still learning, else scoring.
    public var phase: DetectorState
    public var modelVersion: Int?
    public var kinds: [Kind]
    /// Anomalies folded into an earlier report of the same thing.
    public var suppressedRepeats: UInt64
    /// Host and destination vectors flagged but not (yet) confirmed by persistence.
    public var unconfirmed: UInt64
    /// Flagged vectors with no specific label and no feature outside the
    /// baseline envelope: not reported.
    public var unexplained: UInt64
    public var retrainings: UInt64
    public var tracker: HostTrackerStatistics
    /// While a kind learns: when its learning window ends (batch time, ms
    /// since the epoch), if by then it has seen enough vectors.
    public var learningUntilMs: Int64?

    enum CodingKeys: String, CodingKey {
        case phase, kinds, retrainings, tracker
        case learningUntilMs = "learning_until_ms"
        case modelVersion = "model_version"
        case suppressedRepeats = "suppressed_repeats"
        case unconfirmed, unexplained
    }
}
