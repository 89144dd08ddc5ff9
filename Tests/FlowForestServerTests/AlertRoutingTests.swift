import Crypto
import FlowForestCore
import FlowForestPipeline
@testable import FlowForestServer
import FlowForestStore
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

/// The value of the first series of `metrics` whose line starts with `prefix`.
private func metric(_ metrics: String, _ prefix: String) -> Double {
    metrics.split(separator: "\n").first { $0.hasPrefix(prefix) }.flatMap { Double($0.split(separator: " ").last ?? "") } ?? 0
}

/// Alertmanager's webhook notifications as the receiver got them.
private func notifications(_ receiver: HookReceiver) -> [[String: Any]] {
    receiver.received.compactMap { try? JSONSerialization.jsonObject(with: $0.body) as? [String: Any] }
}

private func scanTraffic() -> String {
    let now = Date().timeIntervalSince1970
    return trafficJSON([22, 23, 80].map { ("198.18.0.7", "198.18.0.8", 40000, $0, "tcp", 60, now, ["SYN"]) })
}

@Suite("Alert routing", .serialized)
struct AlertRoutingTests {
    @Test("an incident reaches a real Alertmanager once with its labels, and its close resolves it across an Alertmanager outage")
    func alertmanager() async throws {
        let receiver = HookReceiver()
        try await receiver.start()
        let am = try AlertmanagerProcess(receiver: receiver.url)
        do {
            try await am.start()
            try await withService(.live, detector: ScansEveryEndedFlow(), configure: { c in
                c.incidents = IncidentConfiguration(quietGap: .seconds(8))
                c.alerts.alertmanagers = [URL(string: am.url)!]
                c.alerts.repostInterval = .seconds(1)
                c.alerts.retryDelay = .milliseconds(200)
                c.alerts.maxRetryDelay = .seconds(1)
                c.alerts.externalURL = "https://flowforest.example"
            }) { client, db, parts in
                #expect(try await client.call("/api/traffic", .post, token: db.agentToken, json: scanTraffic()).status == .accepted)
                try await waitFor("Alertmanager's firing notification at the receiver", seconds: 30) {
                    notifications(receiver).contains { $0["status"] as? String == "firing" }
                }
                let firing = try #require(notifications(receiver).first { $0["status"] as? String == "firing" })
                let alert = try #require((firing["alerts"] as? [[String: Any]])?.first)
                let labels = try #require(alert["labels"] as? [String: String])
                #expect(labels["alertname"] == "FlowForestIncident")
                #expect(labels["label"] == "port scan" && labels["severity"] == "critical" && labels["sensor"] == "test-sensor")
                #expect(labels["actor"] == "198.18.0.7" && labels["target"] == "198.18.0.8")
                let incidentID = try #require(labels["incident_id"])
                let annotations = try #require(alert["annotations"] as? [String: String])
                #expect(annotations["summary"] == "port scan by 198.18.0.7 on 198.18.0.8: 3 anomalies, peak critical (open)")
                #expect(annotations["explanation"] == "port 23")
                #expect(annotations["dashboard"] == "https://flowforest.example/#incident-\(incidentID)")

                // While open, the alert is posted again every second (keeping it firing, not notifying again).
                try await waitFor("a re-post of the open incident", seconds: 30) {
                    metric(parts.metrics.render(), "flowforest_alerts_sent_total{") >= 2
                }
                // Alertmanager resolves only what its notification log says it
                // notified as firing; the receiver keeps the body before its
                // answer reaches Alertmanager, so wait for Alertmanager's own record.
                try await waitFor("Alertmanager to log its firing notification as delivered", seconds: 30) {
                    am.log.contains("msg=\"Notify success\"")
                }
                // Alertmanager goes down while the incident is open; the incident closes during the outage.
                await am.stop()
                try await waitFor("the incident to close", seconds: 30) {
                    try await parts.store.incidents(IncidentQuery(state: .closed)).incidents.count == 1
                }
                try await waitFor("failed posts to the stopped Alertmanager", seconds: 30) {
                    metric(parts.metrics.render(), "flowforest_alerts_failed_total{") > 0
                }
                try await am.start()
                do {
                    try await waitFor("the resolved notification after Alertmanager is back", seconds: 60) {
                        notifications(receiver).contains { $0["status"] as? String == "resolved" }
                    }
                } catch {
                    let alertMetrics = parts.metrics.render().split(separator: "\n").filter { $0.hasPrefix("flowforest_alerts") }
                    Issue.record("Alertmanager's log:\n\(am.logTail)\nFlowForest's alert metrics:\n\(alertMetrics.joined(separator: "\n"))")
                    throw error
                }
                let all = notifications(receiver)
                // Re-posts every second kept it firing without a second notification.
                #expect(all.filter { $0["status"] as? String == "firing" }.count == 1, "\(all)")
                let resolved = try #require(all.first { $0["status"] as? String == "resolved" })
                let resolvedLabels = ((resolved["alerts"] as? [[String: Any]])?.first?["labels"] as? [String: String])
                #expect(resolvedLabels?["incident_id"] == incidentID)
                // Opening, at least one re-post, and the close.
                try await waitFor("the close's delivery counted") { metric(parts.metrics.render(), "flowforest_alerts_sent_total{") >= 3 }
                #expect(metric(parts.metrics.render(), "flowforest_alerts_dropped_total{") == 0)
            }
        } catch {
            await am.remove()
            await receiver.stop()
            throw error
        }
        await am.remove()
        await receiver.stop()
    }

