import FlowForestCore
import FlowForestPipeline
import FlowForestServer
import FlowForestStore
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

/// Reports every ended flow as a port scan by its initiator: the pipeline,
/// incident tracker, store, API and event stream downstream are the real ones.
struct ScansEveryEndedFlow: FlowDetector {
    func process(_ batch: FlowBatch, changes: [FlowChange], flows: FlowLedger) -> [Anomaly] {
        changes.filter { $0.record.state == .ended }.map { c in
            Anomaly(sensor: "", timeMs: Int64(batch.timeNs / 1_000_000), kind: .host, sourceAddress: c.record.sourceAddress,
                    destinationAddress: c.record.destinationAddress, destinationPort: c.record.destinationPort,
                    score: c.record.destinationPort == 23 ? 0.95 : 0.7, severity: c.record.destinationPort == 23 ? .critical : .high,
                    label: .portScan,
                    explanation: [ExplanationItem(feature: "distinct_dst_ports_10s", value: 2, baseline: 1, direction: "above",
                                                  text: "port \(c.record.destinationPort)")],
                    flowIDs: [c.record.id])
        }
    }
    func retrain(nowNs: UInt64) {}
    func setExpected(_ rules: [Suppression]) {}
    var apiStatus: ModelStatus { ModelStatus(state: .scoring) }
    func modelJSON() -> String? { nil }
}

@Suite("Incidents API and events")
struct IncidentAPITests {
    @Test("ingested scan traffic becomes one incident: events on open and close, listed and served with its anomalies")
    func incidentLifecycle() async throws {
        try await withService(.live, detector: ScansEveryEndedFlow(), configure: { $0.incidents = IncidentConfiguration(quietGap: .seconds(2)) }) { client, db, parts in
            let port = try #require(client.port)
            let stream = try EventStream(url: "http://127.0.0.1:\(port)/api/events", token: db.viewerToken)
            defer { stream.close() }
            try await stream.wait(for: "a first stats event") { $0.contains("event: stats") }
            let now = Date().timeIntervalSince1970
            let scan = trafficJSON([22, 23, 80].map { ("198.18.0.7", "198.18.0.8", 40000, $0, "tcp", 60, now, ["SYN"]) })
            #expect(try await client.call("/api/traffic", .post, token: db.agentToken, json: scan).status == .accepted)
            try await stream.wait(for: "the incident's opening") { $0.contains("event: incident_opened\n") }
            try await stream.wait(for: "the incident's close after the quiet gap") { $0.contains("event: incident_closed\n") }
            let closedEvent = try #require(stream.text.components(separatedBy: "\n\n").first { $0.hasPrefix("event: incident_closed") })
            let data = try #require(closedEvent.split(separator: "\n").first { $0.hasPrefix("data: ") }).dropFirst(6)
            let fromEvent = try JSONSerialization.jsonObject(with: Data(data.utf8)) as? [String: Any]
            #expect(fromEvent?["state"] as? String == "closed")

            let list = try await client.call("/api/incidents?ip=198.18.0.7", token: db.viewerToken)
            #expect(list.status == .ok, "\(list.text)")
            let incidents = try #require(try list.object()["incidents"] as? [[String: Any]])
            #expect(incidents.count == 1, "\(list.text)")
            let incident = try #require(incidents.first)
            let spec = OpenAPIDocument(try await client.call("/openapi.yaml").text)
            #expect(Set(incident.keys) == spec.required["Incident"])
            #expect(Set(try #require(fromEvent).keys) == spec.required["Incident"])
            #expect(incident["actors"] as? [String] == ["198.18.0.7"])
            #expect(incident["targets"] as? [String] == ["198.18.0.8"])
            #expect(incident["label"] as? String == "port scan" && incident["family"] as? String == "scan")
            #expect(incident["anomaly_count"] as? Int == 3)
            #expect(incident["peak_severity"] as? String == "critical")
            #expect((incident["explanation"] as? [[String: Any]])?.first?["text"] as? String == "port 23")
            #expect(incident["state"] as? String == "closed")
            #expect(fromEvent?["id"] as? Int == incident["id"] as? Int)
            // Its anomaly ids are the stored anomalies'.
            let anomalies = try await client.call("/api/anomalies?ip=198.18.0.7", token: db.viewerToken).object()["anomalies"] as? [[String: Any]]
            let anomalyIDs = (anomalies ?? []).compactMap { $0["id"] as? Int }.sorted()
            #expect(incident["anomaly_ids"] as? [Int] == anomalyIDs && anomalyIDs.count == 3)
            let id = try #require(incident["id"] as? Int)
            let one = try await client.call("/api/incidents/\(id)", token: db.viewerToken)
            let oneID = try one.object()["id"] as? Int
            #expect(one.status == .ok && oneID == id)
            #expect(try await client.call("/api/incidents/\(id + 1000)", token: db.viewerToken).status == .notFound)
            #expect(try await client.call("/api/incidents?state=open", token: db.viewerToken).object()["incidents"] as? [Any] != nil)
            _ = parts
        }
    }

    @Test("bad incident query parameters are 400 naming the parameter; reads need a credential")
    func badParameters() async throws {
        try await withService { client, db, _ in
            for (query, parameter) in [("ip=1.2.3", "ip"), ("severity=urgent", "severity"), ("severity=high,", "severity"),
                                       ("label=worm", "label"), ("state=maybe", "state"), ("since=yesterday", "since"),
                                       ("until=2555-01-01T00:00:00Z", "until"), ("limit=0", "limit"), ("limit=1001", "limit"),
                                       ("cursor=0", "cursor"), ("cursor=!!", "cursor"),
                                       ("label=" + Array(repeating: "beaconing", count: 33).joined(separator: ","), "label")] {
                let r = try await client.call("/api/incidents?\(query)", token: db.viewerToken)
                #expect(r.status == .badRequest, "\(query)")
                #expect((try r.object()["error"] as? String)?.hasPrefix(parameter + ":") == true, "\(query): \(r.text)")
            }
            #expect(try await client.call("/api/incidents/abc", token: db.viewerToken).status == .badRequest)
            #expect(try await client.call("/api/incidents").status == .unauthorized)
            #expect(try await client.call("/api/incidents/1").status == .unauthorized)
            let ok = try await client.call("/api/incidents?label=port%20scan,syn%20flood&state=closed&severity=high,critical&limit=10", token: db.viewerToken)
            #expect(ok.status == .ok, "\(ok.text)")
            // Forms send spaces as "+".
            #expect(try await client.call("/api/incidents?label=port+scan", token: db.viewerToken).status == .ok)
        }
    }
}
