import FlowForestServer
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

/// What keeps a browser from framing the dashboard or running anything
/// but its own files: on every answer, the refusals included.
@Suite("Security headers")
struct SecurityHeadersTests {
    static let expected: [String: String] = [
        "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
            + "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    ]

    static func check(_ response: TestResponse, _ what: String) {
        for (name, value) in expected {
            #expect(response.headers[HTTPField.Name(name)!] == value, "\(what): \(name)")
        }
    }

    @Test("the dashboard, its script, an API answer and the refusals (401, 403, 404, 405) carry them all")
    func everyAnswer() async throws {
        try await withService { client, db, _ in
            let page = try await client.call("/")
            #expect(page.status == .ok)
            Self.check(page, "dashboard page")
            let script = try await client.call("/app.js")
            #expect(script.status == .ok)
            Self.check(script, "dashboard script")
            let anomalies = try await client.call("/api/anomalies", token: db.adminToken)
            #expect(anomalies.status == .ok)
            Self.check(anomalies, "API answer")
            let unauthorized = try await client.call("/api/anomalies")
            #expect(unauthorized.status == .unauthorized)
            Self.check(unauthorized, "401")
            let forbidden = try await client.call("/api/model/retrain", .post, token: db.agentToken)
            #expect(forbidden.status == .forbidden)
            Self.check(forbidden, "403")
            let missing = try await client.call("/api/nothing-here", token: db.adminToken)
            #expect(missing.status == .notFound)
            Self.check(missing, "404")
            let method = try await client.call("/api/anomalies", .delete, token: db.adminToken)
            #expect(method.status == .methodNotAllowed)
            Self.check(method, "405")
            // Every refusal in the API's error shape, Hummingbird's own (no route, a body past a limit) included.
            let large = try await client.call("/api/login", .post, json: "{\"user\": \"" + String(repeating: "a", count: 20_000) + "\"}")
            #expect(large.status == .contentTooLarge)
            for (answer, name) in [(unauthorized, "401"), (forbidden, "403"), (missing, "404"), (method, "405"), (large, "413")] {
                let body = try? JSONSerialization.jsonObject(with: Data(answer.text.utf8)) as? [String: Any]
                #expect((body?["error"] as? String)?.isEmpty == false, "\(name): \(answer.text)")
            }
        }
    }

    @Test("the dashboard's files keep to the policy: no inline script or style, no style attribute in its markup")
    func dashboardKeepsToThePolicy() throws {
        let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Sources/FlowForestServer/Dashboard")
        let html = try String(contentsOf: dir.appendingPathComponent("index.html"), encoding: .utf8)
        // Every <script> names a file; no <style> block, no style= or on…= attribute.
        #expect(html.components(separatedBy: "<script").dropFirst().allSatisfy { $0.hasPrefix(" src=") })
        #expect(!html.contains("<style"))
        #expect(html.range(of: #"\sstyle\s*="#, options: .regularExpression) == nil)
        #expect(html.range(of: #"\son[a-z]+\s*="#, options: .regularExpression) == nil)
        for file in ["app.js", "charts.js"] {
            let js = try String(contentsOf: dir.appendingPathComponent(file), encoding: .utf8)
            #expect(!js.contains("setAttribute(\"style\"") && !js.contains("setAttribute('style'"), "\(file)")
            #expect(!js.contains("innerHTML") && !js.contains("eval("), "\(file)")
        }
    }
}
