import FlowForestCore
@testable import FlowForestServer
import Foundation
import Testing

/// Alertmanager refuses an alert that ends before it starts.
@Suite("Alertmanager alert shape")
struct AlertmanagerAlertTests {
    @Test("an incident of traffic stamped ahead of this clock ends no earlier than it starts")
    func endsNotBeforeStart() throws {
        let ahead = Int64(Date().timeIntervalSince1970 * 1000) + 240_000
        let incident = Incident(uid: "u1", sensor: "s", label: .portScan, actors: [], targets: [], firstSeenMs: ahead, lastSeenMs: ahead,
                                peakSeverity: .high, peakScore: 0.8, anomalyCount: 1, state: .closed, explanation: [])
        let alert = AlertmanagerAlert(incident, labels: [:], links: AlertLinks(base: "http://sensor"), endsAt: Date())
        #expect(alert.endsAt == alert.startsAt)
        let now = AlertmanagerAlert(incident, labels: [:], links: AlertLinks(base: "http://sensor"), endsAt: Date(timeIntervalSince1970: Double(ahead) / 1000 + 5))
        #expect(try #require(now.endsAt) > alert.startsAt)
    }
}
