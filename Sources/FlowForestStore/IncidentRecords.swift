public import FlowForestCore
import Foundation
import SQLKit

/// Filters of an incident listing; nil means "any".
public struct IncidentQuery: Sendable, Hashable {
    /// Matches an actor or a target.
    public var address: IPAddress?
    /// Incidents seen at or after `sinceMs` (last seen) and before `untilMs` (first seen), ms since the epoch.
    public var sinceMs: Int64?
    public var untilMs: Int64?
    /// Peak severities.
    public var severities: [Severity] = []
    public var labels: [AnomalyLabel] = []
    public var state: IncidentState?
    public var sensor: String?
    /// Incidents with an anomaly observed at this interface or exporter (an
    /// exporter's address alone matches any of its ingress interfaces).
    public var interface: String?
    /// Page size (1...1000).
    public var limit: Int = 100
    /// Return incidents with ids below this one (the previous page's `nextCursor`).
    public var beforeID: Int64?

    public init(address: IPAddress? = nil, sinceMs: Int64? = nil, untilMs: Int64? = nil, severities: [Severity] = [],
                labels: [AnomalyLabel] = [], state: IncidentState? = nil, sensor: String? = nil, interface: String? = nil,
                limit: Int = 100, beforeID: Int64? = nil) {
        self.address = address
        self.sinceMs = sinceMs
        self.untilMs = untilMs
        self.severities = severities
        self.labels = labels
        self.state = state
        self.sensor = sensor
        self.interface = interface
        self.limit = limit
        self.beforeID = beforeID
    }
}

/// One page of incidents, newest first.
public struct IncidentPage: Sendable {
    public var incidents: [Incident]
    /// Pass as ``IncidentQuery/beforeID`` for the next page; nil on the last page.
    public var nextCursor: Int64?
}

