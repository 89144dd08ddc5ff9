public import FlowForestCore

/// Names the kind of an anomalous vector from its features, and holds the
/// few rules certain enough to raise severity on their own (Zeek's scan
/// counts). A label needs its tell-tale feature above an absolute floor and
/// beyond what the learned baseline holds (for counts, at least twice its
/// p99), so busy-but-normal hosts are not called scanners just for being
/// busy, and a busy server's normal SYNs are not a SYN flood.
public enum Labeler {
    /// Reads features of one vector by name, as people count them (log1p undone).
    struct View {
        let kind: AnomalyKind
        let vector: [Double]
        let baseline: [FeatureBaseline]?

        func raw(_ name: String) -> Double {
            let i = FeatureSchema.index(name, in: kind)
            return FeatureSchema.features(of: kind)[i].display(vector[i])
        }

        /// True when the feature is at least `floor` and beyond the
        /// baseline: above its p99, and for counts at least
        /// ``Labeler/baselineFactor`` times it. A floor alone sits near the
        /// normal level of a busy network (a server with many clients
        /// receives 60 SYNs a second); the baseline says what is normal here.
        func high(_ name: String, _ floor: Double) -> Bool {
            let i = FeatureSchema.index(name, in: kind)
            let info = FeatureSchema.features(of: kind)[i]
            let value = info.display(vector[i])
            guard value >= floor else { return false }
            guard let b = baseline?[i] else { return true }
            guard vector[i] > b.p99 else { return false }
            return !info.logScaled || value >= Labeler.baselineFactor * info.display(b.p99)
        }

        /// `numerator` per `denominator` (features by name), 0 when the latter is under one.
        func per(_ numerator: String, _ denominator: String) -> Double {
            let d = raw(denominator)
            return d < 1 ? 0 : raw(numerator) / d
        }
    }

    /// Open long, slow connections that make a host or destination's
    /// "slow connections": fewer may be a client's keep-alives.
    public static let slowConnectionsFloor = 8

    /// How far above the baseline's p99 a count must be to name a behaviour.
    public static let baselineFactor = 2.0

    /// Mean size (IP bytes) of a host's DNS queries above which they carry
    /// data: a query for a usual name is 40-90 bytes, a tunnel fills its
    /// names towards the 253-character limit.
    public static let dnsTunnelQueryBytes = 120.0

    /// Mean size (IP bytes) of a host's ICMP packets above which they carry
    /// data (ping sends 84 bytes).
    public static let icmpTunnelPacketBytes = 256.0

    /// The label of an anomalous vector.
    public static func label(kind: AnomalyKind, vector: [Double], baseline: [FeatureBaseline]?) -> AnomalyLabel {
        let v = View(kind: kind, vector: vector, baseline: baseline)
        switch kind {
        case .host: return hostLabel(v)
        case .destination: return destinationLabel(v)
        case .flow: return flowLabel(v)
        }
    }

    /// A label that is certain without the forest: Zeek's scan policy
    /// (15 ports on one victim, or 25 hosts, with failed connections).
    public static func certainLabel(kind: AnomalyKind, vector: [Double]) -> AnomalyLabel? {
        let v = View(kind: kind, vector: vector, baseline: nil)
        switch kind {
        case .host:
            let failed = v.raw("failed_flows_100s")
            if v.raw("distinct_dst_ports_100s") >= 15 && failed >= 10 && v.raw("distinct_dst_addrs_10s") < 3 { return .portScan }
            if v.raw("distinct_dst_addrs_100s") >= 25 && (failed >= 10 || v.raw("icmp_echo_sent_100s") >= 25) { return .hostSweep }
            return nil
        case .destination:
            if v.raw("distinct_dst_ports_100s") >= 15 && v.raw("failed_flows_100s") >= 10 && v.raw("distinct_src_addrs_10s") < 3 { return .portScan }
            return nil
        case .flow:
            return nil
        }
    }

