import ArgumentParser
import FlowForestCore
import FlowForestLab
import Foundation

struct CollectorBenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-collector",
        abstract: "FlowForest's NetFlow/IPFIX collector against nfdump's nfcapd on the same datagrams, in one run.",
        discussion: """
            Builds one set of NetFlow v9 and IPFIX datagrams (half the flows each, finished TCP
            exchanges) and replays it over loopback UDP, in turn, into `flowforest run --no-capture
            --collect` (detection on: with --model, scoring; without, learning) and into nfcapd,
            each pinned to the same one core (taskset) while the sender runs on another. The sender
            keeps each collector's socket queue short, so nothing is dropped and the replay runs at
            the rate the collector reads:

              records/s     data records / seconds from the first datagram until the collector
                            has them: FlowForest's flowforest_collector_records_total (and every
                            flow ended, for detection), nfcapd's socket queue empty
              ratio         FlowForest's records/s / nfcapd's

            Afterwards each collector's count is checked: FlowForest's records and ended flows,
            nfdump's records in nfcapd's files; socket drops must be 0.

            Example:
              flowforest-lab bench-collector --flows 200000 --model model.json
            """
    )

    @Option(help: "Flows in the replayed set (two records each).")
    var flows: Int = 200_000

    @Option(help: "Rounds; each replays into both collectors, and the medians are reported.")
    var rounds: Int = 3

    @Option(help: "A model from `flowforest train` for the FlowForest collector (scoring); without one it learns.")
    var model: String?

    @Option(help: "The core the collectors run on; the sender takes another.")
    var core: Int = 1

    @Option(help: "Write the results as JSON to this file.")
    var json: String?

    func validate() throws {
        guard (1000...2_000_000).contains(flows) else { throw ValidationError("--flows must be between 1000 and 2000000") }
        guard (1...20).contains(rounds) else { throw ValidationError("--rounds must be between 1 and 20") }
        guard (0..<ProcessInfo.processInfo.activeProcessorCount).contains(core), ProcessInfo.processInfo.activeProcessorCount >= 2 else {
            throw ValidationError("--core must name one of this machine's cores, and it needs at least two")
        }
    }

    func run() async throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/nfcapd") else { throw failure("nfcapd (Debian package nfdump) is not installed: run `make deps`") }
        let exe = try Daemon.located()
        if let model, !FileManager.default.fileExists(atPath: model) { throw failure("--model \(model): no such file") }
        let senderCore = core == 0 ? 1 : 0
        _ = try Command.check(["taskset", "-apc", "\(senderCore)", "\(getpid())"])
        // An interrupted bench leaves no collector running and no work directory.
        let interruption = InterruptTeardown("bench-collector") {
            ChildProcesses.shared.terminateAll()
            Bench.removeWorkDirectories()
        }
        defer { interruption.cancel() }
        let set = CollectorBenchDatagrams(flows: flows)
        print("\(set.datagrams.count) datagrams, \(set.records) records (\(flows) flows, NetFlow v9 and IPFIX); collectors on core \(core)")
        var results: [CollectorBench.Result] = []
        for round in 1...rounds {
            // A fresh set each round: its flows end a second before it is sent, by the collector's clock.
            let datagrams = round == 1 ? set : CollectorBenchDatagrams(flows: flows)
            let bench = CollectorBench(datagrams: datagrams, core: core, daemon: exe, model: model)
            for collector in [CollectorBench.Collector.flowforest, .nfcapd] {
                let r = try await onOwnThread { try bench.measure(collector) }
                print(r.line(round: round))
                results.append(r)
            }
        }
        let summary = CollectorBench.Summary(results: results, model: model != nil)
        print(summary.text)
        if let json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            encoder.keyEncodingStrategy = .convertToSnakeCase
            try encoder.encode(summary).write(to: URL(fileURLWithPath: json))
            print("results written to \(json)")
        }
    }
}
