/// One direction of a flow as a flow exporter reports it (a NetFlow or IPFIX
/// record): the aggregate of many packets rather than one packet. The
/// ``FlowTable`` merges these into bidirectional ``FlowRecord``s the way it
/// merges ``PacketSummary`` values from local capture.
public struct UniflowSummary: Sendable, Hashable {
    /// First and last packet, ns since the epoch, already in FlowForest's
    /// range (``Timestamp/endNs``) and `firstSeenNs <= lastSeenNs`.
    public var firstSeenNs: UInt64
    public var lastSeenNs: UInt64
    public var source: IPAddress
    public var destination: IPAddress
    /// Transport ports; for ICMP the type/counterpart of
    /// ``IPProtocol/icmpPorts(type:code:v6:)``, as local capture keys them.
    public var sourcePort: UInt16
    public var destinationPort: UInt16
    public var ipProtocol: UInt8
    public var vlan: UInt16
    /// Packets and IP-layer bytes, sampling already applied.
    public var packets: UInt64
    public var bytes: UInt64
    /// TCP flags seen over the record's packets (their union).
    public var tcpFlags: TCPFlags
    public var icmpType: UInt8
    public var icmpCode: UInt8
    /// Ingress interface index at the exporter, 0 when not reported.
    public var interfaceIndex: UInt32
    /// Where the flow was observed (for collected records, the exporter).
    public var interface: InterfaceName
    /// Its name, as a ``FlowRecord`` of this uniflow gives it.
    public var interfaceName: String? { interface.name(interfaceIndex: interfaceIndex) }

    public init(firstSeenNs: UInt64, lastSeenNs: UInt64, source: IPAddress, destination: IPAddress,
                sourcePort: UInt16 = 0, destinationPort: UInt16 = 0, ipProtocol: UInt8, vlan: UInt16 = 0,
                packets: UInt64, bytes: UInt64, tcpFlags: TCPFlags = [], icmpType: UInt8 = 0, icmpCode: UInt8 = 0,
                interfaceIndex: UInt32 = 0, interface: InterfaceName = .none) {
        self.firstSeenNs = firstSeenNs
        self.lastSeenNs = max(firstSeenNs, lastSeenNs)
        self.source = source
        self.destination = destination
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
        self.ipProtocol = ipProtocol
        self.vlan = vlan
        self.packets = packets
        self.bytes = bytes
        self.tcpFlags = tcpFlags
        self.icmpType = icmpType
        self.icmpCode = icmpCode
        self.interfaceIndex = interfaceIndex
        self.interface = interface
    }

    /// The bidirectional key and whether the sender is the key's low endpoint
    /// (the same ordering ``FlowKey/of(_:)`` gives a packet).
    public var key: (key: FlowKey, senderIsLow: Bool) {
        let senderIsLow = (source, sourcePort) <= (destination, destinationPort)
        let key = senderIsLow
            ? FlowKey(lowAddress: source, highAddress: destination, lowPort: sourcePort, highPort: destinationPort, ipProtocol: ipProtocol, vlan: vlan)
            : FlowKey(lowAddress: destination, highAddress: source, lowPort: destinationPort, highPort: sourcePort, ipProtocol: ipProtocol, vlan: vlan)
        return (key, senderIsLow)
    }
}

extension DirectionStats {
    /// Adds an exporter's aggregate for this direction. Per-packet figures an
    /// aggregate does not carry are estimated: lengths from the mean, each TCP
    /// flag in the record's union counted once (a SYN with ACK as a SYN-ACK
    /// when this is the responder's side), payload packets when the mean
    /// length exceeds bare headers; inter-arrival times stay unknown (0).
    public mutating func add(_ u: UniflowSummary, responder: Bool) {
        guard u.packets > 0 else { return }
        let mean = UInt32(clamping: u.bytes / u.packets)
        if packets == 0 {
            firstSeenNs = u.firstSeenNs
            minLength = mean
            maxLength = mean
            icmpType = u.icmpType
            icmpCode = u.icmpCode
        } else {
            firstSeenNs = min(firstSeenNs, u.firstSeenNs)
            minLength = min(minLength, mean)
            maxLength = max(maxLength, mean)
        }
        packets = packets.addingSaturated(u.packets)
        bytes = bytes.addingSaturated(u.bytes)
        lastSeenNs = max(lastSeenNs, u.lastSeenNs)
        // Saturating: a hostile record's mean and count can square past 2^64.
        let (square, over1) = UInt64(mean).multipliedReportingOverflow(by: UInt64(mean))
        let (lengths, over2) = square.multipliedReportingOverflow(by: u.packets)
        sumSquaredLength = over1 || over2 ? .max : sumSquaredLength.addingSaturated(lengths)
        // 40 bytes: an IPv4 header and the smallest TCP header (UDP/ICMP have less).
        if mean > 40 { payloadPackets &+= UInt32(clamping: u.packets) }
        let f = u.tcpFlags
        if !f.isEmpty {
            if f.contains(.syn) {
                if responder && f.contains(.ack) { synAckCount &+= 1 } else { synCount &+= 1 }
            }
            if f.contains(.fin) { finCount &+= 1 }
            if f.contains(.rst) { rstCount &+= 1 }
            if f.contains(.psh) { pshCount &+= 1 }
            if f.contains(.ack) { ackCount &+= 1 }
            if f.contains(.urg) { urgCount &+= 1 }
            flags.formUnion(f)
        }
    }
}
