/// The bidirectional identity of a flow: both endpoints in a fixed order
/// (lower address and port first), protocol and VLAN. A packet and its reply
/// map to the same key, as in the kernel map (`struct flow_key`).
public struct FlowKey: Hashable, Sendable {
    public var lowAddress: IPAddress
    public var highAddress: IPAddress
    public var lowPort: UInt16
    public var highPort: UInt16
    public var ipProtocol: UInt8
    public var vlan: UInt16

    public init(lowAddress: IPAddress, highAddress: IPAddress, lowPort: UInt16, highPort: UInt16, ipProtocol: UInt8, vlan: UInt16) {
        self.lowAddress = lowAddress
        self.highAddress = highAddress
        self.lowPort = lowPort
        self.highPort = highPort
        self.ipProtocol = ipProtocol
        self.vlan = vlan
    }

    /// The key of a packet and whether its sender is the low endpoint.
    public static func of(_ p: PacketSummary) -> (key: FlowKey, senderIsLow: Bool) {
        let senderIsLow = (p.source, p.sourcePort) <= (p.destination, p.destinationPort)
        let key = senderIsLow
            ? FlowKey(lowAddress: p.source, highAddress: p.destination, lowPort: p.sourcePort, highPort: p.destinationPort, ipProtocol: p.ipProtocol, vlan: p.vlan)
            : FlowKey(lowAddress: p.destination, highAddress: p.source, lowPort: p.destinationPort, highPort: p.sourcePort, ipProtocol: p.ipProtocol, vlan: p.vlan)
        return (key, senderIsLow)
    }
}
