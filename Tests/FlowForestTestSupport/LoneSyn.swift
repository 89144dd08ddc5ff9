public import FlowForestCore

extension FlowRecord {
    /// The record of a lone SYN that nothing answered (a probe, a forged
    /// packet of a flood), `bytes` long, seen at `t`.
    public static func loneSyn(id: UInt64, from source: IPAddress, to destination: IPAddress, sourcePort: UInt16,
                               destinationPort: UInt16, at t: UInt64, bytes: UInt64 = 44) -> FlowRecord {
        var r = FlowRecord(id: id, sourceAddress: source, destinationAddress: destination, sourcePort: sourcePort,
                           destinationPort: destinationPort, ipProtocol: IPProtocol.tcp)
        r.forward.packets = 1
        r.forward.bytes = bytes
        r.forward.synCount = 1
        r.forward.firstSeenNs = t
        r.forward.lastSeenNs = t
        return r
    }
}
