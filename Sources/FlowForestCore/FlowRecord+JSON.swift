/// The JSON shape of a flow, shared by the API, server-sent events and
/// `analyze --format json`: snake_case, RFC 3339 times, `src` = initiator,
/// null for fields that do not apply.
public struct FlowJSON: Codable, Sendable, Hashable {
    public struct Direction: Codable, Sendable, Hashable {
        public var packets: UInt64
        public var bytes: UInt64
        public var tcpFlags: [String]

        enum CodingKeys: String, CodingKey {
            case packets, bytes
            case tcpFlags = "tcp_flags"
        }
    }

    public var id: UInt64
    public var sensor: String?
    public var firstSeen: String
    public var lastSeen: String
    public var durationMs: Double
    public var `protocol`: String
    public var srcIP: String
    public var srcPort: UInt16?
    public var dstIP: String
    public var dstPort: UInt16?
    public var icmpType: UInt8?
    public var icmpCode: UInt8?
    public var vlan: UInt16?
    public var interface: String?
    public var fwd: Direction
    public var rev: Direction
    public var state: FlowState
    public var endReason: FlowEndReason?

    enum CodingKeys: String, CodingKey {
        case id, sensor, `protocol`, vlan, interface, fwd, rev, state
        case firstSeen = "first_seen"
        case lastSeen = "last_seen"
        case durationMs = "duration_ms"
        case srcIP = "src_ip"
        case srcPort = "src_port"
        case dstIP = "dst_ip"
        case dstPort = "dst_port"
        case icmpType = "icmp_type"
        case icmpCode = "icmp_code"
        case endReason = "end_reason"
    }

    // Encode nils as null: "fields that do not apply are null, never absent".
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(sensor, forKey: .sensor)
        try c.encode(firstSeen, forKey: .firstSeen)
        try c.encode(lastSeen, forKey: .lastSeen)
        try c.encode(durationMs, forKey: .durationMs)
        try c.encode(`protocol`, forKey: .protocol)
        try c.encode(srcIP, forKey: .srcIP)
        try c.encode(srcPort, forKey: .srcPort)
        try c.encode(dstIP, forKey: .dstIP)
        try c.encode(dstPort, forKey: .dstPort)
        try c.encode(icmpType, forKey: .icmpType)
        try c.encode(icmpCode, forKey: .icmpCode)
        try c.encode(vlan, forKey: .vlan)
        try c.encode(interface, forKey: .interface)
        try c.encode(fwd, forKey: .fwd)
        try c.encode(rev, forKey: .rev)
        try c.encode(state, forKey: .state)
        try c.encode(endReason, forKey: .endReason)
    }
}

extension FlowRecord {
    /// This record in the shared JSON shape.
    public func json(sensor: String? = nil) -> FlowJSON {
        let icmp = IPProtocol.isICMP(ipProtocol)
        let hasPorts = ipProtocol == IPProtocol.tcp || ipProtocol == IPProtocol.udp || ipProtocol == 132
        let initiatorSide = forward.packets > 0 ? forward : reverse
        return FlowJSON(
            id: id, sensor: sensor,
            firstSeen: Timestamp.rfc3339(nanoseconds: firstSeenNs),
            lastSeen: Timestamp.rfc3339(nanoseconds: lastSeenNs),
            durationMs: Double(durationNs) / 1e6,
            protocol: IPProtocol.name(ipProtocol),
            srcIP: sourceAddress.description, srcPort: hasPorts ? sourcePort : nil,
            dstIP: destinationAddress.description, dstPort: hasPorts ? destinationPort : nil,
            icmpType: icmp ? initiatorSide.icmpType : nil, icmpCode: icmp ? initiatorSide.icmpCode : nil,
            vlan: vlan == 0 ? nil : vlan, interface: interfaceName,
            fwd: .init(packets: forward.packets, bytes: forward.bytes, tcpFlags: forward.flags.names),
            rev: .init(packets: reverse.packets, bytes: reverse.bytes, tcpFlags: reverse.flags.names),
            state: state, endReason: endReason)
    }
}
