import FlowForestCore
import FlowForestPipeline
import Logging
import ServiceLifecycle

/// Reads the local capture source and feeds its batches to the pipeline.
/// Graceful shutdown asks the source to stop (detaching the capture) and
/// keeps reading, so the final batch with every open flow is still scored and stored.
/// A capture error ends the service with that error.
struct CaptureService: Service {
    let source: any FlowSource
    let pipeline: Pipeline
    let logger: Logger

    func run() async throws {
        let mode = source.mode
        let source = self.source
        logger.info("capture started", metadata: ["mode": "\(mode)"])
        try await withGracefulShutdownHandler {
            for try await batch in source.batches() {
                await pipeline.process(batch, mode: mode)
            }
        } onGracefulShutdown: {
            source.stop()
        }
        logger.info("capture stopped", metadata: ["mode": "\(mode)"])
        // A source that ends by itself (a capture file) leaves the service
        // serving what it stored until it is asked to stop.
        try? await gracefulShutdown()
    }
}
