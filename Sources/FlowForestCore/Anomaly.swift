/// How bad an anomaly is, from the score's place among baseline scores.
public enum Severity: String, Sendable, Hashable, Codable, CaseIterable, Comparable {
    case low, medium, high, critical

    private var rank: Int { Severity.allCases.firstIndex(of: self)! }
    public static func < (a: Severity, b: Severity) -> Bool { a.rank < b.rank }
}

/// Which feature vector an anomaly was found in.
public enum AnomalyKind: String, Sendable, Hashable, Codable, CaseIterable {
    /// One flow's vector.
    case flow
    /// A source host's windowed vector.
    case host
    /// A destination host's windowed vector (floods aimed at one host).
    case destination
}

/// One feature's part in an anomaly, in plain words.
///
/// A line is only ever true: the value lies strictly beyond the baseline
/// reference in the stated direction (above its p99, below its p1, above an
/// alert threshold or a rule's floor).
public struct ExplanationItem: Sendable, Hashable, Codable {
    /// Feature name, e.g. `distinct_dst_ports_10s`; `isolation_score` when no
    /// single feature lies outside its baseline and the forest's score is
    /// what stands out; `group_members` for a grouped anomaly.
    public var feature: String
    public var value: Double
    /// The reference the value is compared with (p99 or p1 of training data,
    /// the alert threshold, a rule's floor, or the least members of a group).
    public var baseline: Double
    /// `above` or `below` the baseline.
    public var direction: String
    /// A sentence for people: "distinct destination ports 412 (baseline p99: 9)".
    public var text: String
    /// The feature's share (0...1) of the path credit that isolated the vector:
    /// lines are ranked by it. Nil for lines that are not a feature's.
    public var share: Double?
    /// For a grouped anomaly, the first members (addresses) of the group.
    public var members: [String]?

    public init(feature: String, value: Double, baseline: Double, direction: String, text: String,
                share: Double? = nil, members: [String]? = nil) {
        self.feature = feature
        self.value = value
        self.baseline = baseline
        self.direction = direction
        self.text = text
        self.share = share
        self.members = members
    }

    /// True when the value lies strictly beyond the baseline in the stated direction.
    public var isTrue: Bool {
        switch direction {
        case "above": return value > baseline
        case "below": return value < baseline
        default: return false
        }
    }
}

/// An anomalous vector as detected, stored and served.
///
/// JSON (via `Codable`): the anomaly shape of docs/api.md, shared by the
/// API, server-sent events and `analyze --json`: snake_case keys, RFC 3339
/// `time`, nulls for fields that do not apply.
public struct Anomaly: Sendable, Hashable, Codable {
    /// Assigned by the store; nil until stored.
    public var id: Int64?
    public var sensor: String
    /// Detection time, ms since the epoch.
    public var timeMs: Int64
    public var kind: AnomalyKind
    public var sourceAddress: IPAddress?
    public var destinationAddress: IPAddress?
    public var sourcePort: UInt16?
    public var destinationPort: UInt16?
    public var ipProtocol: UInt8?
    /// Isolation-forest score in 0...1, higher is more anomalous.
    public var score: Double
    public var severity: Severity
    /// What it looks like; its raw value is the text on the wire.
    public var label: AnomalyLabel
    public var explanation: [ExplanationItem]
    /// The vector that was scored, by feature name.
    public var features: [String: Double]
    /// Ids of the flows behind it (the flow itself, or a host's recent flows).
    public var flowIDs: [UInt64]
    public var acknowledged: Bool
    /// The uid of the incident it belongs to (set by the pipeline's incident
    /// tracker); links it to its incident in the store, not part of its JSON.
    public var incidentUID: String?
    /// Where its flows were observed: the capture interface, or for
    /// collected flows the exporter ("ADDRESS" or "ADDRESS%IFINDEX", as a
    /// flow's `interface`). A host or destination anomaly names the point of
    /// its latest flow; nil when the source names none (a capture file).
    public var interfaceName: String?
    /// Matched by a suppression rule: stored, but in no incident and no alert.
    public var suppressed: Bool = false

