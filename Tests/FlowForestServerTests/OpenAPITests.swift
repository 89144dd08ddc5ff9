import FlowForestCore
@testable import FlowForestServer
import FlowForestStore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

/// The parts of openapi.yaml these tests check, read line by line (the
/// document keeps one path per `  /path:` line and one `required: [...]`
/// line per schema).
struct OpenAPIDocument {
    var operations: [(path: String, method: String)] = []
    var required: [String: Set<String>] = [:]

    init(_ text: String) {
        var section = ""
        var path = ""
        var schema = ""
        for line in text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) {
            if !line.hasPrefix(" ") { section = line; continue }
            if section == "paths:" {
                if line.hasPrefix("  /"), line.hasSuffix(":"), !line.hasPrefix("   ") { path = String(line.dropFirst(2).dropLast()) }
                for m in ["get", "post", "put", "delete", "patch"] where line == "    \(m):" { operations.append((path, m)) }
            }
            if section == "components:" {
                if line.hasPrefix("    "), !line.hasPrefix("     "), line.hasSuffix(":") { schema = line.trimmingCharacters(in: .whitespaces).replacingOccurrences(of: ":", with: "") }
                let t = line.trimmingCharacters(in: .whitespaces)
                if line.hasPrefix("      required: [") {
                    required[schema] = Set(t.dropFirst("required: [".count).dropLast().split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
                }
            }
        }
    }
}

@Suite("OpenAPI document")
struct OpenAPITests {
    @Test("every documented operation is served")
    func operationsExist() async throws {
        try await withAPI { client, db in
            let spec = OpenAPIDocument(try await client.call("/openapi.yaml").text)
            #expect(spec.operations.count == 25)
            for (path, method) in spec.operations {
                let uri = path.replacingOccurrences(of: "{id}", with: "1")
                if uri == "/api/events" { continue } // endless stream: covered by the live SSE test
                let r = try await client.call(uri, method == "post" ? .post : .get, token: db.adminToken,
                                              json: method == "post" ? "[]" : nil)
                #expect(r.status != .notFound || uri.contains("/1"), "\(method) \(path) not served")
                #expect(r.status != .methodNotAllowed, "\(method) \(path)")
            }
        }
    }

    @Test("the method table behind 405 answers lists exactly the documented operations")
    func routeTableMatchesSpec() async throws {
        try await withAPI { client, _ in
            let spec = OpenAPIDocument(try await client.call("/openapi.yaml").text)
            let documented = Set(spec.operations.map { "\($0.method.uppercased()) \($0.path.replacingOccurrences(of: "{id}", with: ":id"))" })
            let table = Set(RouteTable.operations.map { "\($0.method.rawValue) \($0.path)" })
            #expect(table == documented)
        }
    }

    @Test("responses carry exactly the documented fields")
    func schemasMatchResponses() async throws {
        try await withAPI { client, db in
            let spec = OpenAPIDocument(try await client.call("/openapi.yaml").text)
            func keys(_ object: Any?) -> Set<String> { Set((object as? [String: Any])?.keys.map { $0 } ?? []) }
            let anomalies = try await client.call("/api/anomalies?limit=1", token: db.viewerToken).object()
            #expect(keys((anomalies["anomalies"] as? [Any])?.first) == spec.required["Anomaly"])
            #expect(try await client.call("/api/model", token: db.viewerToken).object().keys.sorted() == spec.required["ModelStatus"]?.sorted())
            #expect(try await client.call("/api/health", token: db.viewerToken).object().keys.sorted() == spec.required["Health"]?.sorted())
            #expect(try await client.call("/api/status", token: db.viewerToken).object().keys.sorted() == spec.required["SensorStatus"]?.sorted())
            #expect(try await client.call("/api/session", token: db.viewerToken).object().keys.sorted() == spec.required["Session"]?.sorted())
            let bad = try await client.call("/api/anomalies?limit=0", token: db.viewerToken).object()
            #expect(Set(bad.keys) == spec.required["Error"])
        }
    }

    @Test("flows and hosts carry exactly the documented fields")
    func flowSchemas() async throws {
        try await withService(.live) { client, db, parts in
            let spec = OpenAPIDocument(try await client.call("/openapi.yaml").text)
            func keys(_ object: Any?) -> Set<String> { Set((object as? [String: Any])?.keys.map { $0 } ?? []) }
            #expect(try await client.call("/api/traffic", .post, token: db.adminToken, json: goodRecords).status == .accepted)
            try await waitFor("both ingested flows stored") { try await parts.store.flowCount() == 2 }
            let flows = try await client.call("/api/flows", token: db.viewerToken).object()
            let flow = (flows["recent"] as? [Any])?.first
            #expect(keys(flow) == spec.required["Flow"])
            #expect(keys((flow as? [String: Any])?["fwd"]) == spec.required["FlowDirection"])
            #expect(keys((flows["top_talkers"] as? [Any])?.first) == spec.required["Host"])
        }
    }
}
