import ArgumentParser
import FlowForestCore
import CoreMetrics
import FlowForestDetection
import FlowForestPipeline
import Foundation
import Logging
import PcapCapture

struct TrainCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train a detection model from capture files of normal traffic.",
        discussion: """
            Reads the files through the same parser, flow table and feature code as live
            capture and grows one isolation forest per vector kind (flow, host,
            destination). A share of the vectors is held out to set the severity
            thresholds. The model is versioned JSON; `analyze --model` and `run --model`
            use it instead of learning from the first traffic.

            Examples:
              flowforest train monday.pcap tuesday.pcap -o model.json
              flowforest train normal.pcapng -o model.json --extended --seed 7
            """
    )

    @Argument(help: "Capture files of normal traffic (pcap or pcapng).")
    var files: [String]

    @Option(name: [.short, .customLong("output")], help: "Where to write the model (JSON).")
    var output: String

    @Option(help: "Trees per forest.")
    var trees: Int = 100

    @Option(help: "Vectors sampled per tree.")
    var sampleSize: Int = 256

    @Flag(help: "Hyperplane splits (extended isolation forest) instead of one feature per split.")
    var extended = false

    @Option(help: "Random seed: the same files and seed give the same model.")
    var seed: UInt64 = ForestParameters().seed

    @Option(help: "Expected share of anomalies in the training traffic; sets the low threshold instead of p99.")
    var contamination: Double?

    @OptionGroup var flowOptions: FlowOptions
    @OptionGroup var logOptions: LogOptions

    func validate() throws {
        guard !files.isEmpty else { throw ValidationError("name at least one capture file") }
        guard (1...10_000).contains(trees), (2...65_536).contains(sampleSize) else {
            throw ValidationError("--trees must be 1-10000 and --sample-size 2-65536")
        }
        if let c = contamination, !(c > 0 && c < 0.5) { throw ValidationError("--contamination must be between 0 and 0.5") }
    }

    func run() async throws {
        let logger = logOptions.makeLogger()
        // A bad -o is reported before the captures are read, not after.
        do { try DetectionModel.checkWritable(output) } catch { throw failure("\(error)") }
        if let absent = files.first(where: { !FileManager.default.fileExists(atPath: $0) }) { throw failure("\(absent): no such file") }
        // The same pipeline as `run`, feeding a trainer instead of a detector.
        let pipeline = Pipeline(
            sensor: "", trainer: ModelTrainer(parameters: ForestParameters(trees: trees, sampleSize: sampleSize, extended: extended, seed: seed)),
            maxFlows: flowOptions.maxFlows, longestSilenceNs: flowOptions.configuration.longestSilenceNs, logger: logger, metricsFactory: NOOPMetricsHandler.instance)
        for file in files {
            let source = PcapFileSource(path: file, configuration: flowOptions.configuration, logger: logger)
            do {
                for try await batch in source.batches() { await pipeline.process(batch, mode: source.mode) }
            } catch {
                throw failure("\(error)")
            }
        }
        let trainer = await pipeline.trainer!  // built with one above
        let model: DetectionModel
        do {
            model = try trainer.model(nowMs: Int64(Date().timeIntervalSince1970 * 1000), contamination: contamination)
        } catch {
            throw failure("too little traffic to train on (\(trainer.vectors.map { "\($0.key.rawValue) \($0.value)" }.joined(separator: ", "))): \(error)")
        }
        do {
            try model.save(to: output)
        } catch {
            throw failure("\(error)")
        }
        for m in model.models {
            print("\(m.kind.rawValue): \(m.trainingVectors) training + \(m.heldOutVectors) held-out vectors, thresholds low \(fmt(m.thresholds.low)) medium \(fmt(m.thresholds.medium)) high \(fmt(m.thresholds.high)) critical \(fmt(m.thresholds.critical))")
        }
        print("wrote \(output)")
    }

    private func fmt(_ x: Double) -> String { String(format: "%.3f", x) }
}
