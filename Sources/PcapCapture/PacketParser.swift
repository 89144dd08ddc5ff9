public import FlowForestCore

/// Why a frame was not turned into a ``PacketSummary``.
public enum UnparsedReason: String, Sendable, Hashable {
    /// ARP, LLDP, MPLS, a third VLAN tag, ...: not an IP packet we follow.
    case notIP = "not_ip"
    /// Headers cut short by the capture or by the packet's own lengths.
    case truncated
    /// Headers that contradict themselves (bad version, lengths, offsets).
    case malformed
}

/// The result of parsing one frame.
public enum ParseResult: Sendable, Hashable {
    case packet(PacketSummary)
    case unparsed(UnparsedReason)
}

/// Link-layer header types FlowForest reads (libpcap's DLT/LINKTYPE values).
public enum LinkType: Int32, Sendable {
    case null = 0          // BSD loopback: 4-byte address family
    case ethernet = 1
    case raw = 12          // DLT_RAW on Linux/OpenBSD: starts at the IP header
    case loop = 108
    case linktypeRaw = 101
    case linuxSLL = 113
    case ipv4 = 228
    case ipv6 = 229
    case linuxSLL2 = 276
}

/// Turns raw frames into ``PacketSummary`` values with the rules of
/// `bpf/flow_types.h`, so libpcap and eBPF capture agree packet for packet:
/// Ethernet with up to two VLAN tags, IPv4 with its real header length
/// (ports only from first fragments), IPv6 with up to
/// ``maxIPv6ExtensionHeaders`` extension headers, TCP, UDP, ICMP/ICMPv6.
///
/// Every length is checked before it is used: a frame that lies about its
/// lengths is reported as malformed, never attributed to a flow.
public struct PacketParser: Sendable {
    /// Extension headers walked before an IPv6 packet counts as malformed
    /// (the BPF program's verifier-friendly loop has the same bound).
    public static let maxIPv6ExtensionHeaders = 6

    /// The most bytes of a frame the parser can need: the longest link
    /// header it reads (Linux cooked v2, 20 bytes) with two VLAN
    /// tags, an IPv6 header, the longest extension headers it walks (2,048
    /// bytes each, the most their length field says) and the 20 bytes of a
    /// TCP header it reads (ports, flags, window). Live capture keeps this
    /// much of each packet, so a sender cannot hide its ports behind padding
    /// that the eBPF program reads past.
    public static let deepestHeaderBytes = 20 + 2 * 4 + 40 + maxIPv6ExtensionHeaders * 2_048 + 20

    public var linkType: LinkType
    public var interfaceIndex: UInt32

    public init(linkType: LinkType, interfaceIndex: UInt32 = 0) {
        self.linkType = linkType
        self.interfaceIndex = interfaceIndex
    }