    /// The line that states a certain rule's own evidence (the count and the
    /// rule's floor), for an anomaly that no feature's baseline explains.
    public static func ruleEvidence(_ label: AnomalyLabel, kind: AnomalyKind, vector: [Double]) -> ExplanationItem? {
        let v = View(kind: kind, vector: vector, baseline: nil)
        let (name, floor, rule): (String, Double, String)
        switch (label, kind) {
        case (.portScan, .host), (.portScan, .destination):
            (name, floor, rule) = ("distinct_dst_ports_100s", 15, "scan rule: at least 15 ports with 10 failed connections")
        case (.hostSweep, .host):
            (name, floor, rule) = ("distinct_dst_addrs_100s", 25, "sweep rule: at least 25 hosts with failed connections or echo requests")
        default:
            return nil
        }
        let value = v.raw(name)
        let info = FeatureSchema.features(of: kind)[FeatureSchema.index(name, in: kind)]
        return ExplanationItem(feature: name, value: value, baseline: floor, direction: "above",
                               text: "\(info.words) \(Explainer.format(value)) (\(rule))")
    }

    /// True when some feature lies well outside everything the baseline
    /// held: above its maximum by a factor of 4 (log-scaled features) or by
    /// 0.5 (ratios and shares). An isolation forest over many features can
    /// under-score a vector that is extreme in only one of them; this
    /// envelope catches those, and is used only together with a specific label.
    public static func outsideEnvelope(kind: AnomalyKind, vector: [Double], baseline: [FeatureBaseline]) -> Bool {
        let features = FeatureSchema.features(of: kind)
        guard vector.count == features.count, baseline.count == features.count else { return false }
        return features.indices.contains { beyondEnvelope($0, features: features, vector: vector, baseline: baseline) }
    }

    /// True when a specific label's own tell-tale feature lies outside the
    /// baseline envelope (see ``outsideEnvelope(kind:vector:baseline:)``):
    /// evidence strong enough that the alert needs no second flagged vector.
    /// Flow labels never qualify; a flow stream confirms itself.
    public static func keyFeatureOutsideEnvelope(_ label: AnomalyLabel, kind: AnomalyKind, vector: [Double],
                                                 baseline: [FeatureBaseline]) -> Bool {
        guard kind != .flow, label.isSpecific else { return false }
        let features = FeatureSchema.features(of: kind)
        guard vector.count == features.count, baseline.count == features.count else { return false }
        return keyFeatures(label, kind: kind).contains {
            beyondEnvelope(FeatureSchema.index($0, in: kind), features: features, vector: vector, baseline: baseline)
        }
    }

    /// Feature `j` above the baseline maximum by a factor of 4 (log1p-scaled
    /// features and log ratios: ln 4 = 1.386) or by 0.5 (shares, regularity,
    /// classes). A log ratio is logs too: 0.5 in it is a factor of 1.65, which
    /// two small volumes pass by chance (a server's few hundred bytes of ICMP
    /// unreachables, with nothing received back, against its training's few
    /// hundred).
    private static func beyondEnvelope(_ j: Int, features: [FeatureInfo], vector: [Double], baseline: [FeatureBaseline]) -> Bool {
        vector[j] > baseline[j].max + (features[j].logScaled || features[j].logRatio ? 1.386 : 0.5)
    }

    /// The features that show a label's behaviour, put first in its explanation.
    static func keyFeatures(_ label: AnomalyLabel, kind: AnomalyKind) -> [String] {
        let host = kind == .host
        switch label {
        case .portScan: return ["distinct_dst_ports_10s"]
        case .hostSweep: return ["distinct_dst_addrs_10s"]
        case .synFlood: return host ? ["syn_sent_1s"] : ["syn_received_1s"]
        case .tcpFlood: return host ? ["unsolicited_tcp_sent_1s"] : ["unsolicited_tcp_received_1s"]
        case .connectionFlood: return host ? ["flows_initiated_1s"] : ["flows_received_1s"]
        case .udpFlood: return host ? ["udp_packets_sent_1s"] : ["udp_packets_received_1s"]
        case .icmpFlood: return host ? ["icmp_packets_sent_1s"] : ["icmp_packets_received_1s"]
        case .ipFlood: return host ? ["other_ip_packets_sent_1s"] : ["other_ip_packets_received_1s"]
        case .dnsTunnel: return host ? ["dns_bytes_sent_10s"] : []
        case .slowConnections: return kind == .flow ? [] : ["slow_open_flows"]
        case .exfiltration: return kind == .flow ? ["fwd_bytes"] : (host ? ["bytes_sent_10s", "icmp_bytes_sent_10s"] : ["bytes_received_10s"])
        case .beaconing: return host ? ["beacon_regularity"] : []
        default: return []
        }
    }

