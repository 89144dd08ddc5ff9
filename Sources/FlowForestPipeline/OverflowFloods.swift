public import FlowForestCore

/// Reports the floods the data plane folded into overflow aggregates.
///
/// An aggregate only exists while the kernel flow map is past its admission
/// limit (or an insert failed), so its packets never reach the forest as
/// flows; this rule speaks for them. A request aggregate (SYN, UDP, ICMP,
/// other TCP toward one endpoint; replies from more senders than the data
/// plane keys by sender, which it folds under their destination) with at
/// least ``minimumPackets`` packets from at least ``minimumPeers`` estimated
/// sources is a flood on that endpoint: one anomaly per victim, port, protocol and class, repeated at
/// most once per ``repeatAfterNs``.
public struct OverflowFloodRule: Sendable {
    public var minimumPackets: UInt64
    public var minimumPeers: UInt64
    public var repeatAfterNs: UInt64
    /// When each (victim, port, protocol, class) was last reported; pruned
    /// as entries pass ``repeatAfterNs``, so it holds recent floods only.
    private var lastReported: [FlowAggregate.Key: UInt64] = [:]

    public init(minimumPackets: UInt64 = 1000, minimumPeers: UInt64 = 100, repeatAfterNs: UInt64 = 60_000_000_000) {
        self.minimumPackets = minimumPackets
        self.minimumPeers = minimumPeers
        self.repeatAfterNs = repeatAfterNs
    }

    /// Anomalies for the floods among one poll's aggregates, at `nowNs`.
    public mutating func evaluate(_ aggregates: [FlowAggregate], nowNs: UInt64) -> [Anomaly] {
        lastReported = lastReported.filter { nowNs &- $0.value < repeatAfterNs }
        var out: [Anomaly] = []
        for a in aggregates where a.key.side == .destination {
            guard a.totalPackets >= minimumPackets, a.peerEstimate >= minimumPeers, lastReported[a.key] == nil else { continue }
            lastReported[a.key] = nowNs
            out.append(anomaly(for: a, nowNs: nowNs))
        }
        return out
    }

    private func anomaly(for a: FlowAggregate, nowNs: UInt64) -> Anomaly {
        let label: AnomalyLabel = switch a.key.flowClass {
        case .tcpSyn: .synFlood
        // Bare RST, FIN, ACK and other TCP packets outside any connection,
        // and SYN-ACKs or RST-ACKs from many senders (reflected or backscatter).
        case .tcpRst, .tcpFin, .tcpOther, .tcpSynAck, .tcpRstAck: .tcpFlood
        case .udp: .udpFlood
        // Requests, or replies and errors from many senders.
        case .icmp, .icmpReply: .icmpFlood
        case .other: .unusualDestination
        }
        let seconds = max(1e-3, Double(a.lastSeenNs &- a.firstSeenNs) / 1e9)
        let rate = Double(a.totalPackets) / seconds
        let features: [String: Double] = [
            "overflow_packets": Double(a.totalPackets), "overflow_bytes": Double(a.totalBytes),
            "overflow_sources_estimate": Double(a.peerEstimate), "overflow_packets_per_second": rate.rounded(),
        ]
        let text = "\(a.totalPackets) \(a.key.flowClass.name) packets from about \(a.peerEstimate) sources "
            + "(\(Int(rate.rounded())) per second) not admitted as flows: folded in the kernel"
        return Anomaly(
            sensor: "", timeMs: Int64(nowNs / 1_000_000), kind: .destination, sourceAddress: nil,
            destinationAddress: a.key.address, sourcePort: nil,
            destinationPort: a.key.ipProtocol == IPProtocol.tcp || a.key.ipProtocol == IPProtocol.udp ? a.key.port : nil,
            ipProtocol: a.key.ipProtocol, score: 1, severity: a.totalPackets >= 100_000 ? .critical : .high, label: label,
            explanation: [ExplanationItem(feature: "overflow_sources_estimate", value: Double(a.peerEstimate),
                                          baseline: Double(minimumPeers), direction: "above", text: text)],
            features: features)
    }
}