    /// Parses one frame.
    /// - Parameters:
    ///   - frame: the captured bytes (possibly cut at the snap length).
    ///   - wireLength: the frame's length on the wire.
    ///   - timestampNs: capture time, ns since the epoch.
    public func parse(_ frame: UnsafeRawBufferPointer, wireLength: Int, timestampNs: UInt64) -> ParseResult {
        let b = Bytes(frame)
        var offset = 0
        var etherType: UInt16
        var vlan: UInt16 = 0
        switch linkType {
        case .ethernet:
            guard b.count >= 14 else { return .unparsed(.truncated) }
            etherType = b.u16(12)
            offset = 14
        case .linuxSLL:
            guard b.count >= 16 else { return .unparsed(.truncated) }
            etherType = b.u16(14)
            offset = 16
        case .linuxSLL2:
            guard b.count >= 20 else { return .unparsed(.truncated) }
            etherType = b.u16(0)
            offset = 20
        case .null, .loop:
            guard b.count >= 4 else { return .unparsed(.truncated) }
            // The address family is in network order for DLT_LOOP and in the
            // writing host's order for DLT_NULL: a family read with its low
            // half zero was written big-endian (families are small numbers).
            var family = linkType == .loop ? UInt32(b.u16(0)) << 16 | UInt32(b.u16(2)) : UInt32(b[0]) | UInt32(b[1]) << 8 | UInt32(b[2]) << 16 | UInt32(b[3]) << 24
            if linkType == .null, family & 0xFFFF == 0 { family = family.byteSwapped }
            etherType = family == 2 ? 0x0800 : (family == 10 || family == 24 || family == 28 || family == 30) ? 0x86DD : 0
            offset = 4
        case .raw, .linktypeRaw, .ipv4, .ipv6:
            guard b.count >= 1 else { return .unparsed(.truncated) }
            etherType = b[0] >> 4 == 4 ? 0x0800 : b[0] >> 4 == 6 ? 0x86DD : 0
        }
        // Tags after the link header: Ethernet's, and the one libpcap puts
        // back in front of a cooked (SLL) capture's IP header from the
        // packet's metadata, so `-i any` captures of a trunk parse too.
        var tags = 0
        while etherType == 0x8100 || etherType == 0x88A8 || etherType == 0x9100 {
            guard tags < 2 else { return .unparsed(.notIP) }
            guard b.count >= offset + 4 else { return .unparsed(.truncated) }
            if tags == 0 { vlan = b.u16(offset) & 0x0FFF }
            etherType = b.u16(offset + 2)
            offset += 4
            tags += 1
        }
        let available = wireLength - offset
        switch etherType {
        case 0x0800: return parseIPv4(b, at: offset, available: available, vlan: vlan, ts: timestampNs)
        case 0x86DD: return parseIPv6(b, at: offset, available: available, vlan: vlan, ts: timestampNs)
        default: return .unparsed(.notIP)
        }
    }

    private func parseIPv4(_ b: Bytes, at l3: Int, available: Int, vlan: UInt16, ts: UInt64) -> ParseResult {
        guard b.count >= l3 + 20 else { return .unparsed(.truncated) }
        guard b[l3] >> 4 == 4 else { return .unparsed(.malformed) }
        let headerLength = Int(b[l3] & 0x0F) * 4
        let totalLength = Int(b.u16(l3 + 2))
        guard headerLength >= 20, totalLength >= headerLength, totalLength <= available else { return .unparsed(.malformed) }
        guard b.count >= l3 + headerLength else { return .unparsed(.truncated) }
        let fragmentOffset = b.u16(l3 + 6) & 0x1FFF
        let proto = b[l3 + 9]
        var packet = PacketSummary(
            timestampNs: ts,
            source: IPAddress(ipv4: b.u32(l3 + 12)), destination: IPAddress(ipv4: b.u32(l3 + 16)),
            ipProtocol: proto, vlan: vlan, ipLength: UInt32(totalLength), interfaceIndex: interfaceIndex)
        return transport(b, into: &packet, at: l3 + headerLength, length: totalLength - headerLength,
                         firstFragment: fragmentOffset == 0, v6: false)
    }

    private func parseIPv6(_ b: Bytes, at l3: Int, available: Int, vlan: UInt16, ts: UInt64) -> ParseResult {
        guard b.count >= l3 + 40 else { return .unparsed(.truncated) }
        guard b[l3] >> 4 == 6 else { return .unparsed(.malformed) }
        let totalLength = Int(b.u16(l3 + 4)) + 40
        guard totalLength <= available else { return .unparsed(.malformed) }
        var next = b[l3 + 6]
        var offset = l3 + 40
        var firstFragment = true
        var headers = 0
        extensionHeaders: while true {
            let headerLength: Int
            switch next {
            case 0, 43, 60: // hop-by-hop, routing, destination options
                guard b.count >= offset + 2 else { return .unparsed(.truncated) }
                headerLength = (Int(b[offset + 1]) + 1) * 8
            case 51: // authentication header
                guard b.count >= offset + 2 else { return .unparsed(.truncated) }
                headerLength = (Int(b[offset + 1]) + 2) * 4
            case 44: // fragment
                guard b.count >= offset + 8 else { return .unparsed(.truncated) }
                headerLength = 8
                if b.u16(offset + 2) >> 3 != 0 { firstFragment = false }
            default:
                break extensionHeaders
            }
            headers += 1
            guard headers <= PacketParser.maxIPv6ExtensionHeaders, offset + headerLength <= l3 + totalLength
            else { return .unparsed(.malformed) }
            next = b[offset]
            offset += headerLength
            // A later fragment carries the middle of the original packet,
            // not headers: its Next Header names the original's first header.
            if !firstFragment { break }
        }
        var packet = PacketSummary(
            timestampNs: ts,
            source: IPAddress(high: b.u64(l3 + 8), low: b.u64(l3 + 16)),
            destination: IPAddress(high: b.u64(l3 + 24), low: b.u64(l3 + 32)),
            ipProtocol: next, vlan: vlan, ipLength: UInt32(totalLength), interfaceIndex: interfaceIndex)
        return transport(b, into: &packet, at: offset, length: l3 + totalLength - offset,
                         firstFragment: firstFragment, v6: true)
    }

