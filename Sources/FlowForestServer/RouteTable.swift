import HTTPTypes

/// The methods each documented path answers (the operations of
/// openapi.yaml, which a test keeps equal to this table).
///
/// The router answers a known path with an unsupported method by 404, as if
/// the path did not exist; ``RequestGuard`` uses this table to answer 405
/// with an `Allow` header instead, as RFC 9110 asks.
struct RouteTable: Sendable {
    /// `(method, path)`, with `:name` for a path parameter.
    static let operations: [(method: HTTPRequest.Method, path: String)] = [
        (.get, "/"), (.get, "/openapi.yaml"), (.get, "/metrics"),
        (.get, "/api/health"), (.get, "/api/session"), (.post, "/api/login"), (.post, "/api/logout"),
        (.get, "/api/anomalies"), (.get, "/api/anomalies/:id"), (.post, "/api/anomalies/:id/ack"),
        (.get, "/api/incidents"), (.get, "/api/incidents/:id"),
        (.get, "/api/suppressions"), (.post, "/api/suppressions"), (.get, "/api/suppressions/:id"),
        (.put, "/api/suppressions/:id"), (.delete, "/api/suppressions/:id"),
        (.get, "/api/flows"), (.get, "/api/hosts"), (.get, "/api/model"), (.get, "/api/status"),
        (.get, "/api/stats/history"),
        (.post, "/api/model/retrain"), (.post, "/api/traffic"), (.get, "/api/events"),
    ]

    private let templates: [(segments: [Substring], methods: [HTTPRequest.Method])]

    init(_ operations: [(method: HTTPRequest.Method, path: String)] = Self.operations) {
        var byPath: [String: [HTTPRequest.Method]] = [:]
        var order: [String] = []
        for (method, path) in operations {
            if byPath[path] == nil { order.append(path) }
            byPath[path, default: []].append(method)
        }
        templates = order.map { (Self.segments($0), byPath[$0]!) }
    }

    /// The methods documented for `path`, or `nil` when no documented path
    /// matches it (dashboard files, unknown paths: the router decides).
    func methods(for path: String) -> [HTTPRequest.Method]? {
        let parts = Self.segments(path)
        return templates.first { template in
            template.segments.count == parts.count
                && zip(template.segments, parts).allSatisfy { t, p in t.hasPrefix(":") ? !p.isEmpty : t == p }
        }?.methods
    }

    private static func segments(_ path: String) -> [Substring] {
        path.split(separator: "/", omittingEmptySubsequences: false).dropFirst().map { $0 }
    }
}
