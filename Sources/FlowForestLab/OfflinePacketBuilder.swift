import Foundation

/// Builds the frames of the offline benchmark's flows into one reused
/// buffer whose payload area is filled once: per packet only the headers
/// are written, which keeps a two-million-packet file quick to make.
struct OfflinePacketBuilder {
    private let plans: [OfflineFlowPlan]
    /// Next sequence number of each flow's client and server (TCP).
    private var clientSeq: [UInt32]
    private var serverSeq: [UInt32]
    /// The frame just built; valid for the length `build` returned.
    private(set) var frame: [UInt8]

    static let fullSegment = 1448

    init(plans: [OfflineFlowPlan]) {
        self.plans = plans
        clientSeq = plans.indices.map { UInt32(truncatingIfNeeded: $0 &* 2_654_435_761) }
        serverSeq = plans.indices.map { UInt32(truncatingIfNeeded: $0 &* 40_503 &+ 7_777_777) }
        frame = [UInt8](repeating: 0x61, count: 14 + 20 + 20 + Self.fullSegment)
    }

    /// What packet `index` of a flow is: its direction, TCP flags (0 for
    /// UDP) and payload size.
    static func shape(_ plan: OfflineFlowPlan, index k: Int) -> (fromClient: Bool, flags: UInt8, payload: Int) {
        let n = Int(plan.packets)
        switch plan.kind {
        case .udpQuery:
            return (k == 0, 0, k == 0 ? plan.smallPayload : plan.smallPayload * 3 + 16)
        case .udpStream:
            let fromClient = k % 2 == 0
            return (fromClient, 0, plan.serverPort == 443 && !fromClient ? 1200 : plan.smallPayload / 3 + 12)
        case .tcpDownload, .tcpUpload:
            switch k {
            case 0: return (true, 0x02, 0)                      // SYN
            case 1: return (false, 0x12, 0)                     // SYN-ACK
            case 2: return (true, 0x10, 0)                      // ACK
            case 3: return (true, 0x18, plan.smallPayload)      // request
            case n - 3: return (true, 0x11, 0)                  // FIN-ACK, client first
            case n - 2: return (false, 0x11, 0)
            case n - 1: return (true, 0x10, 0)                  // last ACK
            default:
                // Data from the sender, every third packet the receiver's ACK.
                let senderIsClient = plan.kind == .tcpUpload
                let j = k - 4
                if j % 3 == 2 { return (!senderIsClient, 0x10, 0) }
                return (senderIsClient, j % 3 == 1 ? 0x18 : 0x10, (j / 3) % 8 == 7 ? 512 : fullSegment)
            }
        }
    }

    /// Builds packet `index` of flow `flow` into ``frame``; returns the
    /// frame's length and its IP length.
    mutating func build(flow: Int, index: Int) -> (frame: Int, ip: Int) {
        let plan = plans[flow]
        let (fromClient, flags, payload) = Self.shape(plan, index: index)
        let tcp = plan.kind.isTCP
        let l4 = tcp ? 20 : 8
        let ipLength = 20 + l4 + payload
        let (src, dst) = fromClient ? (plan.client, plan.server) : (plan.server, plan.client)
        let (sport, dport) = fromClient ? (plan.clientPort, plan.serverPort) : (plan.serverPort, plan.clientPort)
        var seq: UInt32 = 0, ack: UInt32 = 0
        if tcp {
            (seq, ack) = fromClient ? (clientSeq[flow], serverSeq[flow]) : (serverSeq[flow], clientSeq[flow])
            // SYN and FIN take one sequence number, data its length.
            let advance = UInt32(payload) &+ (flags & 0x03 != 0 ? 1 : 0)
            if fromClient { clientSeq[flow] &+= advance } else { serverSeq[flow] &+= advance }
            if flags == 0x02 { ack = 0 }
        }
        frame.withUnsafeMutableBytes { b in
            Self.ethernetIPv4(b, src: src, dst: dst, fromClient: fromClient, ipLength: ipLength, id: UInt16(truncatingIfNeeded: index),
                              protocol: tcp ? 6 : 17)
            Self.be16(b, 34, sport)
            Self.be16(b, 36, dport)
            if tcp {
                Self.be32(b, 38, seq)
                Self.be32(b, 42, ack)
                b[46] = 0x50
                b[47] = flags
                Self.be16(b, 48, 64_240)
                Self.be32(b, 50, 0)  // checksum and urgent pointer: no reader here checks them
            } else {
                Self.be16(b, 38, UInt16(8 + payload))
                Self.be16(b, 40, 0)  // no UDP checksum, as IPv4 allows
                // Where a TCP header was, payload again.
                for i in 42..<54 { b[i] = 0x61 }
            }
        }
        return (14 + ipLength, ipLength)
    }

