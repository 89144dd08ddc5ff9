import FlowForestPipeline
import ServiceLifecycle

/// At shutdown, once capture and ingest have handed on their last flows,
/// closes every incident still open, before the writer flushes: the store
/// would close them anyway when the next run starts, and alert routes then
/// deliver the close (a webhook's `closed`, an Alertmanager alert's
/// `endsAt`) instead of leaving receivers with an incident open for ever.
struct IncidentShutdownService: Service {
    let pipeline: Pipeline

    func run() async throws {
        try? await gracefulShutdown()
        await pipeline.closeIncidents()
    }
}
