import ArgumentParser
import FlowForestPipeline

/// How anomalies group into incidents: shared by `run` and `analyze`.
struct IncidentOptions: ParsableArguments {
    @Option(name: .customLong("incident-gap"),
            help: "Seconds without a new anomaly after which an incident closes (1-86400; default 300, above the detector's 60 s repeat suppression).")
    var incidentGap: Int = 300

    func validate() throws {
        guard IncidentConfiguration.quietGapRange.contains(incidentGap) else {
            throw ValidationError("--incident-gap must be between 1 and 86400 seconds, got \(incidentGap)")
        }
    }

    var configuration: IncidentConfiguration { IncidentConfiguration(quietGap: .seconds(incidentGap)) }
}