    public init(
        id: Int64? = nil, sensor: String, timeMs: Int64, kind: AnomalyKind,
        sourceAddress: IPAddress?, destinationAddress: IPAddress?,
        sourcePort: UInt16? = nil, destinationPort: UInt16? = nil, ipProtocol: UInt8? = nil,
        score: Double, severity: Severity, label: AnomalyLabel,
        explanation: [ExplanationItem] = [], features: [String: Double] = [:],
        flowIDs: [UInt64] = [], acknowledged: Bool = false, incidentUID: String? = nil, interfaceName: String? = nil
    ) {
        self.id = id
        self.sensor = sensor
        self.timeMs = timeMs
        self.kind = kind
        self.sourceAddress = sourceAddress
        self.destinationAddress = destinationAddress
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
        self.ipProtocol = ipProtocol
        self.score = score
        self.severity = severity
        self.label = label
        self.explanation = explanation
        self.features = features
        self.flowIDs = flowIDs
        self.acknowledged = acknowledged
        self.incidentUID = incidentUID
        self.interfaceName = interfaceName
    }

    enum CodingKeys: String, CodingKey {
        case id, sensor, time, kind, score, severity, label, explanation, features, acknowledged, suppressed, interface, `protocol`
        case srcIP = "src_ip"
        case dstIP = "dst_ip"
        case srcPort = "src_port"
        case dstPort = "dst_port"
        case flowIDs = "flow_ids"
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(sensor, forKey: .sensor)
        try c.encode(Timestamp.rfc3339(milliseconds: timeMs), forKey: .time)
        try c.encode(kind, forKey: .kind)
        try c.encode(sourceAddress?.description, forKey: .srcIP)
        try c.encode(destinationAddress?.description, forKey: .dstIP)
        try c.encode(sourcePort, forKey: .srcPort)
        try c.encode(destinationPort, forKey: .dstPort)
        try c.encode(ipProtocol.map(IPProtocol.name), forKey: .protocol)
        try c.encode(score, forKey: .score)
        try c.encode(severity, forKey: .severity)
        try c.encode(label, forKey: .label)
        try c.encode(explanation, forKey: .explanation)
        try c.encode(features, forKey: .features)
        try c.encode(flowIDs, forKey: .flowIDs)
        try c.encode(acknowledged, forKey: .acknowledged)
        try c.encode(suppressed, forKey: .suppressed)
        try c.encode(interfaceName, forKey: .interface)
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decodeIfPresent(Int64.self, forKey: .id)
        sensor = try c.decode(String.self, forKey: .sensor)
        let time = try c.decode(String.self, forKey: .time)
        guard let ns = Timestamp.parseRFC3339(time) else {
            throw DecodingError.dataCorruptedError(forKey: .time, in: c, debugDescription: "not an RFC 3339 time: \(time)")
        }
        timeMs = Int64(ns / 1_000_000)
        kind = try c.decode(AnomalyKind.self, forKey: .kind)
        sourceAddress = try c.decodeIfPresent(String.self, forKey: .srcIP).flatMap { IPAddress($0) }
        destinationAddress = try c.decodeIfPresent(String.self, forKey: .dstIP).flatMap { IPAddress($0) }
        sourcePort = try c.decodeIfPresent(UInt16.self, forKey: .srcPort)
        destinationPort = try c.decodeIfPresent(UInt16.self, forKey: .dstPort)
        ipProtocol = try c.decodeIfPresent(String.self, forKey: .protocol).flatMap { IPProtocol.number($0) }
        score = try c.decode(Double.self, forKey: .score)
        severity = try c.decode(Severity.self, forKey: .severity)
        label = try c.decode(AnomalyLabel.self, forKey: .label)
        explanation = try c.decodeIfPresent([ExplanationItem].self, forKey: .explanation) ?? []
        features = try c.decodeIfPresent([String: Double].self, forKey: .features) ?? [:]
        flowIDs = try c.decodeIfPresent([UInt64].self, forKey: .flowIDs) ?? []
        acknowledged = try c.decodeIfPresent(Bool.self, forKey: .acknowledged) ?? false
        suppressed = try c.decodeIfPresent(Bool.self, forKey: .suppressed) ?? false
        interfaceName = try c.decodeIfPresent(String.self, forKey: .interface)
    }
}
