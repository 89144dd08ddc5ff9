#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
public import FlowForestCore

/// One feature of a vector kind: its stable name (in model files and
/// anomaly JSON), the words explanations use, and whether the vector holds
/// log1p of the value (counts and sizes) so explanations can show the value itself.
public struct FeatureInfo: Sendable, Hashable {
    public var name: String
    public var words: String
    public var logScaled: Bool
    /// A difference of two log1p-scaled volumes (a log ratio): shown as
    /// is, but a step of ln 4 in it is a factor of 4, as in a log-scaled count.
    public var logRatio: Bool

    public init(name: String, words: String, logScaled: Bool, logRatio: Bool = false) {
        self.name = name
        self.words = words
        self.logScaled = logScaled
        self.logRatio = logRatio
    }

    /// The value as people read it, from its vector form.
    public func display(_ v: Double) -> Double { logScaled ? expm1(v) : v }
}

/// The features of each vector kind, in vector order.
public enum FeatureSchema {
    /// Half-lives of the damped host and destination windows, in seconds.
    public static let halfLives: [(seconds: Double, suffix: String, words: String)] = [
        (1, "1s", "1 s"), (10, "10s", "10 s"), (100, "100s", "100 s"),
    ]

    public static let flow: [FeatureInfo] = [
        .init(name: "duration_s", words: "duration (s)", logScaled: true),
        .init(name: "fwd_packets", words: "packets sent", logScaled: true),
        .init(name: "rev_packets", words: "packets received", logScaled: true),
        .init(name: "fwd_bytes", words: "bytes sent", logScaled: true),
        .init(name: "rev_bytes", words: "bytes received", logScaled: true),
        .init(name: "bytes_per_s", words: "bytes per second", logScaled: true),
        .init(name: "packets_per_s", words: "packets per second", logScaled: true),
        .init(name: "length_min", words: "smallest packet (bytes)", logScaled: true),
        .init(name: "length_mean", words: "mean packet size (bytes)", logScaled: true),
        .init(name: "length_max", words: "largest packet (bytes)", logScaled: true),
        .init(name: "length_std", words: "packet size spread (bytes)", logScaled: true),
        .init(name: "iat_mean_ms", words: "mean gap between packets (ms)", logScaled: true),
        .init(name: "iat_std_ms", words: "spread of gaps between packets (ms)", logScaled: true),
        .init(name: "iat_min_ms", words: "shortest gap between packets (ms)", logScaled: true),
        .init(name: "iat_max_ms", words: "longest gap between packets (ms)", logScaled: true),
        .init(name: "syn_count", words: "SYN packets", logScaled: true),
        .init(name: "fin_count", words: "FIN packets", logScaled: true),
        .init(name: "rst_count", words: "RST packets", logScaled: true),
        .init(name: "psh_count", words: "PSH packets", logScaled: true),
        .init(name: "ack_count", words: "ACK packets", logScaled: true),
        .init(name: "handshake_completed", words: "TCP handshake completed", logScaled: false),
        .init(name: "syn_without_reply", words: "SYN without reply", logScaled: false),
        .init(name: "initial_window", words: "initial TCP window", logScaled: true),
        .init(name: "down_up_byte_ratio", words: "received/sent bytes (log ratio)", logScaled: false, logRatio: true),
        .init(name: "dst_port_class", words: "destination port class (0 well-known, 1 registered, 2 ephemeral)", logScaled: false),
        .init(name: "protocol_class", words: "protocol (0 tcp, 1 udp, 2 icmp, 3 other)", logScaled: false),
    ]

    /// Windowed host features: (name stem, words); each appears once per half-life.
    static let hostWindowed: [(String, String)] = [
        ("flows_initiated", "flows started"),
        ("distinct_dst_addrs", "distinct destination addresses"),
        ("distinct_dst_ports", "distinct destination ports or protocols"),
        ("distinct_dst_pairs", "distinct destination address:port pairs"),
        ("failed_flows", "failed or half-open connections"),
        ("syn_sent", "SYNs sent"),
        ("synack_received", "SYN-ACKs received"),
        ("established_flows", "TCP connections established"),
        ("icmp_echo_sent", "ICMP echo requests sent"),
        ("udp_packets_sent", "UDP packets sent"),
        ("icmp_packets_sent", "ICMP packets sent"),
        ("icmp_bytes_sent", "ICMP bytes sent"),
        ("other_ip_packets_sent", "packets of other IP protocols sent"),
        ("dns_queries_sent", "DNS queries sent"),
        ("dns_bytes_sent", "DNS query bytes sent"),
        ("unsolicited_tcp_sent", "TCP packets sent outside any connection"),
        ("packets_sent", "packets sent"),
        ("packets_received", "packets received"),
        ("bytes_sent", "bytes sent"),
        ("bytes_received", "bytes received"),
    ]

