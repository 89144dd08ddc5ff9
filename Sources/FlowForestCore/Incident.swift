/// Labels that describe the same kind of attack: anomalies of one family by
/// the same actor or on the same target belong to one incident. A port scan
/// and a host sweep are both reconnaissance; the floods are one denial of
/// service seen through different protocols.
public enum LabelFamily: String, Sendable, Hashable, Codable, CaseIterable {
    case scan
    case flood
    case slowConnections = "slow connections"
    case exfiltration
    case beaconing
    /// Vectors no behaviour explains.
    case unusual
}

extension AnomalyLabel {
    /// The family incidents group this label by.
    public var family: LabelFamily {
        switch self {
        case .portScan, .hostSweep: return .scan
        case .synFlood, .tcpFlood, .connectionFlood, .udpFlood, .icmpFlood: return .flood
        case .slowConnections: return .slowConnections
        case .exfiltration: return .exfiltration
        case .beaconing: return .beaconing
        case .unusualFlow, .unusualHost, .unusualDestination: return .unusual
        }
    }
}

/// Whether an incident is still recurring.
public enum IncidentState: String, Sendable, Hashable, Codable, CaseIterable {
    /// Anomalies joined it within the quiet gap.
    case open
    /// No anomaly joined it for a whole quiet gap; it never reopens.
    case closed
}

/// What happened to an incident.
public enum IncidentChange: String, Sendable, Hashable, Codable, CaseIterable {
    case opened, updated, closed
}

/// One attack as a story: the anomalies of one label family by the same
/// actor or on the same target while they keep recurring.
///
/// JSON (via `Codable`): the incident shape of docs/api.md, shared by the
/// API, server-sent events, alert webhooks and `analyze --format json`.
public struct Incident: Sendable, Hashable, Codable {
    /// Assigned by the store; nil until stored (and in `analyze`).
    public var id: Int64?
    /// Assigned when the incident opens; stable across its updates, the
    /// store's key for them.
    public var uid: String
    public var sensor: String
    /// The label of its strongest anomaly.
    public var label: AnomalyLabel
    public var family: LabelFamily
    /// Sources of its anomalies (at most ``maxAddresses``, first seen first).
    public var actors: [IPAddress]
    /// Destinations of its anomalies (at most ``maxAddresses``).
    public var targets: [IPAddress]
    /// Detection times of its first and latest anomaly, ms since the epoch.
    public var firstSeenMs: Int64
    public var lastSeenMs: Int64
    public var peakSeverity: Severity
    public var peakScore: Double
    public var anomalyCount: Int
    public var state: IncidentState
    /// The explanation of its strongest anomaly.
    public var explanation: [ExplanationItem]
    /// Ids of its stored anomalies, oldest first (at most ``maxAnomalyIDs``,
    /// the latest); filled by the store.
    public var anomalyIDs: [Int64]
    /// Packets the sensor lost while the incident was open: flow table or
    /// kernel map full, capture and interface drops, ingested packets the
    /// table refused. Above 0, its counts and actors are lower bounds.
    public var lostPackets: UInt64
    /// Flow records exporters sent while it was open that never arrived
    /// (gaps in their sequence numbers); above 0, lower bounds too.
    public var lostFlowRecords: UInt64

    /// Addresses kept per side: a sweep of a /16 is still one readable incident.
    public static let maxAddresses = 256
    /// Anomaly ids served per incident; `anomaly_count` has the full number.
    public static let maxAnomalyIDs = 1000

    public init(id: Int64? = nil, uid: String, sensor: String, label: AnomalyLabel, actors: [IPAddress], targets: [IPAddress],
                firstSeenMs: Int64, lastSeenMs: Int64, peakSeverity: Severity, peakScore: Double, anomalyCount: Int,
                state: IncidentState, explanation: [ExplanationItem], anomalyIDs: [Int64] = [], lostPackets: UInt64 = 0,
                lostFlowRecords: UInt64 = 0) {
        self.id = id
        self.uid = uid
        self.sensor = sensor
        self.label = label
        self.family = label.family
        self.actors = actors
        self.targets = targets
        self.firstSeenMs = firstSeenMs
        self.lastSeenMs = lastSeenMs
        self.peakSeverity = peakSeverity
        self.peakScore = peakScore
        self.anomalyCount = anomalyCount
        self.state = state
        self.explanation = explanation
        self.anomalyIDs = anomalyIDs
        self.lostPackets = lostPackets
        self.lostFlowRecords = lostFlowRecords
    }

    /// What the sensor lost while it was open.
    public var loss: SensorLoss {
        get { SensorLoss(packets: lostPackets, flowRecords: lostFlowRecords) }
        set {
            lostPackets = newValue.packets
            lostFlowRecords = newValue.flowRecords
        }
    }

