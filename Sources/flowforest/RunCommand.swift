import ArgumentParser
import FlowForestCore
import Foundation
import Logging
import PcapCapture
import ServiceLifecycle

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the sensor: capture live traffic into flows.",
        discussion: """
            Captures on the given interfaces (default: the interface of the default route)
            and reports each flow as it ends. SIGINT or SIGTERM stops capture cleanly:
            open flows are flushed and every hook is detached.

            Examples:
              sudo flowforest run
              sudo flowforest run --mode pcap --interface eth0 --print-flows json
            """
    )

    enum Mode: String, ExpressibleByArgument, CaseIterable {
        case auto, tc, xdp, socket, pcap
    }

    enum FlowPrinting: String, ExpressibleByArgument, CaseIterable {
        case log, json, none
    }

    @Option(help: "Capture mode: auto (tc, then socket, then pcap), tc, xdp, socket or pcap.")
    var mode: Mode = .auto

    @Option(name: .customLong("interface"), help: "Interface to capture on; repeat for several (default: the default-route interface).")
    var interfaces: [String] = []

    @Option(name: .customLong("poll-interval"), help: "Seconds between reads of the capture state.")
    var pollInterval: Double = 1

    @Flag(name: .customLong("no-promiscuous"), help: "pcap mode: do not put the interface into promiscuous mode.")
    var noPromiscuous = false

    @Option(name: .customLong("map-size"), help: "eBPF modes: flows the kernel map holds; packets of further flows go through the ring buffer.")
    var mapSize: Int = 131_072

    @Option(name: .customLong("bpf-object"), help: "eBPF modes: path of flowforest.bpf.o (default: next to the executable, then out/bpf/).")
    var bpfObject: String?

    @Option(name: .customLong("namespace"), help: "eBPF modes: the network namespace (from `ip netns list`) whose interfaces --interface names.")
    var namespace: String?

    @Option(name: .customLong("print-flows"), help: "How ended flows are reported: log (stderr), json (one JSON object per line on stdout) or none.")
    var printFlows: FlowPrinting = .log

    @OptionGroup var flowOptions: FlowOptions
    @OptionGroup var logOptions: LogOptions

    func validate() throws {
        guard pollInterval >= 0.05, pollInterval <= 60 else { throw ValidationError("--poll-interval must be between 0.05 and 60 seconds") }
    }

    func run() async throws {
        let logger = logOptions.makeLogger()
        let names = interfaces.isEmpty ? [DefaultRoute.interface()].compactMap { $0 } : interfaces
        guard !names.isEmpty else {
            throw failure("no --interface given and no default route to pick one from")
        }
        if namespace != nil && mode == .pcap {
            throw failure("--namespace works with the eBPF modes (tc, xdp, socket) only")
        }
        let source: any FlowSource
        do {
            source = try CaptureSelection.open(.init(
                mode: mode, interfaces: names, flowConfiguration: flowOptions.configuration, pollInterval: pollInterval,
                promiscuous: !noPromiscuous, mapEntries: mapSize, objectPath: bpfObject, namespace: namespace), logger: logger)
        } catch {
            throw failure("\(error)")
        }
        let service = FlowReportService(source: source, printing: printFlows, logger: logger)
        let group = ServiceGroup(configuration: .init(
            services: [.init(service: service)],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger))
        do {
            try await group.run()
        } catch {
            throw failure("\(error)")
        }
    }
}

/// Reports flows as they end, until capture stops. Graceful shutdown asks
/// the source to stop, then keeps reading so the final flush is reported.
struct FlowReportService: Service {
    let source: any FlowSource
    let printing: RunCommand.FlowPrinting
    let logger: Logger

    func run() async throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var last = CaptureStatistics()
        let batches = source.batches()
        logger.info("capture started", metadata: ["mode": "\(source.mode)"])
        try await withGracefulShutdownHandler {
            for try await batch in batches {
                report(batch, encoder: encoder)
                last = batch.statistics
            }
        } onGracefulShutdown: {
            source.stop()
        }
        logger.info("capture stopped", metadata: [
            "packets_seen": "\(last.packetsSeen)", "packets_accounted": "\(last.packetsAccounted)",
            "flows": "\(last.flowsStarted)", "capture_drops": "\(last.captureDrops)",
        ])
    }

    private func report(_ batch: FlowBatch, encoder: JSONEncoder) {
        for record in batch.records where record.state == .ended {
            switch printing {
            case .none:
                break
            case .json:
                if var data = try? encoder.encode(record.json()) {
                    data.append(0x0A)
                    FileHandle.standardOutput.write(data)
                }
            case .log:
                logger.info("flow ended", metadata: [
                    "flow": "\(IPProtocol.name(record.ipProtocol)) \(record.sourceAddress):\(record.sourcePort) -> \(record.destinationAddress):\(record.destinationPort)",
                    "fwd": "\(record.forward.packets) pkts \(record.forward.bytes) B",
                    "rev": "\(record.reverse.packets) pkts \(record.reverse.bytes) B",
                    "reason": "\(record.endReason?.rawValue ?? "-")",
                ])
            }
        }
    }
}
