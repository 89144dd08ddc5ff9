import FlowForestCore
import Logging
import ServiceLifecycle

/// Reads the local capture source and feeds its batches to the pipeline.
/// Graceful shutdown cancels the read, which detaches the capture.
struct CaptureService: Service {
    let source: any FlowSource
    let pipeline: Pipeline
    let logger: Logger

    func run() async throws {
        let mode = source.mode
        logger.info("capture started", metadata: ["mode": "\(mode)"])
        do {
            try await cancelWhenGracefulShutdown {
                for try await batch in source.batches() {
                    await pipeline.process(batch, mode: mode)
                }
            }
            logger.info("capture ended", metadata: ["mode": "\(mode)"])
        } catch is CancellationError {
            logger.info("capture detached", metadata: ["mode": "\(mode)"])
        }
    }
}
