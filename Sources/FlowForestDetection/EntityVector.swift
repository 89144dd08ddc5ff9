#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
public import FlowForestCore

/// A host or destination vector as of one poll, with what an anomaly report needs.
public struct EntityVector: Sendable {
    public var kind: AnomalyKind
    /// The source host (kind `host`) or the destination (kind `destination`).
    public var address: IPAddress
    /// The one peer seen recently, when there was only one (else nil).
    public var peer: IPAddress?
    /// The protocol and destination port of the latest flow.
    public var ipProtocol: UInt8
    public var port: UInt16
    /// The interface or exporter the entity's latest flow came through.
    public var observationPoint: String? = nil
    public var vector: [Double]
    /// The entity's latest flows, newest last.
    public var recentFlowIDs: [UInt64]

    /// A vector that says nothing about its address, left to the flow and
    /// the peer's vectors rather than raising one alert per address: a few
    /// small flows in 100 s (a swept address), or for a host, nothing but
    /// lone SYNs or lone unanswered packets to one address:port, without
    /// the rhythm of a beacon (a forged source of a flood: a flood forged
    /// from a /20 gives each address a handful of such flows, and thousands
    /// of addresses would each look unusual). Answered datagrams to one
    /// service (a tunnel through one resolver) are not thin.
    public var isThin: Bool {
        let i = kind == .host ? Self.host : Self.destination
        func raw(_ index: Int) -> Double { expm1(vector[index]) }
        let flows = raw(i.flows)
        guard raw(i.packets10s) < 100 else { return false }
        if flows < 3.5 { return true }
        return kind == .host && raw(Self.pairs) < 1.5 && raw(Self.packetsSent) < 1.5 * flows
            && (raw(Self.syns) >= 0.9 * flows || raw(Self.packetsReceived) < 0.5)
            && vector[Self.regularity] < 0.8
    }

    // Feature indices, looked up once: isThin runs for every vector of every
    // poll, and a forged flood brings tens of thousands of them.
    private static let host = (flows: FeatureSchema.index("flows_initiated_100s", in: .host),
                               packets10s: FeatureSchema.index("packets_sent_10s", in: .host))
    private static let destination = (flows: FeatureSchema.index("flows_received_100s", in: .destination),
                                      packets10s: FeatureSchema.index("packets_received_10s", in: .destination))
    private static let pairs = FeatureSchema.index("distinct_dst_pairs_100s", in: .host)
    private static let packetsSent = FeatureSchema.index("packets_sent_100s", in: .host)
    private static let packetsReceived = FeatureSchema.index("packets_received_100s", in: .host)
    private static let syns = FeatureSchema.index("syn_sent_100s", in: .host)
    private static let regularity = FeatureSchema.index("beacon_regularity", in: .host)
}
