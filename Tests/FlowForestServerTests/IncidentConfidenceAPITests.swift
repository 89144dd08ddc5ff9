import FlowForestCore
import FlowForestPipeline
@testable import FlowForestServer
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

@Suite("Incident confidence in the API, webhooks and alerts", .serialized)
struct IncidentConfidenceAPITests {
    @Test("packets the ingest table refused while an incident was open are counted in it: API, webhook JSON, alert text")
    func lostPacketsShown() async throws {
        let receiver = HookReceiver()
        try await receiver.start()
        do {
            try await withService(.live, detector: ScansEveryEndedFlow(), configure: { c in
                c.incidents = IncidentConfiguration(quietGap: .seconds(1))
                // Room for two flows: the scan's other three packets are lost.
                c.ingestFlowTable.maxFlows = 2
                c.alerts.webhooks = [URL(string: receiver.url)!]
                c.alerts.webhookSecret = Array("k".utf8)
            }) { client, db, _ in
                let now = Date().timeIntervalSince1970
                let scan = trafficJSON([22, 23, 80, 443, 8080].map { ("198.18.0.7", "198.18.0.8", 40000, $0, "tcp", 60, now, ["SYN"]) })
                #expect(try await client.call("/api/traffic", .post, token: db.agentToken, json: scan).status == .accepted)
                func posted() -> [[String: Any]] {
                    receiver.received.compactMap { try? JSONSerialization.jsonObject(with: $0.body) as? [String: Any] }
                }
                try await waitFor("the incident's close at the webhook", seconds: 30) { posted().contains { $0["change"] as? String == "closed" } }
                let closed = try #require(posted().first { $0["change"] as? String == "closed" }?["incident"] as? [String: Any])
                #expect(closed["lost_packets"] as? Int == 3 && closed["lost_flow_records"] as? Int == 0, "\(closed)")
                let incidents = try #require(try await client.call("/api/incidents", token: db.viewerToken).object()["incidents"] as? [[String: Any]])
                #expect(incidents.count == 1 && incidents.first?["lost_packets"] as? Int == 3, "\(incidents)")
                let spec = OpenAPIDocument(try await client.call("/openapi.yaml").text)
                #expect(Set(incidents.first?.keys.map { $0 } ?? []) == spec.required["Incident"])
            }
        } catch {
            await receiver.stop()
            throw error
        }
        await receiver.stop()
    }

    @Test("alert summaries and annotations say when figures are lower bounds, and only then")
    func alertText() {
        var incident = Incident(uid: "inc-1", sensor: "s1", label: .portScan, actors: [IPAddress("198.18.0.7")!],
                                targets: [IPAddress("198.18.0.8")!], firstSeenMs: 0, lastSeenMs: 1000, peakSeverity: .high,
                                peakScore: 0.8, anomalyCount: 2, state: .open, explanation: [])
        let links = AlertLinks(base: "http://sensor")
        #expect(!AlertText.summary(incident).contains("lower bounds"))
        #expect(AlertmanagerAlert(incident, labels: [:], links: links, endsAt: nil).annotations["lost_packets"] == "0")
        incident.lostPackets = 1200
        #expect(AlertText.summary(incident).hasSuffix("; the sensor lost 1200 packets meanwhile: figures are lower bounds"))
        let alert = AlertmanagerAlert(incident, labels: AlertmanagerAlert.labels(incident), links: links, endsAt: nil)
        #expect(alert.annotations["lost_packets"] == "1200")
        #expect(alert.annotations["summary"]?.contains("lower bounds") == true)
        // Not a label: a growing count must not make Alertmanager see a new alert.
        #expect(alert.labels["lost_packets"] == nil)
        incident.lostFlowRecords = 1
        #expect(AlertText.summary(incident).hasSuffix("; the sensor lost 1200 packets and 1 flow record meanwhile: figures are lower bounds"))
        #expect(AlertmanagerAlert(incident, labels: [:], links: links, endsAt: nil).annotations["lost_flow_records"] == "1")
    }
}