    @Test("webhook posts carry every change in order, signed with the shared key, through a receiver outage")
    func webhook() async throws {
        // The receiver refuses the first three posts: FlowForest backs off and retries, losing nothing.
        let receiver = HookReceiver(failFirst: 3)
        try await receiver.start()
        let secret = Array("s3cret-key".utf8)
        do {
            try await withService(.live, detector: ScansEveryEndedFlow(), configure: { c in
                c.incidents = IncidentConfiguration(quietGap: .seconds(2))
                c.alerts.webhooks = [URL(string: receiver.url)!]
                c.alerts.webhookSecret = secret
                c.alerts.retryDelay = .milliseconds(100)
                c.alerts.maxRetryDelay = .milliseconds(400)
            }) { client, db, parts in
                #expect(try await client.call("/api/traffic", .post, token: db.agentToken, json: scanTraffic()).status == .accepted)
                try await waitFor("the incident's open and close at the webhook", seconds: 30) { receiver.received.count >= 2 }
                let key = SymmetricKey(data: secret)
                var changes: [String] = []
                for post in receiver.received {
                    let header = try #require(post.headers["x-flowforest-signature"], "unsigned post")
                    let mac = HMAC<SHA256>.authenticationCode(for: post.body, using: key).map { String(format: "%02x", $0) }.joined()
                    #expect(header == "sha256=" + mac)
                    let body = try #require(try JSONSerialization.jsonObject(with: post.body) as? [String: Any])
                    changes.append(body["change"] as? String ?? "?")
                    let incident = try JSONDecoder().decode(Incident.self, from: JSONSerialization.data(withJSONObject: body["incident"] ?? [:]))
                    #expect(incident.actors == [IPAddress("198.18.0.7")!] && incident.anomalyCount == 3 && incident.id != nil)
                }
                #expect(changes == ["opened", "closed"])
                // The route counts a post once the receiver's answer is back, just after the receiver kept it.
                try await waitFor("both deliveries counted") { metric(parts.metrics.render(), "flowforest_alerts_sent_total{") == 2 }
                #expect(metric(parts.metrics.render(), "flowforest_alerts_failed_total{") == 3)
            }
        } catch {
            await receiver.stop()
            throw error
        }
        await receiver.stop()
    }

    @Test("an incident still open when the sensor stops reaches the webhook closed, as the store records it")
    func closedAtShutdown() async throws {
        let receiver = HookReceiver()
        try await receiver.start()
        do {
            try await withService(.live, detector: ScansEveryEndedFlow(), configure: { c in
                // Nothing closes it before the end but the shutdown.
                c.incidents = IncidentConfiguration(quietGap: .seconds(3600))
                c.alerts.webhooks = [URL(string: receiver.url)!]
                c.alerts.webhookSecret = Array("s3cret-key".utf8)
            }) { client, db, parts in
                #expect(try await client.call("/api/traffic", .post, token: db.agentToken, json: scanTraffic()).status == .accepted)
                try await waitFor("the incident's open at the webhook", seconds: 30) { receiver.received.count >= 1 }
            }
            let changes = try receiver.received.map { post in
                try #require(try JSONSerialization.jsonObject(with: post.body) as? [String: Any])["change"] as? String
            }
            #expect(changes == ["opened", "closed"])
        } catch {
            await receiver.stop()
            throw error
        }
        await receiver.stop()
    }