    /// Fills ports, flags and payload from the transport header at `l4`,
    /// whose packet declares `length` bytes from there on.
    private func transport(_ b: Bytes, into p: inout PacketSummary, at l4: Int, length: Int, firstFragment: Bool, v6: Bool) -> ParseResult {
        guard firstFragment else {
            // Later fragments carry no transport header: ports stay 0.
            p.payloadLength = UInt32(length)
            return .packet(p)
        }
        switch p.ipProtocol {
        case IPProtocol.tcp:
            guard length >= 20 else { return .unparsed(.malformed) }
            guard b.count >= l4 + 20 else { return .unparsed(.truncated) }
            let dataOffset = Int(b[l4 + 12] >> 4) * 4
            guard dataOffset >= 20, dataOffset <= length else { return .unparsed(.malformed) }
            p.sourcePort = b.u16(l4)
            p.destinationPort = b.u16(l4 + 2)
            p.tcpFlags = TCPFlags(rawValue: b[l4 + 13])
            p.tcpWindow = b.u16(l4 + 14)
            p.payloadLength = UInt32(length - dataOffset)
        case IPProtocol.udp:
            guard length >= 8 else { return .unparsed(.malformed) }
            guard b.count >= l4 + 8 else { return .unparsed(.truncated) }
            p.sourcePort = b.u16(l4)
            p.destinationPort = b.u16(l4 + 2)
            p.payloadLength = UInt32(length - 8)
        case IPProtocol.sctp:
            // Ports lead the 12-byte common header, as in UDP.
            guard length >= 12 else { return .unparsed(.malformed) }
            guard b.count >= l4 + 4 else { return .unparsed(.truncated) }
            p.sourcePort = b.u16(l4)
            p.destinationPort = b.u16(l4 + 2)
            p.payloadLength = UInt32(length - 12)
        case IPProtocol.icmp where !v6, IPProtocol.icmpv6 where v6:
            guard length >= 4 else { return .unparsed(.malformed) }
            guard b.count >= l4 + 4 else { return .unparsed(.truncated) }
            p.icmpType = b[l4]
            p.icmpCode = b[l4 + 1]
            (p.sourcePort, p.destinationPort) = IPProtocol.icmpPorts(type: p.icmpType, code: p.icmpCode, v6: v6)
            p.payloadLength = UInt32(max(0, length - 8))
        default:
            p.payloadLength = UInt32(length)
        }
        return .packet(p)
    }
}

/// Big-endian reads over captured bytes. Callers check `count` first: the
/// subscripts are bounds-checked in debug builds only, which the parser's
/// fuzz tests run: a read past a guard traps there; a release build would
/// read on.
struct Bytes {
    let base: UnsafeRawBufferPointer
    init(_ base: UnsafeRawBufferPointer) { self.base = base }
    var count: Int { base.count }
    subscript(_ i: Int) -> UInt8 { base[i] }
    func u16(_ i: Int) -> UInt16 { UInt16(base[i]) << 8 | UInt16(base[i + 1]) }
    func u32(_ i: Int) -> UInt32 { UInt32(u16(i)) << 16 | UInt32(u16(i + 2)) }
    func u64(_ i: Int) -> UInt64 { UInt64(u32(i)) << 32 | UInt64(u32(i + 4)) }
}