    enum CodingKeys: String, CodingKey {
        case id, sensor, label, family, actors, targets, state, explanation
        case firstSeen = "first_seen"
        case lastSeen = "last_seen"
        case peakSeverity = "peak_severity"
        case peakScore = "peak_score"
        case anomalyCount = "anomaly_count"
        case anomalyIDs = "anomaly_ids"
        case lostPackets = "lost_packets"
        case lostFlowRecords = "lost_flow_records"
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(sensor, forKey: .sensor)
        try c.encode(label, forKey: .label)
        try c.encode(family, forKey: .family)
        try c.encode(actors.map(\.description), forKey: .actors)
        try c.encode(targets.map(\.description), forKey: .targets)
        try c.encode(Timestamp.rfc3339(milliseconds: firstSeenMs), forKey: .firstSeen)
        try c.encode(Timestamp.rfc3339(milliseconds: lastSeenMs), forKey: .lastSeen)
        try c.encode(peakSeverity, forKey: .peakSeverity)
        try c.encode(peakScore, forKey: .peakScore)
        try c.encode(anomalyCount, forKey: .anomalyCount)
        try c.encode(state, forKey: .state)
        try c.encode(explanation, forKey: .explanation)
        try c.encode(anomalyIDs, forKey: .anomalyIDs)
        try c.encode(lostPackets, forKey: .lostPackets)
        try c.encode(lostFlowRecords, forKey: .lostFlowRecords)
    }

    /// Decodes the JSON shape (webhook receivers, tests); the uid is not
    /// part of it, so a decoded incident's uid is empty.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        func time(_ key: CodingKeys) throws -> Int64 {
            let text = try c.decode(String.self, forKey: key)
            guard let ns = Timestamp.parseRFC3339(text) else {
                throw DecodingError.dataCorruptedError(forKey: key, in: c, debugDescription: "not an RFC 3339 time: \(text)")
            }
            return Int64(ns / 1_000_000)
        }
        func addresses(_ key: CodingKeys) throws -> [IPAddress] {
            try c.decode([String].self, forKey: key).map { text in
                guard let a = IPAddress(text) else {
                    throw DecodingError.dataCorruptedError(forKey: key, in: c, debugDescription: "not an address: \(text)")
                }
                return a
            }
        }
        self.init(id: try c.decodeIfPresent(Int64.self, forKey: .id), uid: "", sensor: try c.decode(String.self, forKey: .sensor),
                  label: try c.decode(AnomalyLabel.self, forKey: .label), actors: try addresses(.actors),
                  targets: try addresses(.targets), firstSeenMs: try time(.firstSeen), lastSeenMs: try time(.lastSeen),
                  peakSeverity: try c.decode(Severity.self, forKey: .peakSeverity), peakScore: try c.decode(Double.self, forKey: .peakScore),
                  anomalyCount: try c.decode(Int.self, forKey: .anomalyCount), state: try c.decode(IncidentState.self, forKey: .state),
                  explanation: try c.decode([ExplanationItem].self, forKey: .explanation),
                  anomalyIDs: try c.decode([Int64].self, forKey: .anomalyIDs),
                  lostPackets: try c.decodeIfPresent(UInt64.self, forKey: .lostPackets) ?? 0,
                  lostFlowRecords: try c.decodeIfPresent(UInt64.self, forKey: .lostFlowRecords) ?? 0)
    }
}

/// What the sensor lost in some stretch of time: the reason an incident's
/// figures may be lower bounds.
public struct SensorLoss: Sendable, Hashable {
    /// Packets lost: flow table or kernel map full, capture and interface
    /// drops, ingested packets the table refused.
    public var packets: UInt64
    /// Flow records exporters sent that never arrived (sequence gaps).
    public var flowRecords: UInt64

    public init(packets: UInt64 = 0, flowRecords: UInt64 = 0) {
        self.packets = packets
        self.flowRecords = flowRecords
    }

    /// True when nothing was lost.
    public var isEmpty: Bool { packets == 0 && flowRecords == 0 }

    public static func += (lhs: inout SensorLoss, rhs: SensorLoss) {
        lhs.packets &+= rhs.packets
        lhs.flowRecords &+= rhs.flowRecords
    }
}

/// An incident as it was opened, updated or closed: the unit the store
/// writes and the event stream and alert routes send.
public struct IncidentUpdate: Sendable, Hashable {
    public var change: IncidentChange
    public var incident: Incident

    public init(change: IncidentChange, incident: Incident) {
        self.change = change
        self.incident = incident
    }
}
