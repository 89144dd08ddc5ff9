import FlowForestCore
import FlowForestStore
import Foundation
import Hummingbird
import HummingbirdCore

/// `GET /api/incidents` and `GET /api/incidents/{id}`: the same filters,
/// limits and cursor as the anomaly listing.
extension API {
    struct IncidentList: Encodable {
        var incidents: [Incident]
        var nextCursor: String?
        enum CodingKeys: String, CodingKey { case incidents, nextCursor = "next_cursor" }
        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(incidents, forKey: .incidents)
            try c.encode(nextCursor, forKey: .nextCursor)
        }
    }

    func listIncidents(_ request: Request, _ context: AppRequestContext) async throws -> Response {
        let query = try Self.incidentQuery(request.uri.queryParameters)
        let page = try await storeCall { try await store.incidents(query) }
        return try json(IncidentList(incidents: page.incidents, nextCursor: page.nextCursor.map(Self.encodeCursor)))
    }

    func oneIncident(_ context: AppRequestContext) async throws -> Response {
        guard let text = context.parameters.get("id"), let id = Self.positiveInteger(text) else {
            throw APIError(.badRequest, "id: expected a positive integer")
        }
        guard let incident = try await storeCall({ try await store.incident(id: id) }) else {
            throw APIError(.notFound, "no incident \(id)")
        }
        return try json(incident)
    }

    /// The listing's filters from query parameters; 400 naming the first bad one.
    static func incidentQuery(_ q: FlatDictionary<Substring, Substring>) throws -> IncidentQuery {
        var query = IncidentQuery()
        if let ip = q["ip"].map(String.init) {
            guard let a = IPAddress(ip) else { throw APIError(.badRequest, "ip: not an IPv4 or IPv6 address: \(quoted(ip))") }
            query.address = a
        }
        query.sinceMs = try q["since"].map { try parseTime(String($0), parameter: "since") }
        query.untilMs = try q["until"].map { try parseTime(String($0), parameter: "until") }
        if let s = q["severity"] {
            query.severities = try list(s, parameter: "severity", expected: "low, medium, high or critical", Severity.init(rawValue:))
        }
        if let l = q["label"] {
            let names = AnomalyLabel.allCases.map(\.rawValue).joined(separator: ", ")
            // Labels hold spaces, which forms send as "+"; no label holds a "+".
            let text = Substring(l.replacingOccurrences(of: "+", with: " "))
            query.labels = try list(text, parameter: "label", expected: names, AnomalyLabel.init(rawValue:))
        }
        if let s = q["state"] {
            guard let state = IncidentState(rawValue: String(s)) else { throw APIError(.badRequest, "state: expected open or closed, got \(quoted(String(s)))") }
            query.state = state
        }
        query.sensor = try parseName(q["sensor"], parameter: "sensor", maxLength: 255)
        query.interface = try parseInterface(q["interface"])
        query.limit = try parseLimit(q["limit"].map(String.init), default: 100)
        if let c = q["cursor"] {
            guard let id = decodeCursor(String(c)) else { throw APIError(.badRequest, "cursor: not a cursor from a previous page") }
            query.beforeID = id
        }
        return query
    }

    /// A comma list of enum values, no empty items, at most 32 of them.
    static func list<T>(_ text: Substring, parameter: String, expected: String, _ make: (String) -> T?) throws -> [T] {
        let items = text.split(separator: ",", omittingEmptySubsequences: false)
        guard items.count <= 32 else { throw APIError(.badRequest, "\(parameter): at most 32 items") }
        return try items.map {
            guard let v = make(String($0)) else { throw APIError(.badRequest, "\(parameter): expected \(expected), got \(quoted(String($0)))") }
            return v
        }
    }
}