    @Test("a change the webhook refuses outright (400) is dropped and counted, and the changes after it still arrive")
    func webhookRefusal() async throws {
        let receiver = HookReceiver(failFirst: 1, failStatus: .badRequest)
        try await receiver.start()
        do {
            try await withService(.live, detector: ScansEveryEndedFlow(), configure: { c in
                c.incidents = IncidentConfiguration(quietGap: .seconds(2))
                c.alerts.webhooks = [URL(string: receiver.url)!]
                c.alerts.webhookSecret = Array("s3cret-key".utf8)
                // A 400 retried would be retried for a minute here: the close could not come in time.
                c.alerts.retryDelay = .seconds(60)
                c.alerts.maxRetryDelay = .seconds(60)
            }) { client, db, parts in
                #expect(try await client.call("/api/traffic", .post, token: db.agentToken, json: scanTraffic()).status == .accepted)
                try await waitFor("the incident's close at the webhook", seconds: 30) { receiver.received.count >= 1 }
                let changes = try receiver.received.map { post in
                    try #require(try JSONSerialization.jsonObject(with: post.body) as? [String: Any])["change"] as? String
                }
                #expect(changes == ["closed"])
                try await waitFor("the refusal counted") { metric(parts.metrics.render(), "flowforest_alerts_dropped_total{") == 1 }
                #expect(metric(parts.metrics.render(), "flowforest_alerts_failed_total{") == 1)
                #expect(metric(parts.metrics.render(), "flowforest_alerts_sent_total{") == 1)
            }
        } catch {
            await receiver.stop()
            throw error
        }
        await receiver.stop()
    }

    @Test("each route has its own metric series, labelled by host and port, never by the URL's path or query")
    func destinationLabels() throws {
        let urls = try ["https://hooks.example.com/services/T0/B0/secret-one", "https://hooks.example.com/services/T0/B1/secret-two?x=1",
                        "http://am:9093", "http://am:9094"].map { try #require(URL(string: $0)) }
        #expect(AlertMetrics.destinations(urls) == ["hooks.example.com", "hooks.example.com#2", "am:9093", "am:9094"])
    }

    @Test("a bad route URL or an unusable secret file is a clear start-up error")
    func startUpErrors() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("flowforest-secret-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let empty = dir.appendingPathComponent("empty").path, good = dir.appendingPathComponent("good").path
        let short = dir.appendingPathComponent("short").path, large = dir.appendingPathComponent("large").path
        let exposed = dir.appendingPathComponent("exposed").path
        let key = "0123456789abcdef0123456789abcdef"
        for (path, text, mode) in [(empty, " \n", 0o600), (good, key + "\n", 0o640), (short, "k3y\n", 0o600),
                                   (large, String(repeating: "k", count: 5000), 0o600), (exposed, key, 0o644)] {
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            chmod(path, mode_t(mode))
        }
        func error(_ am: [String] = [], _ hooks: [String] = [], secret: String? = nil, external: String? = nil) -> String? {
            do {
                _ = try AlertConfiguration.make(alertmanagers: am, webhooks: hooks, secretFile: secret, externalURL: external)
                return nil
            } catch {
                return error.description
            }
        }
        #expect(error(["ftp://am:9093"]) == #"--alertmanager: expected an http:// or https:// URL with a host, got "ftp://am:9093""#)
        #expect(error(["http://"])?.hasPrefix("--alertmanager: expected") == true)
        #expect(error(["am:9093"])?.hasPrefix("--alertmanager: expected") == true)
        #expect(error([], ["not a url"], secret: good)?.hasPrefix("--webhook: expected") == true)
        #expect(error([], ["http://hooks.example/x"]) == "--webhook needs --webhook-secret-file: every webhook body is signed (X-FlowForest-Signature)")
        #expect(error([], ["http://hooks.example/x"], secret: dir.appendingPathComponent("missing").path)?
            .contains("cannot read it (No such file or directory)") == true)
        #expect(error([], ["http://hooks.example/x"], secret: empty)?.hasSuffix("the file is empty; put the shared HMAC key in it") == true)
        #expect(error(secret: good) == "--webhook-secret-file given without --webhook")
        let hook = ["http://hooks.example/x"]
        #expect(error([], hook, secret: short)?.contains("shorter than 16 bytes") == true)
        #expect(error([], hook, secret: large)?.contains("longer than 4096 bytes") == true)
        #expect(error([], hook, secret: exposed)?.contains("other users can read it") == true)
        #expect(error([], hook, secret: "/dev/zero")?.contains("not a regular file") == true)
        #expect(error(external: "flowforest.example")?.hasPrefix("--external-url: expected") == true)
        let ok = try AlertConfiguration.make(alertmanagers: ["http://127.0.0.1:9093", "https://am2.example:9093"], webhooks: ["https://hooks.example/x"],
                                             secretFile: good, externalURL: "https://ff.example/")
        #expect(ok.alertmanagers.count == 2 && ok.webhookSecret == Array(key.utf8) && ok.externalURL == "https://ff.example")
    }
}
