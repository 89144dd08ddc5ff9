import ArgumentParser
import FlowForestCore
import FlowForestDetection
import Logging

/// Flow-table options shared by every command that builds flows.
struct FlowOptions: ParsableArguments {
    @Option(name: .customLong("idle-timeout"), help: "End a flow after this many seconds without packets.")
    var idleTimeout: Double = 15

    @Option(name: .customLong("active-timeout"), help: "Emit an interim record of a long flow every this many seconds.")
    var activeTimeout: Double = 60

    @Option(name: .customLong("tcp-close-timeout"), help: "End a TCP flow this many idle seconds after RST or FIN both ways.")
    var tcpCloseTimeout: Double = 1

    @Option(name: .customLong("max-flows"), help: "Flows held at once in user space: by the libpcap flow table and the remote-ingest table of run (packets of further flows are counted as lost), and open flows of every source together (records of further flows are counted, their packets still are).")
    var maxFlows: Int = 1_000_000

    @Option(name: .customLong("max-hosts"), help: "Source hosts and destinations the detector tracks at most (each; beacon histories: twice as many). Past it, those of a single flow are evicted first and counted in flowforest_tracker_evictions_total.")
    var maxHosts: Int = TrackerLimits.standard.entities

    func validate() throws {
        for (name, value) in [("--idle-timeout", idleTimeout), ("--active-timeout", activeTimeout), ("--tcp-close-timeout", tcpCloseTimeout)] {
            guard value > 0, value < 86_400 else { throw ValidationError("\(name) must be between 0 and 86400 seconds, got \(value)") }
        }
        guard maxFlows > 0 else { throw ValidationError("--max-flows must be positive") }
        guard (1...100_000_000).contains(maxHosts) else { throw ValidationError("--max-hosts must be between 1 and 100000000, got \(maxHosts)") }
    }

    /// The detector's table limits from `--max-hosts`.
    var trackerLimits: TrackerLimits { TrackerLimits(entities: maxHosts, pairs: 2 * maxHosts) }

    var configuration: FlowTableConfiguration {
        FlowTableConfiguration(
            idleTimeoutNs: UInt64(idleTimeout * 1e9), activeTimeoutNs: UInt64(activeTimeout * 1e9),
            tcpCloseTimeoutNs: UInt64(tcpCloseTimeout * 1e9), maxFlows: maxFlows)
    }
}

/// Log level option and the one place logging is bootstrapped.
struct LogOptions: ParsableArguments {
    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: String = "info"

    func validate() throws {
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("--log-level: unknown level '\(logLevel)'") }
    }

    func makeLogger(_ label: String = "flowforest") -> Logger {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        return Logger(label: label)
    }
}
