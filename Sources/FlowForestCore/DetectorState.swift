/// Whether a detector (or one of its vector kinds) is still learning its
/// baseline or scores traffic against a model.
///
/// Two words exist on the wire for the second state, each where clients
/// already read it: ``phaseName`` ("scoring", per-kind phases in the
/// detector status and `/api/model` details) and ``modelStateName``
/// ("detecting", the `state` of `/api/model`).
public enum DetectorState: Sendable, Hashable, CaseIterable {
    case learning
    case scoring

    /// `learning` or `scoring`.
    public var phaseName: String {
        switch self {
        case .learning: return "learning"
        case .scoring: return "scoring"
        }
    }

    /// `learning` or `detecting`.
    public var modelStateName: String {
        switch self {
        case .learning: return "learning"
        case .scoring: return "detecting"
        }
    }

    /// The state named by either word.
    public init?(name: String) {
        switch name {
        case "learning": self = .learning
        case "scoring", "detecting": self = .scoring
        default: return nil
        }
    }
}

/// Encoded as ``DetectorState/phaseName``, the detector's own word; a
/// type that speaks for `/api/model` encodes ``DetectorState/modelStateName`` itself.
extension DetectorState: Codable {
    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        let name = try c.decode(String.self)
        guard let state = DetectorState(name: name) else {
            throw DecodingError.dataCorruptedError(in: c, debugDescription: "not a detector state: \(name)")
        }
        self = state
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(phaseName)
    }
}
