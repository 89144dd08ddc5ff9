#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What kind of packets an overflow aggregate holds (the kernel's
/// `enum ff_overflow_class`, same order).
public enum OverflowClass: UInt8, Sendable, Hashable, CaseIterable {
    case tcpSyn, tcpSynAck, tcpRst, tcpRstAck, tcpFin, tcpOther, udp, icmp, icmpReply, other

    /// The word used in logs, metrics and JSON.
    public var name: String {
        switch self {
        case .tcpSyn: "tcp_syn"
        case .tcpSynAck: "tcp_syn_ack"
        case .tcpRst: "tcp_rst"
        case .tcpRstAck: "tcp_rst_ack"
        case .tcpFin: "tcp_fin"
        case .tcpOther: "tcp_other"
        case .udp: "udp"
        case .icmp: "icmp"
        case .icmpReply: "icmp_reply"
        case .other: "other"
        }
    }
}

/// Which endpoint of its packets an aggregate's address and port are: the
/// destination for requests, the sender for replies (a victim's SYN-ACKs
/// to forged sources fold into one aggregate of the victim).
public enum AggregateSide: UInt8, Sendable, Hashable {
    case destination, source
}

/// Packets the data plane did not admit as flows (its flow map past the
/// admission limit, or an insert failed), folded per endpoint, port,
/// protocol and class, with an estimate of the distinct peers behind them.
/// A forged flood from a million sources arrives as one of these per poll.
public struct FlowAggregate: Sendable, Hashable {
    public struct Key: Sendable, Hashable {
        public var address: IPAddress
        public var port: UInt16
        public var ipProtocol: UInt8
        public var vlan: UInt16
        public var flowClass: OverflowClass
        public var side: AggregateSide
        /// Every port of the endpoint, folded (``port`` is 0): the data
        /// plane stops keying new aggregates by port once half its map is
        /// taken, so a flood over random ports cannot fill it.
        public var anyPort: Bool

        public init(address: IPAddress, port: UInt16, ipProtocol: UInt8, vlan: UInt16, flowClass: OverflowClass,
                    side: AggregateSide, anyPort: Bool = false) {
            self.address = address
            self.port = port
            self.ipProtocol = ipProtocol
            self.vlan = vlan
            self.flowClass = flowClass
            self.side = side
            self.anyPort = anyPort
        }
    }

    public var key: Key
    /// Packets and bytes added since this aggregate's previous report.
    public var packets: UInt64
    public var bytes: UInt64
    /// Packets and bytes since the aggregate started.
    public var totalPackets: UInt64
    public var totalBytes: UInt64
    /// Distinct peers (sources for requests, destinations for replies)
    /// since the aggregate started, estimated (about ±13 %).
    public var peerEstimate: UInt64
    /// Wall-clock ns of its first and latest packet.
    public var firstSeenNs: UInt64
    public var lastSeenNs: UInt64
    /// True in its last report: it went idle and the kernel entry is gone.
    public var ended: Bool
    /// The distinct-peer sketch behind ``peerEstimate``, so aggregates of
    /// one endpoint's ports can be counted together; empty when the
    /// source kept none.
    public var peers: PeerSketch

    public init(key: Key, packets: UInt64, bytes: UInt64, totalPackets: UInt64, totalBytes: UInt64,
                peerEstimate: UInt64, firstSeenNs: UInt64, lastSeenNs: UInt64, ended: Bool, peers: PeerSketch = PeerSketch()) {
        self.peers = peers
        self.key = key
        self.packets = packets
        self.bytes = bytes
        self.totalPackets = totalPackets
        self.totalBytes = totalBytes
        self.peerEstimate = peerEstimate
        self.firstSeenNs = firstSeenNs
        self.lastSeenNs = lastSeenNs
        self.ended = ended
    }
}

/// The kernel's distinct-peer sketch: a HyperLogLog of 64 registers, each
/// kept as a bitmap of the ranks seen so the kernel updates it with one
/// atomic OR. ``insert(_:)`` hashes exactly as the kernel does, so tests
/// can build the sketch a given set of peers yields.
public struct PeerSketch: Sendable, Hashable {
    public static let registerCount = 64
    public private(set) var registers: [UInt32]

    public init() { registers = Array(repeating: 0, count: PeerSketch.registerCount) }

    /// From the kernel's registers; `nil` for a wrong count.
    public init?(registers: [UInt32]) {
        guard registers.count == PeerSketch.registerCount else { return nil }
        self.registers = registers
    }

    /// Adds a peer the way the kernel's `aggregate()` does.
    public mutating func insert(_ address: IPAddress) {
        // The kernel hashes the address's two 64-bit words as loaded from
        // network-order bytes on a little-endian CPU.
        let w0 = address.high.bigEndian, w1 = address.low.bigEndian
        let h = PeerSketch.mix64(w0 ^ PeerSketch.mix64(w1))
        let rest = UInt32(truncatingIfNeeded: h >> 6)
        let bit: UInt32 = rest == 0 ? 0x8000_0000 : rest & (~rest &+ 1)
        registers[Int(h & UInt64(PeerSketch.registerCount - 1))] |= bit
    }

    /// Adds the peers of `other`: a register's bitmap of ranks seen is the
    /// OR of both, so the union's estimate counts a peer in both once.
    public mutating func formUnion(_ other: PeerSketch) {
        for i in registers.indices { registers[i] |= other.registers[i] }
    }

    /// The HyperLogLog estimate, with linear counting while registers are empty.
    public var estimate: UInt64 {
        let m = Double(PeerSketch.registerCount)
        var sum = 0.0
        var zeros = 0
        for r in registers {
            // The register's rank is its highest bit's position plus one.
            let rank = r == 0 ? 0 : 32 - r.leadingZeroBitCount
            if rank == 0 { zeros += 1 }
            sum += 1 / Double(UInt64(1) << rank)
        }
        let raw = 0.709 * m * m / sum
        if raw <= 2.5 * m && zeros > 0 { return UInt64((m * log(m / Double(zeros))).rounded()) }
        return UInt64(raw.rounded())
    }

    static func mix64(_ value: UInt64) -> UInt64 {
        var x = value
        x ^= x >> 33
        x &*= 0xff51_afd7_ed55_8ccd
        x ^= x >> 33
        x &*= 0xc4ce_b9fe_1a85_ec53
        x ^= x >> 33
        return x
    }
}
