/// Capture failures, each worded for the person running the command.
public enum PcapError: Error, CustomStringConvertible, Sendable {
    case fileNotFound(String)
    case notACaptureFile(String, String)
    case truncatedFile(String, String)
    case readFailed(String, String)
    case noSuchInterface(String)
    case permissionDenied(String)
    case activateFailed(String, String)
    case unsupportedLinkType(String, Int32)

    public var description: String {
        switch self {
        case let .fileNotFound(path):
            return "\(path): no such file"
        case let .notACaptureFile(path, detail):
            return "\(path) is not a pcap or pcapng capture file (\(detail))"
        case let .truncatedFile(path, detail):
            return "\(path) is truncated: \(detail)"
        case let .readFailed(path, detail):
            return "cannot read \(path): \(detail)"
        case let .noSuchInterface(name):
            return "no such interface: \(name) (see `ip link` for the interfaces of this host)"
        case let .permissionDenied(name):
            return "capturing on \(name) needs root or CAP_NET_RAW: run with sudo, or `setcap cap_net_raw,cap_net_admin+ep` on the flowforest binary"
        case let .activateFailed(name, detail):
            return "cannot capture on \(name): \(detail)"
        case let .unsupportedLinkType(source, type):
            return "\(source): link-layer type \(type) is not supported (Ethernet, Linux cooked, raw IP and loopback are)"
        }
    }
}
