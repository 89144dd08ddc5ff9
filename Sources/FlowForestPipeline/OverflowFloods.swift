public import FlowForestCore

/// Reports the floods the data plane folded into overflow aggregates.
///
/// An aggregate only exists while the kernel flow map is past its admission
/// limit (or an insert failed), so its packets never reach the forest as
/// flows; this rule speaks for them. Request aggregates (SYN, UDP, ICMP,
/// other TCP toward one endpoint; replies from more senders than the data
/// plane keys by sender, which it folds under their destination) are taken
/// together per victim, protocol and class, whatever their ports: a flood
/// over many ports (each with few packets, or folded into the victim's
/// any-port aggregate) is one flood, as is one on a single port. With at
/// least ``minimumPackets`` packets from at least ``minimumPeers``
/// estimated sources it is reported, once per ``repeatAfterNs``.
public struct OverflowFloodRule: Sendable {
    public var minimumPackets: UInt64
    public var minimumPeers: UInt64
    public var repeatAfterNs: UInt64
    /// When each victim, protocol and class was last reported; pruned as
    /// entries pass ``repeatAfterNs``, so it holds recent floods only.
    private var lastReported: [Target: UInt64] = [:]

    /// What one report is about: a victim's packets of one protocol and class.
    struct Target: Hashable {
        var address: IPAddress
        var ipProtocol: UInt8
        var vlan: UInt16
        var flowClass: OverflowClass

        init(_ key: FlowAggregate.Key) {
            address = key.address
            ipProtocol = key.ipProtocol
            vlan = key.vlan
            flowClass = key.flowClass
        }
    }

    /// A poll's aggregates of one target, together.
    struct Flood {
        var packets: UInt64 = 0
        var bytes: UInt64 = 0
        var firstSeenNs = UInt64.max
        var lastSeenNs: UInt64 = 0
        var peers = PeerSketch()
        /// The largest single estimate: a source that kept no sketch still counts.
        var peerFloor: UInt64 = 0
        /// Port-keyed aggregates, and the port of the first one.
        var ports = 0
        var port: UInt16 = 0
        var anyPort = false

        mutating func add(_ a: FlowAggregate) {
            packets &+= a.totalPackets
            bytes &+= a.totalBytes
            firstSeenNs = min(firstSeenNs, a.firstSeenNs)
            lastSeenNs = max(lastSeenNs, a.lastSeenNs)
            peers.formUnion(a.peers)
            peerFloor = max(peerFloor, a.peerEstimate)
            if a.key.anyPort {
                anyPort = true
            } else {
                if ports == 0 { port = a.key.port }
                ports += 1
            }
        }

        var peerEstimate: UInt64 { max(peers.estimate, peerFloor) }
    }

    public init(minimumPackets: UInt64 = 1000, minimumPeers: UInt64 = 100, repeatAfterNs: UInt64 = 60_000_000_000) {
        self.minimumPackets = minimumPackets
        self.minimumPeers = minimumPeers
        self.repeatAfterNs = repeatAfterNs
    }

    /// Anomalies for the floods among one poll's aggregates, at `nowNs`.
    public mutating func evaluate(_ aggregates: [FlowAggregate], nowNs: UInt64) -> [Anomaly] {
        lastReported = lastReported.filter { nowNs.nanosecondsApart(from: $0.value) < repeatAfterNs }
        var floods: [Target: Flood] = [:]
        var order: [Target] = []
        for a in aggregates where a.key.side == .destination {
            let target = Target(a.key)
            guard lastReported[target] == nil else { continue }
            if floods[target] == nil { order.append(target) }
            floods[target, default: Flood()].add(a)
        }
        var out: [Anomaly] = []
        for target in order {
            let flood = floods[target]!
            guard flood.packets >= minimumPackets, flood.peerEstimate >= minimumPeers else { continue }
            lastReported[target] = nowNs
            out.append(anomaly(for: target, flood, nowNs: nowNs))
        }
        return out
    }

    private func anomaly(for target: Target, _ flood: Flood, nowNs: UInt64) -> Anomaly {
        let label: AnomalyLabel = switch target.flowClass {
        case .tcpSyn: .synFlood
        // Bare RST, FIN, ACK and other TCP packets outside any connection,
        // and SYN-ACKs or RST-ACKs from many senders (reflected or backscatter).
        case .tcpRst, .tcpFin, .tcpOther, .tcpSynAck, .tcpRstAck: .tcpFlood
        case .udp: .udpFlood
        // Requests, or replies and errors from many senders.
        case .icmp, .icmpReply: .icmpFlood
        case .other: .unusualDestination
        }
        let seconds = max(1e-3, Double(flood.lastSeenNs &- min(flood.firstSeenNs, flood.lastSeenNs)) / 1e9)
        let rate = Double(flood.packets) / seconds
        let peers = flood.peerEstimate
        let hasPorts = target.ipProtocol == IPProtocol.tcp || target.ipProtocol == IPProtocol.udp
        let onePort = flood.ports == 1 && !flood.anyPort
        let features: [String: Double] = [
            "overflow_packets": Double(flood.packets), "overflow_bytes": Double(flood.bytes),
            "overflow_sources_estimate": Double(peers), "overflow_packets_per_second": rate.rounded(),
            "overflow_ports": Double(flood.ports),
        ]
        let text = "\(flood.packets) \(target.flowClass.name) packets\(Self.spread(flood, hasPorts: hasPorts)) from about \(peers) "
            + "sources (\(Int(rate.rounded())) per second) not admitted as flows: folded in the kernel"
        return Anomaly(
            sensor: "", timeMs: Int64(nowNs / 1_000_000), kind: .destination, sourceAddress: nil,
            destinationAddress: target.address, sourcePort: nil, destinationPort: hasPorts && onePort ? flood.port : nil,
            ipProtocol: target.ipProtocol, score: 1, severity: flood.packets >= 100_000 ? .critical : .high, label: label,
            explanation: [ExplanationItem(feature: "overflow_sources_estimate", value: Double(peers),
                                          baseline: Double(minimumPeers), direction: "above", text: text)],
            features: features)
    }

    /// Where the packets went, past the victim: " to port 53", " to 812
    /// ports", " to 4096 ports and any other" (ICMP: types).
    private static func spread(_ flood: Flood, hasPorts: Bool) -> String {
        let unit = hasPorts ? "port" : "type"
        guard hasPorts || flood.ports > 1 || flood.anyPort else { return "" }
        if flood.anyPort { return flood.ports == 0 ? " to any \(unit)" : " to \(flood.ports) \(unit)s and any other" }
        return flood.ports == 1 ? " to \(unit) \(flood.port)" : " to \(flood.ports) \(unit)s"
    }
}
