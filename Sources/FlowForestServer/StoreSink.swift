import FlowForestCore
import FlowForestPipeline
import FlowForestStore

/// The pipeline's sink over the store writer: flows and anomalies go to its
/// queue, models straight to the store.
struct StoreSink: PipelineSink {
    let writer: StoreWriter

    func enqueue(flows: [FlowRecord], sensor: String) {
        writer.enqueue(flows: flows, sensor: sensor)
    }

    func enqueue(anomalies: [Anomaly]) -> Bool {
        writer.enqueue(anomalies: anomalies)
    }

    func enqueue(incidents: [IncidentUpdate]) -> Bool {
        writer.enqueue(incidents: incidents)
    }

    func saveModel(sensor: String, description: String, body: String) async throws {
        try await writer.store.saveModel(sensor: sensor, description: description, body: body)
    }
}