    static let hostOther: [FeatureInfo] = [
        .init(name: "failed_share_10s", words: "share of failed connections (10 s)", logScaled: false),
        .init(name: "syn_synack_ratio_10s", words: "SYNs per SYN-ACK received (10 s)", logScaled: true),
        .init(name: "sent_received_byte_ratio_100s", words: "sent/received bytes (log ratio, 100 s)", logScaled: false, logRatio: true),
        .init(name: "mean_flow_bytes_100s", words: "mean bytes per flow (100 s)", logScaled: true),
        .init(name: "open_flows", words: "open connections", logScaled: true),
        .init(name: "slow_open_flows", words: "open long, slow connections", logScaled: true),
        .init(name: "beacon_regularity", words: "regularity of repeated connections (0-1)", logScaled: false),
    ]

    static let destinationWindowed: [(String, String)] = [
        ("flows_received", "flows received"),
        ("distinct_src_addrs", "distinct source addresses"),
        ("distinct_src_ports", "distinct source ports"),
        ("distinct_dst_ports", "distinct ports or protocols targeted"),
        ("syn_received", "SYNs received"),
        ("synack_sent", "SYN-ACKs sent"),
        ("established_flows", "TCP connections established"),
        ("failed_flows", "failed or half-open connections"),
        ("udp_packets_received", "UDP packets received"),
        ("icmp_packets_received", "ICMP packets received"),
        ("other_ip_packets_received", "packets of other IP protocols received"),
        ("unsolicited_tcp_received", "TCP packets received outside any connection"),
        ("packets_received", "packets received"),
        ("bytes_received", "bytes received"),
    ]

    static let destinationOther: [FeatureInfo] = [
        .init(name: "failed_share_10s", words: "share of failed connections (10 s)", logScaled: false),
        .init(name: "open_flows", words: "open connections", logScaled: true),
        .init(name: "slow_open_flows", words: "open long, slow connections", logScaled: true),
    ]

    private static func windowed(_ stems: [(String, String)]) -> [FeatureInfo] {
        stems.flatMap { stem, words in
            halfLives.map { FeatureInfo(name: "\(stem)_\($0.suffix)", words: "\(words) (\($0.words))", logScaled: true) }
        }
    }

    public static let host: [FeatureInfo] = windowed(hostWindowed) + hostOther
    public static let destination: [FeatureInfo] = windowed(destinationWindowed) + destinationOther

    public static func features(of kind: AnomalyKind) -> [FeatureInfo] {
        switch kind {
        case .flow: return flow
        case .host: return host
        case .destination: return destination
        }
    }

    public static func names(of kind: AnomalyKind) -> [String] { features(of: kind).map(\.name) }

    /// The windowed stems of a vector kind (none for flows), in vector order.
    static func windowedStems(of kind: AnomalyKind) -> [(String, String)] {
        switch kind {
        case .flow: return []
        case .host: return hostWindowed
        case .destination: return destinationWindowed
        }
    }

    /// Index of a windowed stem (e.g. `flows_initiated`) among its kind's
    /// stems: the host tracker keeps that stem's counters, and the vector
    /// its features, at `stem * halfLives.count + window`.
    static func stem(_ name: String, in kind: AnomalyKind) -> Int {
        guard let i = windowedStems(of: kind).firstIndex(where: { $0.0 == name }) else {
            preconditionFailure("no \(kind.rawValue) windowed feature \(name)")
        }
        return i
    }

    /// Index of a feature by name (for rules and labels). A hash lookup:
    /// the labelling rules ask for a dozen features of every flagged vector,
    /// and a walk over the names cost more than the rules themselves.
    static func index(_ name: String, in kind: AnomalyKind) -> Int {
        let byName: [String: Int]
        switch kind {
        case .flow: byName = flowIndexByName
        case .host: byName = hostIndexByName
        case .destination: byName = destinationIndexByName
        }
        guard let i = byName[name] else {
            preconditionFailure("no \(kind.rawValue) feature \(name)")
        }
        return i
    }

    // One table per kind, chosen by a switch: a table keyed by kind too
    // hashed the kind as well as the name on every lookup.
    private static let flowIndexByName = indexByName(of: .flow)
    private static let hostIndexByName = indexByName(of: .host)
    private static let destinationIndexByName = indexByName(of: .destination)

    private static func indexByName(of kind: AnomalyKind) -> [String: Int] {
        Dictionary(features(of: kind).enumerated().map { ($0.element.name, $0.offset) }, uniquingKeysWith: { first, _ in first })
    }
}
