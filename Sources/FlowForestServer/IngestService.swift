import FlowForestPipeline
import ServiceLifecycle

/// Advances the ingest table once a second into the pipeline and at
/// shutdown ends its flows. The same tick closes incidents gone quiet,
/// so they close on time when no batch arrives (ingest only, idle capture).
struct IngestService: Service {
    let table: IngestTable
    let pipeline: Pipeline
    let interval: Duration

    func run() async throws {
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try await Task.sleep(for: interval)
                let batch = await table.advance()
                if !batch.records.isEmpty { await pipeline.process(batch, mode: "ingest") }
                await pipeline.expireIncidents(nowMs: Int64(wallClockNs() / 1_000_000))
            }
        }
        let final = await table.flush()
        if !final.records.isEmpty { await pipeline.process(final, mode: "ingest") }
    }
}

/// The server clock in ns since the epoch (``WallClock/nowNs()``).
func wallClockNs() -> UInt64 { WallClock.nowNs() }
