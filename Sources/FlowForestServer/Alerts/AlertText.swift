import FlowForestCore

/// Where alerts link: the dashboard as people reach it.
struct AlertLinks: Sendable {
    let base: String

    /// The dashboard, scrolled to the incident.
    func incident(_ incident: Incident) -> String {
        base + "/#incident-" + (incident.id.map(String.init) ?? incident.uid)
    }
}

/// Incidents in plain words, for alert summaries.
enum AlertText {
    /// "port scan by 198.18.0.7 on 198.18.0.8 and 2 more: 14 anomalies, peak critical (open)", and when the
    /// sensor lost packets meanwhile "; the sensor lost 1200 packets meanwhile: figures are lower bounds".
    static func summary(_ incident: Incident) -> String {
        func side(_ addresses: [IPAddress]) -> String {
            guard let first = addresses.first else { return "unknown" }
            return addresses.count == 1 ? first.description : "\(first) and \(addresses.count - 1) more"
        }
        let count = incident.anomalyCount == 1 ? "1 anomaly" : "\(incident.anomalyCount) anomalies"
        return "\(incident.label.rawValue) by \(side(incident.actors)) on \(side(incident.targets)): \(count), peak \(incident.peakSeverity.rawValue) (\(incident.state.rawValue))"
            + (confidence(incident).map { "; \($0)" } ?? "")
    }

    /// "the sensor lost 1200 packets and 30 flow records meanwhile: figures are lower bounds"; nil when it lost none.
    static func confidence(_ incident: Incident) -> String? {
        func count(_ n: UInt64, _ one: String) -> String? { n == 0 ? nil : "\(n) \(one)\(n == 1 ? "" : "s")" }
        let parts = [count(incident.lostPackets, "packet"), count(incident.lostFlowRecords, "flow record")].compactMap { $0 }
        guard !parts.isEmpty else { return nil }
        return "the sensor lost \(parts.joined(separator: " and ")) meanwhile: figures are lower bounds"
    }
}
