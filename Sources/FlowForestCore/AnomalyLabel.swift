/// What an anomaly looks like: a named behaviour, or "unusual ..." when no
/// behaviour explains it. The raw value is the label's text in anomaly
/// JSON, the store's `label` column and the CLI table.
public enum AnomalyLabel: String, Sendable, Hashable, Codable, CaseIterable {
    case portScan = "port scan"
    case hostSweep = "host sweep"
    case synFlood = "syn flood"
    /// A flood of TCP packets outside any connection (ACK, FIN, RST, PSH+ACK, XMAS).
    case tcpFlood = "tcp flood"
    /// Completed connections at a high rate (an HTTP request flood).
    case connectionFlood = "connection flood"
    case udpFlood = "udp flood"
    case icmpFlood = "icmp flood"
    case slowConnections = "slow connections"
    case exfiltration = "exfiltration"
    case beaconing = "beaconing"
    case unusualFlow = "unusual flow"
    case unusualHost = "unusual host"
    case unusualDestination = "unusual destination"

    /// The label for a vector of `kind` that no behaviour explains.
    public static func unusual(_ kind: AnomalyKind) -> AnomalyLabel {
        switch kind {
        case .flow: return .unusualFlow
        case .host: return .unusualHost
        case .destination: return .unusualDestination
        }
    }

    /// True for the labels that name a behaviour rather than "unusual ...".
    public var isSpecific: Bool {
        self != .unusualFlow && self != .unusualHost && self != .unusualDestination
    }
}
