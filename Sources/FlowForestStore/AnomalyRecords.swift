public import FlowForestCore
import Foundation
import SQLKit

/// An anomaly waiting to be written, with the unique id that makes a retried
/// write idempotent (a batch whose commit was lost in an outage is written
/// again without duplicates).
public struct PendingAnomaly: Sendable, Hashable {
    public var uid: String
    public var anomaly: Anomaly

    public init(uid: String = PendingAnomaly.makeUID(), anomaly: Anomaly) {
        self.uid = uid
        self.anomaly = anomaly
    }

    /// 128 random bits as hex.
    public static func makeUID() -> String {
        var g = SystemRandomNumberGenerator()
        let a = g.next() as UInt64, b = g.next() as UInt64
        return String(a, radix: 16) + "-" + String(b, radix: 16)
    }
}

/// Filters of an anomaly listing; nil means "any".
public struct AnomalyQuery: Sendable, Hashable {
    /// Matches the source or the destination address.
    public var address: IPAddress?
    /// Inclusive lower and exclusive upper time bounds, ms since the epoch.
    public var sinceMs: Int64?
    public var untilMs: Int64?
    public var severities: [Severity] = []
    public var kinds: [AnomalyKind] = []
    public var acknowledged: Bool?
    public var sensor: String?
    /// The interface or exporter the anomaly was observed at (an exporter's
    /// address alone matches it with any ingress interface index).
    public var interface: String?
    /// Page size (1...1000).
    public var limit: Int = 100
    /// Return anomalies with ids below this one (the previous page's `nextCursor`).
    public var beforeID: Int64?

    public init(address: IPAddress? = nil, sinceMs: Int64? = nil, untilMs: Int64? = nil, severities: [Severity] = [],
                kinds: [AnomalyKind] = [], acknowledged: Bool? = nil, sensor: String? = nil, interface: String? = nil,
                limit: Int = 100, beforeID: Int64? = nil) {
        self.address = address
        self.sinceMs = sinceMs
        self.untilMs = untilMs
        self.severities = severities
        self.kinds = kinds
        self.acknowledged = acknowledged
        self.sensor = sensor
        self.interface = interface
        self.limit = limit
        self.beforeID = beforeID
    }
}

/// One page of anomalies, newest first.
public struct AnomalyPage: Sendable {
    public var anomalies: [Anomaly]
    /// Pass as ``AnomalyQuery/beforeID`` for the next page; nil on the last page.
    public var nextCursor: Int64?
}

extension Store {
    static let anomalyColumns = [
        "uid", "sensor", "time_ms", "kind", "src_ip", "dst_ip", "src_port", "dst_port", "protocol",
        "score", "severity", "severity_rank", "label", "explanation", "features", "flow_ids", "acknowledged", "incident_uid", "suppressed",
        "interface",
    ]

    /// Writes anomalies in one statement; rows already present (same uid)
    /// are skipped. Returns the ids of the anomalies by uid.
    @discardableResult
    public func insertAnomalies(_ pending: [PendingAnomaly]) async throws -> [String: Int64] {
        guard !pending.isEmpty else { return [:] }
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        var rows: [[any Encodable & Sendable]] = []
        for p in pending {
            let a = p.anomaly
            let explanation = String(decoding: try encoder.encode(a.explanation), as: UTF8.self)
            let features = try FeatureJSON.encode(a.features, encoder: encoder)
            let flowIDs = String(decoding: try encoder.encode(a.flowIDs.map { Int64(truncatingIfNeeded: $0) }), as: UTF8.self)
            let values: [any Encodable & Sendable] = [
                p.uid, a.sensor, a.timeMs, a.kind.rawValue, a.sourceAddress?.description, a.destinationAddress?.description,
                a.sourcePort.map(Int.init), a.destinationPort.map(Int.init), a.ipProtocol.map(Int.init),
                a.score, a.severity.rawValue, Severity.allCases.firstIndex(of: a.severity)!, a.label.rawValue,
                explanation, features, flowIDs, a.acknowledged, a.incidentUID, a.suppressed, a.interfaceName,
            ]
            rows.append(values)
        }
        try await insert(into: "anomalies", columns: Store.anomalyColumns, conflict: ["uid"], rows: rows)
        let uids = pending.map(\.uid)
        return try await withSQL { db in
            var ids: [String: Int64] = [:]
            // Read ids back by uid, which also covers rows a lost commit already wrote.
            for chunk in stride(from: 0, to: uids.count, by: 500) {
                let part = Array(uids[chunk..<min(chunk + 500, uids.count)])
                let found = try await db.select().columns("id", "uid").from("anomalies")
                    .where("uid", .in, part).all()
                for row in found {
                    ids[try row.decode(column: "uid", as: String.self)] = try row.decode(column: "id", as: Int64.self)
                }
            }
            return ids
        }
    }

