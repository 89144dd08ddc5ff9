import ArgumentParser
import CoreMetrics
import FlowForestCollector
import FlowForestCore
import Foundation
import Logging

/// NetFlow/IPFIX collection options of `run`.
struct CollectOptions: ParsableArguments {
    @Option(name: .customLong("collect"), help: ArgumentHelp(
        "Collect NetFlow v5, v9 and IPFIX on udp://HOST:PORT (repeatable; e.g. udp://0.0.0.0:2055). With --no-capture, a collector only.",
        valueName: "url"))
    var endpoints: [String] = []

    @Option(name: .customLong("collect-max-exporters"), help: "Exporters (source addresses) tracked; when every place is taken, exporters silent 10 minutes give way, else datagrams of further ones are refused and counted.")
    var maxExporters: Int = 256

    @Option(name: .customLong("collect-max-templates"), help: "Templates held per exporter; further ones are refused and counted.")
    var maxTemplates: Int = 256

    @Option(name: .customLong("collect-template-wait"), help: "Seconds data waits for its template before it is dropped and counted.")
    var templateWait: Double = 10

    func validate() throws {
        for text in endpoints {
            do { _ = try CollectorEndpoint(text) } catch { throw ValidationError("\(error)") }
        }
        guard (1...65_536).contains(maxExporters) else { throw ValidationError("--collect-max-exporters must be between 1 and 65536") }
        guard (1...65_536).contains(maxTemplates) else { throw ValidationError("--collect-max-templates must be between 1 and 65536") }
        guard templateWait >= 0.1, templateWait <= 3600 else {
            throw ValidationError("--collect-template-wait must be between 0.1 and 3600 seconds, got \(templateWait)")
        }
    }

    /// The collector, bound to every endpoint, or nil without `--collect`.
    func makeSource(flowConfiguration: FlowTableConfiguration, pollInterval: Double,
                    metricsFactory: any MetricsFactory, logger: Logger) throws -> CollectorSource? {
        guard !endpoints.isEmpty else { return nil }
        var limits = CollectorLimits()
        limits.maxExporters = maxExporters
        limits.maxTemplatesPerExporter = maxTemplates
        limits.holdNs = UInt64(templateWait * 1e9)
        do {
            return try CollectorSource(endpoints: endpoints.map { try CollectorEndpoint($0) }, configuration: flowConfiguration,
                                       limits: limits, pollIntervalNs: UInt64(pollInterval * 1e9),
                                       metricsFactory: metricsFactory, logger: logger)
        } catch {
            throw failure("\(error)")
        }
    }
}

/// Local capture and collection as one source for the service: batches of
/// both, each passed on as it comes, with the two sources' cumulative
/// statistics and open flows summed (the pipeline accounts per mode).
struct MergedFlowSource: FlowSource {
    let sources: [any FlowSource]
    var mode: String { sources.map(\.mode).joined(separator: "+") }

    func batches() -> AsyncThrowingStream<FlowBatch, any Error> {
        let sources = self.sources
        // Holds one batch: each source passes its next on only when there is room.
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: FlowBatch.self, bufferingPolicy: .bufferingOldest(1))
        do {
            let task = Task {
                do {
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        let latest = LatestStatistics(count: sources.count)
                        for (index, source) in sources.enumerated() {
                            group.addTask {
                                for try await batch in source.batches() {
                                    guard await continuation.yieldWhenRoom(latest.merge(batch, from: index)) else { return }
                                }
                            }
                        }
                        try await group.waitForAll()
                    }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
        return stream
    }

    func stop() { for source in sources { source.stop() } }
}

/// Each source's latest statistics, summed into every batch passed on.
private final class LatestStatistics: @unchecked Sendable {
    // @unchecked: guarded by `lock`.
    private let lock = NSLock()
    private var statistics: [CaptureStatistics]
    private var active: [Int]

    init(count: Int) {
        statistics = Array(repeating: CaptureStatistics(), count: count)
        active = Array(repeating: 0, count: count)
    }

    func merge(_ batch: FlowBatch, from index: Int) -> FlowBatch {
        lock.lock()
        defer { lock.unlock() }
        statistics[index] = batch.statistics
        active[index] = batch.activeFlows
        var sum = CaptureStatistics()
        for s in statistics { sum += s }
        var out = batch
        out.statistics = sum
        out.activeFlows = active.reduce(0, +)
        return out
    }
}
