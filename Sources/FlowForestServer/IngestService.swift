import FlowForestPipeline
import ServiceLifecycle

/// Advances the ingest table once a second into the pipeline (every tick
/// while flows are open, as a capture source polls) and at shutdown ends
/// its flows. The same tick closes incidents gone quiet, so they close on
/// time when no batch arrives (ingest only, idle capture).
struct IngestService: Service {
    let table: IngestTable
    let pipeline: Pipeline
    let interval: Duration

    func run() async throws {
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try await Task.sleep(for: interval)
                let batch = await table.advance()
                // While flows are open the pipeline needs every tick, as a
                // capture poll: time alone changes them (a SYN unanswered for
                // a second has failed) though no record arrives.
                if !batch.records.isEmpty || batch.activeFlows > 0 { await pipeline.process(batch, mode: "ingest") }
                await pipeline.expireIncidents(nowMs: Int64(wallClockNs() / 1_000_000))
            }
        }
        let final = await table.flush()
        if !final.records.isEmpty { await pipeline.process(final, mode: "ingest") }
    }
}

/// The server clock in ns since the epoch (``WallClock/nowNs()``).
func wallClockNs() -> UInt64 { WallClock.nowNs() }
