/// What the flow table needs to know about one packet: the parsed headers of
/// a live, captured or ingested packet. Every capture path produces these
/// with the rules in `bpf/flow_types.h`.
public struct PacketSummary: Sendable, Hashable {
    /// Capture time, nanoseconds since the Unix epoch.
    public var timestampNs: UInt64
    public var source: IPAddress
    public var destination: IPAddress
    /// Transport ports; ICMP type/counterpart per ``IPProtocol/icmpPorts(type:code:v6:)``;
    /// 0 for non-first fragments and protocols without ports.
    public var sourcePort: UInt16
    public var destinationPort: UInt16
    public var ipProtocol: UInt8
    /// Outer VLAN id, 0 when untagged.
    public var vlan: UInt16
    /// IP-layer length: IPv4 total length, IPv6 payload length + 40.
    public var ipLength: UInt32
    /// Transport payload bytes (0 when unknown or none).
    public var payloadLength: UInt32
    public var tcpFlags: TCPFlags
    public var tcpWindow: UInt16
    public var icmpType: UInt8
    public var icmpCode: UInt8
    /// Index of the interface the packet was seen on (0 when unknown).
    public var interfaceIndex: UInt32

    public init(
        timestampNs: UInt64, source: IPAddress, destination: IPAddress,
        sourcePort: UInt16 = 0, destinationPort: UInt16 = 0, ipProtocol: UInt8,
        vlan: UInt16 = 0, ipLength: UInt32, payloadLength: UInt32 = 0,
        tcpFlags: TCPFlags = [], tcpWindow: UInt16 = 0, icmpType: UInt8 = 0, icmpCode: UInt8 = 0,
        interfaceIndex: UInt32 = 0
    ) {
        self.timestampNs = timestampNs
        self.source = source
        self.destination = destination
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
        self.ipProtocol = ipProtocol
        self.vlan = vlan
        self.ipLength = ipLength
        self.payloadLength = payloadLength
        self.tcpFlags = tcpFlags
        self.tcpWindow = tcpWindow
        self.icmpType = icmpType
        self.icmpCode = icmpCode
        self.interfaceIndex = interfaceIndex
    }
}
