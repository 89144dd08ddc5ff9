/// Counters for one direction of a flow; the Swift twin of
/// `struct flow_dir_stats` in `bpf/flow_types.h`.
public struct DirectionStats: Sendable, Hashable {
    public var packets: UInt64 = 0
    /// IP-layer bytes.
    public var bytes: UInt64 = 0
    /// Nanoseconds since the Unix epoch; 0 when the direction saw no packet.
    public var firstSeenNs: UInt64 = 0
    public var lastSeenNs: UInt64 = 0
    public var minLength: UInt32 = 0
    public var maxLength: UInt32 = 0
    public var sumSquaredLength: UInt64 = 0
    /// Inter-arrival times between consecutive packets of this direction, µs.
    public var iatSumUs: UInt64 = 0
    public var iatSumSquaresUs: UInt64 = 0
    /// Smallest inter-arrival time; meaningful only when `packets >= 2`.
    public var iatMinUs: UInt32 = 0
    public var iatMaxUs: UInt32 = 0
    public var synCount: UInt32 = 0
    public var synAckCount: UInt32 = 0
    public var finCount: UInt32 = 0
    public var rstCount: UInt32 = 0
    public var pshCount: UInt32 = 0
    public var ackCount: UInt32 = 0
    public var urgCount: UInt32 = 0
    public var payloadPackets: UInt32 = 0
    public var initialWindow: UInt16 = 0
    public var flags: TCPFlags = []
    public var icmpType: UInt8 = 0
    public var icmpCode: UInt8 = 0

    public init() {}

    /// Adds one packet sent in this direction; the same arithmetic the BPF
    /// program performs under its slot's writer lock.
    public mutating func add(_ p: PacketSummary) {
        let length = p.ipLength
        if packets == 0 {
            firstSeenNs = p.timestampNs
            minLength = length
            maxLength = length
            initialWindow = p.tcpWindow
            icmpType = p.icmpType
            icmpCode = p.icmpCode
        } else {
            let iatNs = p.timestampNs >= lastSeenNs ? p.timestampNs - lastSeenNs : 0
            let iat = UInt32(clamping: iatNs / 1_000)
            if packets == 1 {
                iatMinUs = iat
                iatMaxUs = iat
            } else {
                iatMinUs = min(iatMinUs, iat)
                iatMaxUs = max(iatMaxUs, iat)
            }
            iatSumUs &+= UInt64(iat)
            iatSumSquaresUs &+= UInt64(iat) &* UInt64(iat)
            minLength = min(minLength, length)
            maxLength = max(maxLength, length)
        }
        packets += 1
        bytes += UInt64(length)
        lastSeenNs = max(lastSeenNs, p.timestampNs)
        sumSquaredLength &+= UInt64(length) &* UInt64(length)
        if p.payloadLength > 0 { payloadPackets &+= 1 }
        let f = p.tcpFlags
        if !f.isEmpty {
            if f.contains(.syn) {
                if f.contains(.ack) { synAckCount &+= 1 } else { synCount &+= 1 }
            }
            if f.contains(.fin) { finCount &+= 1 }
            if f.contains(.rst) { rstCount &+= 1 }
            if f.contains(.psh) { pshCount &+= 1 }
            if f.contains(.ack) { ackCount &+= 1 }
            if f.contains(.urg) { urgCount &+= 1 }
            flags.formUnion(f)
        }
    }

    /// Mean IP packet length, 0 without packets.
    public var meanLength: Double { packets == 0 ? 0 : Double(bytes) / Double(packets) }
}
