public import FlowForestCore

/// The detector's state as served by `GET /api/model`.
public struct ModelStatus: Sendable, Codable, Hashable {
    /// Learning until a model exists, then scoring; `state` on the wire
    /// says `learning` or `detecting` (``DetectorState/modelStateName``).
    public var state: DetectorState
    /// Model version, counting retrains; nil while learning.
    public var version: Int?
    /// When the model in use was trained (RFC 3339), nil while learning.
    public var trainedAt: String?
    /// Vectors seen so far, and the fewest a kind's learning window needs.
    public var vectorsSeen: Int
    public var learningTarget: Int?
    /// While learning: when the learning window ends (RFC 3339), the model
    /// trained then from what it saw, once it has seen ``learningTarget``.
    public var learningUntil: String?
    /// Further detector-specific facts (feature names, thresholds, ...).
    public var details: [String: String]

    public init(state: DetectorState, version: Int? = nil, trainedAt: String? = nil, vectorsSeen: Int = 0,
                learningTarget: Int? = nil, learningUntil: String? = nil, details: [String: String] = [:]) {
        self.state = state
        self.version = version
        self.trainedAt = trainedAt
        self.vectorsSeen = vectorsSeen
        self.learningTarget = learningTarget
        self.learningUntil = learningUntil
        self.details = details
    }

    enum CodingKeys: String, CodingKey {
        case state, version, details
        case trainedAt = "trained_at"
        case vectorsSeen = "vectors_seen"
        case learningTarget = "learning_target"
        case learningUntil = "learning_until"
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(state.modelStateName, forKey: .state)
        try c.encode(version, forKey: .version)
        try c.encode(trainedAt, forKey: .trainedAt)
        try c.encode(vectorsSeen, forKey: .vectorsSeen)
        try c.encode(learningTarget, forKey: .learningTarget)
        try c.encode(learningUntil, forKey: .learningUntil)
        try c.encode(details, forKey: .details)
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        state = try c.decode(DetectorState.self, forKey: .state)
        version = try c.decodeIfPresent(Int.self, forKey: .version)
        trainedAt = try c.decodeIfPresent(String.self, forKey: .trainedAt)
        vectorsSeen = try c.decode(Int.self, forKey: .vectorsSeen)
        learningTarget = try c.decodeIfPresent(Int.self, forKey: .learningTarget)
        learningUntil = try c.decodeIfPresent(String.self, forKey: .learningUntil)
        details = try c.decode([String: String].self, forKey: .details)
    }
}
