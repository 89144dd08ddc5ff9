// Public: the conformance of the public EBPFTCHook below needs it.
public import ArgumentParser
import EBPFCapture
import FlowForestCore
import Foundation
import Logging
import PcapCapture

/// Opens the capture source `--mode` asks for; `auto` tries tc, then socket,
/// then pcap, and logs why each step was skipped.
enum CaptureSelection {
    struct Options {
        var mode: RunCommand.Mode
        var interfaces: [String]
        var flowConfiguration: FlowTableConfiguration
        var pollInterval: Double
        var promiscuous: Bool
        var mapEntries: Int
        var objectPath: String?
        var namespace: String?
        var tcHook: EBPFTCHook = .auto
    }

    static func open(_ o: Options, logger: Logger) throws -> any FlowSource {
        switch o.mode {
        case .pcap:
            return try pcap(o, logger: logger)
        case .tc: return try ebpf(.tc, o, logger: logger)
        case .xdp: return try ebpf(.xdp, o, logger: logger)
        case .socket: return try ebpf(.socket, o, logger: logger)
        case .auto:
            for mode in [EBPFAttachMode.tc, .socket] {
                do {
                    return try ebpf(mode, o, logger: logger)
                } catch let error as EBPFError {
                    // A wrong interface name is the user's to fix, not a reason to fall back.
                    if case .noSuchInterface = error { throw error }
                    logger.warning("\(mode.rawValue) capture unavailable, trying the next mode", metadata: ["reason": "\(error)"])
                }
            }
            guard o.namespace == nil else { throw CaptureSelectionError.namespaceNeedsEBPF }
            logger.warning("eBPF capture unavailable: falling back to libpcap (slower, copies every packet header to user space)")
            return try pcap(o, logger: logger)
        }
    }

    private static func ebpf(_ mode: EBPFAttachMode, _ o: Options, logger: Logger) throws -> any FlowSource {
        try EBPFFlowSource(configuration: EBPFConfiguration(
            mode: mode, interfaces: o.interfaces, pollInterval: o.pollInterval, mapEntries: o.mapEntries,
            objectPath: o.objectPath, flowTable: o.flowConfiguration, namespace: o.namespace, tcHook: o.tcHook), logger: logger)
    }

    private static func pcap(_ o: Options, logger: Logger) throws -> any FlowSource {
        try PcapLiveSource(interfaces: o.interfaces, configuration: o.flowConfiguration,
                           pollIntervalNs: UInt64(o.pollInterval * 1e9), promiscuous: o.promiscuous, logger: logger)
    }
}

enum CaptureSelectionError: Error, CustomStringConvertible {
    case namespaceNeedsEBPF
    var description: String { "eBPF capture is unavailable, and --namespace works with the eBPF modes only" }
}

/// The interface of the IPv4 default route, from /proc/net/route.
enum DefaultRoute {
    static func interface() -> String? {
        guard let table = try? String(contentsOfFile: "/proc/net/route", encoding: .utf8) else { return nil }
        for line in table.split(separator: "\n").dropFirst() {
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            if fields.count > 2, fields[1] == "00000000" { return String(fields[0]) }
        }
        return nil
    }
}

extension EBPFTCHook: ExpressibleByArgument {}