extension Store {
    /// Writes each incident's latest state (one row per uid, updated in
    /// place) and returns the stored incidents by uid, ids and anomaly ids set.
    @discardableResult
    public func upsertIncidents(_ incidents: [Incident]) async throws -> [String: Incident] {
        // Only the latest snapshot of each incident matters for its row.
        var latest: [String: Incident] = [:]
        var order: [String] = []
        for incident in incidents {
            if latest[incident.uid] == nil { order.append(incident.uid) }
            latest[incident.uid] = incident
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        var rows: [[any SQLExpression]] = []
        for uid in order {
            let i = latest[uid]!
            let values: [any Encodable & Sendable] = [
                i.uid, i.sensor, i.label.rawValue, i.family.rawValue,
                String(decoding: try encoder.encode(i.actors.map(\.description)), as: UTF8.self),
                String(decoding: try encoder.encode(i.targets.map(\.description)), as: UTF8.self),
                i.firstSeenMs, i.lastSeenMs, i.peakSeverity.rawValue, Severity.allCases.firstIndex(of: i.peakSeverity)!,
                i.peakScore, Int64(i.anomalyCount), i.state.rawValue,
                String(decoding: try encoder.encode(i.explanation), as: UTF8.self),
                Int64(clamping: i.lostPackets), Int64(clamping: i.lostFlowRecords),
            ]
            rows.append(values.map { SQLBind($0) })
        }
        let allRows = rows
        try await withSQL { db in
            for chunk in stride(from: 0, to: allRows.count, by: 200) {
                var insert = db.insert(into: "incidents").columns(Store.incidentColumns)
                for row in allRows[chunk..<min(chunk + 200, allRows.count)] { insert = insert.values(row) }
                try await insert.onConflict(with: ["uid"]) { update in
                    var u = update
                    // The uid and sensor never change; everything else is the latest state.
                    for column in Store.incidentColumns.dropFirst(2) { u = u.set(excludedValueOf: column) }
                    return u
                }.run()
            }
        }
        let stored = try await self.incidents(uids: order)
        return Dictionary(uniqueKeysWithValues: stored.map { ($0.uid, $0) })
    }

    /// Incidents by uid, with their anomaly ids.
    public func incidents(uids: [String]) async throws -> [Incident] {
        guard !uids.isEmpty else { return [] }
        let rows = try await withSQL { db in
            var all: [any SQLRow] = []
            for chunk in stride(from: 0, to: uids.count, by: 500) {
                let part = Array(uids[chunk..<min(chunk + 500, uids.count)])
                all += try await db.select().column("*").from("incidents").where("uid", .in, part).all()
            }
            return all
        }
        return try await withAnomalyIDs(rows.map(Store.decodeIncident), access: .write)
    }

    /// Incidents matching `query`, newest first, one page.
    public func incidents(_ query: IncidentQuery) async throws -> IncidentPage {
        let limit = max(1, min(query.limit, 1000))
        let rows = try await withSQL(.read) { db in
            let select = db.select().column("*").from("incidents")
            if let a = query.address?.description {
                // Addresses hold no LIKE wildcards; the quotes make the match exact.
                let pattern = "%\"\(a)\"%"
                select.where { $0.where("actors", .like, pattern).orWhere("targets", .like, pattern) }
            }
            if let s = query.sinceMs { select.where("last_seen_ms", .greaterThanOrEqual, s) }
            if let u = query.untilMs { select.where("first_seen_ms", .lessThan, u) }
            if !query.severities.isEmpty { select.where("peak_severity", .in, query.severities.map(\.rawValue)) }
            if !query.labels.isEmpty { select.where("label", .in, query.labels.map(\.rawValue)) }
            if let state = query.state { select.where("state", .equal, state.rawValue) }
            if let sensor = query.sensor { select.where("sensor", .equal, sensor) }
            if let name = query.interface {
                let members = db.select().column("incident_uid").from("anomalies")
                    .where(Store.observedAt(name)).where("incident_uid", .isNot, SQLLiteral.null)
                select.where(SQLIdentifier("uid"), .in, SQLGroupExpression(members.select))
            }
            if let before = query.beforeID { select.where("id", .lessThan, before) }
            return try await select.orderBy("id", .descending).limit(limit + 1).all()
        }
        let page = try await withAnomalyIDs(try rows.prefix(limit).map(Store.decodeIncident), access: .read)
        return IncidentPage(incidents: page, nextCursor: rows.count > limit ? page.last?.id : nil)
    }

    /// One incident by id.
    public func incident(id: Int64) async throws -> Incident? {
        let row = try await withSQL(.read) { db in
            try await db.select().column("*").from("incidents").where("id", .equal, id).first()
        }
        guard let row else { return nil }
        return try await withAnomalyIDs([try Store.decodeIncident(row)], access: .read).first
    }

    /// Closes the open incidents of `sensor`: a restarted pipeline starts
    /// with none open, so what the previous run left open is over.
    @discardableResult
    public func closeOpenIncidents(sensor: String) async throws -> Int {
        try await withSQL { db in
            let open = try await db.select().column("id").from("incidents")
                .where("sensor", .equal, sensor).where("state", .equal, IncidentState.open.rawValue).all()
            guard !open.isEmpty else { return 0 }
            try await db.update("incidents").set("state", to: IncidentState.closed.rawValue)
                .where("sensor", .equal, sensor).where("state", .equal, IncidentState.open.rawValue).run()
            return open.count
        }
    }

    static let incidentColumns = [
        "uid", "sensor", "label", "family", "actors", "targets", "first_seen_ms", "last_seen_ms",
        "peak_severity", "severity_rank", "peak_score", "anomaly_count", "state", "explanation", "lost_packets",
        "lost_flow_records",
    ]

    /// Fills each incident's anomaly ids (the latest ``Incident/maxAnomalyIDs``, oldest first).
    private func withAnomalyIDs(_ incidents: [Incident], access: Access) async throws -> [Incident] {
        guard !incidents.isEmpty else { return [] }
        let uids = incidents.map(\.uid)
        let found = try await withSQL(access) { db in
            var ids: [String: [Int64]] = [:]
            // One query per incident, each read from the (incident_uid, id)
            // index newest first: a window over every anomaly of the
            // incidents cost each write as much as the attack's whole history.
            for uid in Set(uids) {
                let rows = try await db.raw("""
                    SELECT id FROM anomalies WHERE incident_uid = \(bind: uid) ORDER BY id DESC LIMIT \(bind: Incident.maxAnomalyIDs)
                    """).all()
                ids[uid] = try rows.reversed().map { try $0.decode(column: "id", as: Int64.self) }
            }
            return ids
        }
        return incidents.map { i in
            var i = i
            i.anomalyIDs = Array((found[i.uid] ?? []).suffix(Incident.maxAnomalyIDs))
            return i
        }
    }

    static func decodeIncident(_ row: any SQLRow) throws -> Incident {
        let decoder = JSONDecoder()
        func json<T: Decodable>(_ column: String, _ type: T.Type) throws -> T {
            try decoder.decode(type, from: Data(try row.decode(column: column, as: String.self).utf8))
        }
        let labelText = try row.decode(column: "label", as: String.self)
        return Incident(
            id: try row.decode(column: "id", as: Int64.self),
            uid: try row.decode(column: "uid", as: String.self),
            sensor: try row.decode(column: "sensor", as: String.self),
            label: AnomalyLabel(rawValue: labelText) ?? .unusualFlow,
            actors: try json("actors", [String].self).compactMap { IPAddress($0) },
            targets: try json("targets", [String].self).compactMap { IPAddress($0) },
            firstSeenMs: try row.decode(column: "first_seen_ms", as: Int64.self),
            lastSeenMs: try row.decode(column: "last_seen_ms", as: Int64.self),
            peakSeverity: Severity(rawValue: try row.decode(column: "peak_severity", as: String.self)) ?? .low,
            peakScore: try row.decode(column: "peak_score", as: Double.self),
            anomalyCount: Int(try row.decode(column: "anomaly_count", as: Int64.self)),
            state: IncidentState(rawValue: try row.decode(column: "state", as: String.self)) ?? .closed,
            explanation: try json("explanation", [ExplanationItem].self),
            lostPackets: UInt64(max(0, try row.decode(column: "lost_packets", as: Int64.self))),
            lostFlowRecords: UInt64(max(0, try row.decode(column: "lost_flow_records", as: Int64.self))))
    }
}