    /// Anomalies matching `query`, newest first, one page.
    public func anomalies(_ query: AnomalyQuery) async throws -> AnomalyPage {
        let limit = max(1, min(query.limit, 1000))
        let rows = try await withSQL(.read) { db in
            let select = db.select().column("*").from("anomalies")
            if let a = query.address?.description {
                select.where { $0.where("src_ip", .equal, a).orWhere("dst_ip", .equal, a) }
            }
            if let s = query.sinceMs { select.where("time_ms", .greaterThanOrEqual, s) }
            if let u = query.untilMs { select.where("time_ms", .lessThan, u) }
            if !query.severities.isEmpty { select.where("severity", .in, query.severities.map(\.rawValue)) }
            if !query.kinds.isEmpty { select.where("kind", .in, query.kinds.map(\.rawValue)) }
            if let ack = query.acknowledged { select.where("acknowledged", .equal, ack) }
            if let sensor = query.sensor { select.where("sensor", .equal, sensor) }
            if let name = query.interface { select.where(Store.observedAt(name)) }
            if let before = query.beforeID { select.where("id", .lessThan, before) }
            return try await select.orderBy("id", .descending).limit(limit + 1).all()
        }
        var anomalies = try rows.prefix(limit).map(Store.decodeAnomaly)
        let more = rows.count > limit
        if anomalies.count > limit { anomalies.removeLast(anomalies.count - limit) }
        return AnomalyPage(anomalies: anomalies, nextCursor: more ? anomalies.last?.id : nil)
    }

    /// One anomaly by id.
    public func anomaly(id: Int64, _ access: Access = .read) async throws -> Anomaly? {
        let row = try await withSQL(access) { db in
            try await db.select().column("*").from("anomalies").where("id", .equal, id).first()
        }
        return try row.map(Store.decodeAnomaly)
    }

    /// Marks an anomaly acknowledged; false when there is no such anomaly.
    public func acknowledgeAnomaly(id: Int64, by user: String, atMs: Int64 = Store.nowMs()) async throws -> Bool {
        try await withSQL { db in
            guard try await db.select().column("id").from("anomalies").where("id", .equal, id).first() != nil else { return false }
            try await db.update("anomalies")
                .set("acknowledged", to: true).set("acknowledged_by", to: user).set("acknowledged_ms", to: atMs)
                .where("id", .equal, id).run()
            return true
        }
    }

    /// Number of stored anomalies (all sensors).
    public func anomalyCount() async throws -> Int {
        try await withSQL(.read) { db in
            try await db.raw("SELECT COUNT(*) AS n FROM anomalies").first()?.decode(column: "n", as: Int.self) ?? 0
        }
    }

    static func decodeAnomaly(_ row: any SQLRow) throws -> Anomaly {
        let decoder = JSONDecoder()
        func json<T: Decodable>(_ column: String, _ type: T.Type) throws -> T {
            try decoder.decode(type, from: Data(try row.decode(column: column, as: String.self).utf8))
        }
        let kindText = try row.decode(column: "kind", as: String.self)
        let severityText = try row.decode(column: "severity", as: String.self)
        let labelText = try row.decode(column: "label", as: String.self)
        let kind = AnomalyKind(rawValue: kindText) ?? .flow
        var anomaly = Anomaly(
            id: try row.decode(column: "id", as: Int64.self),
            sensor: try row.decode(column: "sensor", as: String.self),
            timeMs: try row.decode(column: "time_ms", as: Int64.self),
            kind: kind,
            sourceAddress: try row.decode(column: "src_ip", as: String?.self).flatMap { IPAddress($0) },
            destinationAddress: try row.decode(column: "dst_ip", as: String?.self).flatMap { IPAddress($0) },
            sourcePort: try row.decode(column: "src_port", as: Int?.self).map { UInt16(truncatingIfNeeded: $0) },
            destinationPort: try row.decode(column: "dst_port", as: Int?.self).map { UInt16(truncatingIfNeeded: $0) },
            ipProtocol: try row.decode(column: "protocol", as: Int?.self).map { UInt8(truncatingIfNeeded: $0) },
            score: try row.decode(column: "score", as: Double.self),
            severity: Severity(rawValue: severityText) ?? .low,
            label: AnomalyLabel(rawValue: labelText) ?? .unusual(kind),
            explanation: try json("explanation", [ExplanationItem].self),
            features: try json("features", [String: Double].self),
            flowIDs: try json("flow_ids", [Int64].self).map { UInt64(bitPattern: $0) },
            acknowledged: try row.decode(column: "acknowledged", as: Bool.self),
            incidentUID: try row.decode(column: "incident_uid", as: String?.self))
        anomaly.suppressed = try row.decode(column: "suppressed", as: Bool.self)
        anomaly.interfaceName = try row.decode(column: "interface", as: String?.self)
        return anomaly
    }
}