    /// Beaconing is certain when connections repeat like a metronome in a
    /// network where repeated connections are not regular.
    static func isCertainBeacon(kind: AnomalyKind, vector: [Double], baseline: [FeatureBaseline]) -> Bool {
        guard kind == .host else { return false }
        let i = FeatureSchema.index("beacon_regularity", in: kind)
        return vector[i] >= 0.92 && baseline[i].p99 < 0.9
    }

    private static func hostLabel(_ v: View) -> AnomalyLabel {
        let ports = v.raw("distinct_dst_ports_10s")
        let addrs = v.raw("distinct_dst_addrs_10s")
        if v.high("distinct_dst_ports_10s", 10) && ports >= 2 * addrs { return .portScan }
        if v.high("distinct_dst_addrs_10s", 10) && addrs >= 2 * max(ports, 1) - 1 { return .hostSweep }
        // Many SYNs at few ports: unanswered, or answered and reset by
        // the sender; either way under half become connections.
        let syn = v.raw("syn_sent_1s")
        if v.high("syn_sent_1s", 50) && v.raw("distinct_dst_ports_10s") < 10
            && (v.raw("synack_received_1s") < 0.5 * syn || v.raw("established_flows_1s") < 0.5 * syn) { return .synFlood }
        // The same SYNs, answered and completed: connections at a high rate.
        if v.high("flows_initiated_1s", 50) && syn >= 50 && v.raw("distinct_dst_ports_10s") < 10 { return .connectionFlood }
        if v.high("unsolicited_tcp_sent_1s", 300) { return .tcpFlood }
        if v.high("udp_packets_sent_1s", 300) { return .udpFlood }
        if v.high("icmp_packets_sent_1s", 300) { return .icmpFlood }
        if v.high("other_ip_packets_sent_1s", 300) { return .ipFlood }
        if v.high("slow_open_flows", Double(slowConnectionsFloor)) { return .slowConnections }
        if v.high("bytes_sent_10s", 5_000_000) && v.raw("sent_received_byte_ratio_100s") > 1.5 { return .exfiltration }
        if v.high("dns_bytes_sent_10s", 5_000) && v.per("dns_bytes_sent_10s", "dns_queries_sent_10s") >= dnsTunnelQueryBytes {
            return .dnsTunnel
        }
        // Echo requests far larger than ping's, in volume: data carried out in their payloads.
        if v.high("icmp_bytes_sent_10s", 50_000) && v.per("icmp_bytes_sent_10s", "icmp_packets_sent_10s") >= icmpTunnelPacketBytes {
            return .exfiltration
        }
        if v.high("beacon_regularity", 0.8) { return .beaconing }
        return .unusualHost
    }

    private static func destinationLabel(_ v: View) -> AnomalyLabel {
        if v.high("distinct_dst_ports_10s", 10) { return .portScan }
        if v.high("syn_received_1s", 50) && v.raw("distinct_dst_ports_10s") < 10 {
            // Unanswered, or answered and reset by the sender: under half
            // become connections. Completed requests become connections.
            let syn = v.raw("syn_received_1s")
            if v.raw("synack_sent_1s") < 0.5 * syn || v.raw("established_flows_1s") < 0.5 * syn { return .synFlood }
            if v.high("flows_received_1s", 50) { return .connectionFlood }
        }
        if v.high("unsolicited_tcp_received_1s", 300) { return .tcpFlood }
        if v.high("udp_packets_received_1s", 300) { return .udpFlood }
        if v.high("icmp_packets_received_1s", 300) { return .icmpFlood }
        if v.high("other_ip_packets_received_1s", 300) { return .ipFlood }
        if v.high("slow_open_flows", Double(slowConnectionsFloor)) { return .slowConnections }
        if v.high("syn_received_1s", 100) { return .synFlood }
        if v.high("bytes_received_10s", 5_000_000) && v.raw("distinct_src_addrs_10s") < 3 { return .exfiltration }
        return .unusualDestination
    }

    private static func flowLabel(_ v: View) -> AnomalyLabel {
        if v.high("fwd_bytes", 10_000_000) && v.raw("down_up_byte_ratio") < -1.5 { return .exfiltration }
        return .unusualFlow
    }
}