    private static func ethernetIPv4(_ b: UnsafeMutableRawBufferPointer, src: UInt32, dst: UInt32, fromClient: Bool,
                                     ipLength: Int, id: UInt16, protocol proto: UInt8) {
        // The client side's MAC and a gateway's, swapped by direction.
        let macs: [UInt8] = fromClient ? [2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2] : [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1]
        for i in 0..<6 { b[i] = macs[i]; b[6 + i] = macs[6 + i] }
        be16(b, 12, 0x0800)
        b[14] = 0x45
        b[15] = 0
        be16(b, 16, UInt16(ipLength))
        be16(b, 18, id)
        be16(b, 20, 0x4000)  // don't fragment
        b[22] = fromClient ? 64 : 57
        b[23] = proto
        be16(b, 24, 0)
        be32(b, 26, src)
        be32(b, 30, dst)
        var sum: UInt32 = 0
        for i in stride(from: 14, to: 34, by: 2) { sum += UInt32(b[i]) << 8 | UInt32(b[i + 1]) }
        while sum > 0xFFFF { sum = (sum & 0xFFFF) + (sum >> 16) }
        be16(b, 24, ~UInt16(sum))
    }

    @inline(__always)
    static func be16(_ b: UnsafeMutableRawBufferPointer, _ at: Int, _ v: UInt16) {
        b[at] = UInt8(v >> 8)
        b[at + 1] = UInt8(truncatingIfNeeded: v)
    }

    @inline(__always)
    static func be32(_ b: UnsafeMutableRawBufferPointer, _ at: Int, _ v: UInt32) {
        be16(b, at, UInt16(v >> 16))
        be16(b, at + 2, UInt16(truncatingIfNeeded: v))
    }
}

/// Classic pcap (microsecond timestamps, Ethernet) written through a 4 MiB
/// buffer.
struct PcapStreamWriter {
    let handle: FileHandle
    private var buffer: [UInt8] = []
    private(set) var written = 0

    init(handle: FileHandle) {
        self.handle = handle
        buffer.reserveCapacity(1 << 22)
    }

    mutating func header() throws {
        le32(0xA1B2_C3D4)
        le16(2); le16(4)                    // version 2.4
        le32(0); le32(0)                    // time zone, accuracy
        le32(65_535); le32(1)               // snap length, LINKTYPE_ETHERNET
    }

    mutating func packet(timeMicros: UInt64, frame: [UInt8], count: Int) throws {
        le32(UInt32(timeMicros / 1_000_000))
        le32(UInt32(timeMicros % 1_000_000))
        le32(UInt32(count)); le32(UInt32(count))
        frame.withUnsafeBufferPointer { buffer.append(contentsOf: $0[0..<count]) }
        if buffer.count >= (1 << 22) - 2048 { try flush() }
    }

    mutating func flush() throws {
        try handle.write(contentsOf: buffer)
        written += buffer.count
        buffer.removeAll(keepingCapacity: true)
    }

    private mutating func le32(_ v: UInt32) {
        buffer.append(UInt8(truncatingIfNeeded: v)); buffer.append(UInt8(truncatingIfNeeded: v >> 8))
        buffer.append(UInt8(truncatingIfNeeded: v >> 16)); buffer.append(UInt8(truncatingIfNeeded: v >> 24))
    }

    private mutating func le16(_ v: UInt16) {
        buffer.append(UInt8(truncatingIfNeeded: v)); buffer.append(UInt8(v >> 8))
    }
}
