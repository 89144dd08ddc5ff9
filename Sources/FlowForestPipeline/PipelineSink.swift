public import FlowForestCore

/// Where the pipeline hands what is to be kept: finished flow records,
/// anomalies and models. The server adapts its store writer to it, so the
/// pipeline knows no database; a run without a store passes none.
public protocol PipelineSink: Sendable {
    /// Queues interim and ended flow records of `sensor`; never blocks.
    func enqueue(flows: [FlowRecord], sensor: String)
    /// Queues anomalies; false (nothing queued) when they could not be.
    func enqueue(anomalies: [Anomaly]) -> Bool
    /// Queues incident changes, in order; false (nothing queued) when they could not be.
    func enqueue(incidents: [IncidentUpdate]) -> Bool
    /// Keeps the detector's model, so a restart resumes with it.
    func saveModel(sensor: String, description: String, body: String) async throws
}
