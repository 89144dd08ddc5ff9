import FlowForestCore
import FlowForestTestSupport
import Testing
@testable import PcapCapture

@Suite("Packet parser")
struct PacketParserTests {
    let b = PacketBuilder()

    @Test("IPv4 TCP: addresses, ports, flags, window, IP-layer length, payload")
    func ipv4TCP() throws {
        let l4 = b.tcp(sport: 40000, dport: 80, flags: 0x18, window: 512, payload: 100, options: 12)
        let frame = b.ethernet(etherType: 0x0800, payload: b.ipv4(src: PacketBuilder.a4, dst: PacketBuilder.b4, proto: 6, l4: l4))
        let p = try #require(parse(frame).packet)
        #expect(p.source == IPAddress("198.18.0.1"))
        #expect(p.destination == IPAddress("198.18.0.2"))
        #expect(p.sourcePort == 40000 && p.destinationPort == 80)
        #expect(p.ipProtocol == 6)
        #expect(p.tcpFlags == [.psh, .ack])
        #expect(p.tcpWindow == 512)
        #expect(p.ipLength == 20 + 32 + 100)
        #expect(p.payloadLength == 100)
        #expect(p.vlan == 0)
    }

    @Test("SCTP: ports from the common header, so each probed port is its own flow; a header cut short is malformed")
    func sctpPorts() throws {
        // Common header (ports, verification tag, checksum) and a 20-byte INIT chunk.
        let common = PacketBuilder.be16(51000) + PacketBuilder.be16(3868) + [UInt8](repeating: 0, count: 8)
        let initChunk: [UInt8] = [1, 0, 0, 20] + [UInt8](repeating: 7, count: 16)
        let frame = b.ethernet(etherType: 0x0800, payload: b.ipv4(src: PacketBuilder.a4, dst: PacketBuilder.b4, proto: 132, l4: common + initChunk))
        let p = try #require(parse(frame).packet)
        #expect(p.ipProtocol == 132)
        #expect(p.sourcePort == 51000 && p.destinationPort == 3868)
        #expect(p.payloadLength == 20)
        let short = b.ethernet(etherType: 0x0800, payload: b.ipv4(src: PacketBuilder.a4, dst: PacketBuilder.b4, proto: 132, l4: Array(common.prefix(8))))
        #expect(parse(short) == .unparsed(.malformed))
    }

    @Test("IPv4 options: the real header length finds the transport header")
    func ipv4Options() throws {
        var builder = b
        builder.ipv4Options = 12
        let frame = builder.ethernet(etherType: 0x0800, payload: builder.ipv4(src: PacketBuilder.a4, dst: PacketBuilder.b4, proto: 17, l4: builder.udp(sport: 53, dport: 5353, payload: 30)))
        let p = try #require(parse(frame).packet)
        #expect(p.sourcePort == 53 && p.destinationPort == 5353)
        #expect(p.ipLength == 32 + 8 + 30)
        #expect(p.payloadLength == 30)
    }

    @Test("Ethernet padding does not count: bytes come from the IP total length")
    func ethernetPadding() throws {
        let frame = b.ethernet(etherType: 0x0800, payload: b.ipv4(src: PacketBuilder.a4, dst: PacketBuilder.b4, proto: 6, l4: b.tcp(sport: 1, dport: 2, flags: 0x10))) + [UInt8](repeating: 0, count: 6)
        let p = try #require(parse(frame).packet)
        #expect(p.ipLength == 40)
    }

    @Test("One and two VLAN tags: the outer id is kept", arguments: [[UInt16(100)], [UInt16(200), UInt16(300)]])
    func vlan(tags: [UInt16]) throws {
        var builder = b
        builder.vlanTags = tags
        let frame = builder.ethernet(etherType: 0x0800, payload: builder.ipv4(src: PacketBuilder.a4, dst: PacketBuilder.b4, proto: 17, l4: builder.udp(sport: 1000, dport: 2000, payload: 10)))
        let p = try #require(parse(frame).packet)
        #expect(p.vlan == tags[0])
        #expect(p.destinationPort == 2000)
    }

    @Test("A third VLAN tag is not followed")
    func threeTags() {
        var builder = b
        builder.vlanTags = [1, 2]
        var frame = builder.ethernet(etherType: 0x8100, payload: [0, 3, 0x08, 0x00] + builder.ipv4(src: PacketBuilder.a4, dst: PacketBuilder.b4, proto: 17, l4: builder.udp(sport: 1, dport: 2, payload: 0)))
        frame[12] = 0x88; frame[13] = 0xA8
        #expect(parse(frame) == .unparsed(.notIP))
    }

    @Test("IPv4 fragments: ports from the first only; later fragments count under port 0")
    func ipv4Fragments() throws {
        var first = b
        first.moreFragments = true
        let f1 = first.ethernet(etherType: 0x0800, payload: first.ipv4(src: PacketBuilder.a4, dst: PacketBuilder.b4, proto: 17, l4: first.udp(sport: 7000, dport: 9000, payload: 1472)))
        var later = b
        later.fragmentOffset = 185
        let f2 = later.ethernet(etherType: 0x0800, payload: later.ipv4(src: PacketBuilder.a4, dst: PacketBuilder.b4, proto: 17, l4: [UInt8](repeating: 7, count: 528)))
        let p1 = try #require(parse(f1).packet)
        let p2 = try #require(parse(f2).packet)
        #expect(p1.sourcePort == 7000 && p1.destinationPort == 9000 && p1.ipLength == 1500)
        #expect(p2.sourcePort == 0 && p2.destinationPort == 0 && p2.ipProtocol == 17 && p2.ipLength == 548)
    }

    @Test("IPv6 TCP with extension headers (hop-by-hop, destination options)")
    func ipv6Extensions() throws {
        var builder = b
        builder.ipv6Extensions = [0, 60]
        let frame = builder.ethernet(etherType: 0x86DD, payload: builder.ipv6(src: PacketBuilder.a6, dst: PacketBuilder.b6, proto: 6, l4: builder.tcp(sport: 443, dport: 50000, flags: 0x12)))
        let p = try #require(parse(frame).packet)
        #expect(p.source == IPAddress("2001:2::1"))
        #expect(p.destination == IPAddress("2001:2::2"))
        #expect(p.ipProtocol == 6)
        #expect(p.sourcePort == 443 && p.destinationPort == 50000)
        #expect(p.tcpFlags == [.syn, .ack])
        #expect(p.ipLength == 40 + 16 + 20)
    }

    @Test("IPv6 fragments: the first has ports, a later one does not")
    func ipv6Fragments() throws {
        var first = b
        first.ipv6Extensions = [44]
        first.moreFragments = true
        var later = first
        later.fragmentOffset = 100
        later.moreFragments = false
        let p1 = try #require(parse(first.ethernet(etherType: 0x86DD, payload: first.ipv6(src: PacketBuilder.a6, dst: PacketBuilder.b6, proto: 17, l4: first.udp(sport: 5, dport: 6, payload: 100)))).packet)
        let p2 = try #require(parse(later.ethernet(etherType: 0x86DD, payload: later.ipv6(src: PacketBuilder.a6, dst: PacketBuilder.b6, proto: 17, l4: [UInt8](repeating: 1, count: 64)))).packet)
        #expect(p1.ipProtocol == 17 && p1.sourcePort == 5 && p1.destinationPort == 6)
        #expect(p2.ipProtocol == 17 && p2.sourcePort == 0 && p2.destinationPort == 0)
    }

    @Test("A later IPv6 fragment ends at its fragment header: the bytes after it are payload, not headers")
    func ipv6LaterFragmentPayloadIsNotHeaders() throws {
        // The original packet had a destination options header first; a later
        // fragment's payload happens to look like a header chain.
        var later = b
        later.ipv6Extensions = [44]
        later.fragmentOffset = 3
        let lookalike: [UInt8] = [17, 0, 1, 4, 0, 0, 0, 0] + [UInt8](repeating: 0xEE, count: 40)
        let frame = later.ethernet(etherType: 0x86DD, payload: later.ipv6(src: PacketBuilder.a6, dst: PacketBuilder.b6, proto: 60, l4: lookalike))
        let p = try #require(parse(frame).packet)
        #expect(p.ipProtocol == 60 && p.sourcePort == 0 && p.destinationPort == 0)
        #expect(p.payloadLength == UInt32(lookalike.count))
        // Past the extension-header bound, a later fragment is still a packet.
        var deep = later
        deep.ipv6Extensions = [UInt8](repeating: 60, count: PacketParser.maxIPv6ExtensionHeaders - 1) + [44]
        let deepFrame = deep.ethernet(etherType: 0x86DD, payload: deep.ipv6(src: PacketBuilder.a6, dst: PacketBuilder.b6, proto: 60, l4: lookalike + lookalike))
        #expect(parse(deepFrame).packet?.ipProtocol == 60)
    }

    @Test("the deepest headers the parser reads fit in live capture's snap length: a frame cut there still gives its ports")
    func deepestHeadersFitSnapLength() throws {
        var builder = b
        builder.ipv6Extensions = [UInt8](repeating: 60, count: PacketParser.maxIPv6ExtensionHeaders)
        builder.ipv6ExtensionUnits = 255
        let ip = builder.ipv6(src: PacketBuilder.a6, dst: PacketBuilder.b6, proto: 6,
                              l4: builder.tcp(sport: 40000, dport: 443, flags: 0x02, payload: 500, options: 40))
        // The longest link header the parser reads, Linux cooked v2, then two tags.
        let sll2: [UInt8] = [0x88, 0xA8] + [UInt8](repeating: 0, count: 18) + [0, 10, 0x81, 0x00] + [0, 20, 0x86, 0xDD]
        let frame = sll2 + ip
        let snap = Int(PcapLiveSource.snapLength)
        #expect(frame.count > snap)
        let p = try #require(parse(frame, captured: snap, linkType: .linuxSLL2).packet)
        #expect(p.ipProtocol == 6 && p.sourcePort == 40000 && p.destinationPort == 443 && p.payloadLength == 500 && p.vlan == 10)
        // One byte less and the TCP header is cut: the bound is exact, not generous.
        #expect(parse(frame, captured: snap - 1, linkType: .linuxSLL2) == .unparsed(.truncated))
    }

    @Test("Too many IPv6 extension headers is malformed")
    func ipv6TooManyExtensions() {
        var builder = b
        builder.ipv6Extensions = [UInt8](repeating: 60, count: PacketParser.maxIPv6ExtensionHeaders + 1)
        let frame = builder.ethernet(etherType: 0x86DD, payload: builder.ipv6(src: PacketBuilder.a6, dst: PacketBuilder.b6, proto: 17, l4: builder.udp(sport: 1, dport: 2, payload: 0)))
        #expect(parse(frame) == .unparsed(.malformed))
    }

    @Test("ICMP echo request and reply map to one flow's two directions")
    func icmpEcho() throws {
        let request = try #require(parse(b.ethernet(etherType: 0x0800, payload: b.ipv4(src: PacketBuilder.a4, dst: PacketBuilder.b4, proto: 1, l4: b.icmp(type: 8, code: 0)))).packet)
        let reply = try #require(parse(b.ethernet(etherType: 0x0800, payload: b.ipv4(src: PacketBuilder.b4, dst: PacketBuilder.a4, proto: 1, l4: b.icmp(type: 0, code: 0)))).packet)
        #expect(request.icmpType == 8 && reply.icmpType == 0)
        #expect(request.ipLength == 84)
        #expect(FlowKey.of(request).key == FlowKey.of(reply).key)
        #expect(FlowKey.of(request).senderIsLow != FlowKey.of(reply).senderIsLow)
    }

    @Test("ICMP unreachable is its own flow, apart from echo")
    func icmpUnreachable() throws {
        let echo = try #require(parse(b.ethernet(etherType: 0x0800, payload: b.ipv4(src: PacketBuilder.b4, dst: PacketBuilder.a4, proto: 1, l4: b.icmp(type: 0, code: 0)))).packet)
        let unreachable = try #require(parse(b.ethernet(etherType: 0x0800, payload: b.ipv4(src: PacketBuilder.b4, dst: PacketBuilder.a4, proto: 1, l4: b.icmp(type: 3, code: 3, payload: 28)))).packet)
        #expect(unreachable.icmpType == 3 && unreachable.icmpCode == 3)
        #expect(FlowKey.of(echo).key != FlowKey.of(unreachable).key)
    }

    @Test("ICMPv6 echo")
    func icmpv6() throws {
        let p = try #require(parse(b.ethernet(etherType: 0x86DD, payload: b.ipv6(src: PacketBuilder.a6, dst: PacketBuilder.b6, proto: 58, l4: b.icmp(type: 128, code: 0)))).packet)
        #expect(p.ipProtocol == 58 && p.icmpType == 128 && p.sourcePort == 128 && p.destinationPort == 129)
    }

    @Test("ARP is counted as not IP")
    func arp() {
        #expect(parse(b.ethernet(etherType: 0x0806, payload: [UInt8](repeating: 0, count: 28))) == .unparsed(.notIP))
    }

    @Test("Every cut of a valid frame is either parsed or unparsed, never a crash or a different flow")
    func everyTruncation() throws {
        var builder = b
        builder.vlanTags = [7]
        builder.ipv6Extensions = [0]
        let frame = builder.ethernet(etherType: 0x86DD, payload: builder.ipv6(src: PacketBuilder.a6, dst: PacketBuilder.b6, proto: 6, l4: builder.tcp(sport: 1234, dport: 22, flags: 2, payload: 10)))
        let whole = try #require(parse(frame).packet)
        for cut in 0..<frame.count {
            switch parse(frame, captured: cut) {
            case .packet(let p):
                // A snap length that still holds every header gives the same packet.
                #expect(p == whole, "cut at \(cut)")
            case .unparsed(let reason):
                #expect(reason == .truncated, "cut at \(cut)")
            }
        }
    }

    @Test("Lengths that lie are malformed, never attributed")
    func lyingLengths() {
        let l4 = b.tcp(sport: 1, dport: 2, flags: 2)
        // Total length beyond the frame.
        let tooLong = b.ethernet(etherType: 0x0800, payload: b.ipv4(src: PacketBuilder.a4, dst: PacketBuilder.b4, proto: 6, l4: l4, totalLengthOverride: 1500))
        #expect(parse(tooLong) == .unparsed(.malformed))
        // Total length shorter than the IP header.
        let tooShort = b.ethernet(etherType: 0x0800, payload: b.ipv4(src: PacketBuilder.a4, dst: PacketBuilder.b4, proto: 6, l4: l4, totalLengthOverride: 10))
        #expect(parse(tooShort) == .unparsed(.malformed))
        // Total length too short for the TCP header it claims.
        let noRoomForTCP = b.ethernet(etherType: 0x0800, payload: b.ipv4(src: PacketBuilder.a4, dst: PacketBuilder.b4, proto: 6, l4: l4, totalLengthOverride: 30))
        #expect(parse(noRoomForTCP) == .unparsed(.malformed))
        // IHL below 5.
        var badIHL = b.ethernet(etherType: 0x0800, payload: b.ipv4(src: PacketBuilder.a4, dst: PacketBuilder.b4, proto: 6, l4: l4))
        badIHL[14] = 0x44
        #expect(parse(badIHL) == .unparsed(.malformed))
        // Version 6 under an IPv4 ethertype.
        var badVersion = b.ethernet(etherType: 0x0800, payload: b.ipv4(src: PacketBuilder.a4, dst: PacketBuilder.b4, proto: 6, l4: l4))
        badVersion[14] = 0x65
        #expect(parse(badVersion) == .unparsed(.malformed))
        // TCP data offset below 5 words.
        var badOffset = b.ethernet(etherType: 0x0800, payload: b.ipv4(src: PacketBuilder.a4, dst: PacketBuilder.b4, proto: 6, l4: l4))
        badOffset[14 + 20 + 12] = 0x20
        #expect(parse(badOffset) == .unparsed(.malformed))
    }

    @Test("Random bytes never crash the parser")
    func fuzz() {
        let seed = FuzzSeed.current()
        var generator = seed.generator()
        for i in 0..<FuzzSeed.iterations(20_000) {
            let length = Int.random(in: 0..<120, using: &generator)
            var frame = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            if frame.count > 14, Bool.random(using: &generator) {
                frame[12] = 0x08
                frame[13] = Bool.random(using: &generator) ? 0x00 : 0xDD
                frame[14] = Bool.random(using: &generator) ? 0x45 : 0x60
            }
            if case .packet(let p) = parse(frame) {
                #expect(Int(p.ipLength) <= frame.count, "frame \(i), \(seed): \(frame)")
            }
        }
    }

    @Test("Linux cooked (SLL) and raw-IP link types")
    func otherLinkTypes() throws {
        let ip = b.ipv4(src: PacketBuilder.a4, dst: PacketBuilder.b4, proto: 17, l4: b.udp(sport: 1, dport: 2, payload: 3))
        let sll: [UInt8] = [0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0, 0x08, 0x00] + ip
        #expect(parse(sll, linkType: .linuxSLL).packet?.destinationPort == 2)
        #expect(parse(ip, linkType: .raw).packet?.destinationPort == 2)
    }

    @Test("a cooked capture (`-i any`) of a tagged frame: the tag libpcap puts back before the IP header is read, not taken for non-IP")
    func cookedWithTag() throws {
        let ip = b.ipv4(src: PacketBuilder.a4, dst: PacketBuilder.b4, proto: 17, l4: b.udp(sport: 1, dport: 2, payload: 3))
        let sll: [UInt8] = [0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0, 0x81, 0x00] + [0x20, 0x2A, 0x08, 0x00] + ip
        let p = try #require(parse(sll, linkType: .linuxSLL).packet)
        #expect(p.vlan == 42 && p.destinationPort == 2)
        // Three tags are not IP, as on Ethernet.
        let stacked: [UInt8] = [0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0, 0x81, 0x00] + [0, 1, 0x81, 0, 0, 2, 0x81, 0, 0, 3, 0x08, 0x00] + ip
        #expect(parse(stacked, linkType: .linuxSLL) == .unparsed(.notIP))
    }

    @Test("DLT_NULL's address family in either byte order: files written on big-endian hosts are IP too")
    func nullEitherOrder() {
        let ip = b.ipv4(src: PacketBuilder.a4, dst: PacketBuilder.b4, proto: 17, l4: b.udp(sport: 1, dport: 2, payload: 3))
        #expect(parse([2, 0, 0, 0] + ip, linkType: .null).packet?.destinationPort == 2)
        #expect(parse([0, 0, 0, 2] + ip, linkType: .null).packet?.destinationPort == 2)
        let ip6 = b.ipv6(src: PacketBuilder.a6, dst: PacketBuilder.b6, proto: 17, l4: b.udp(sport: 1, dport: 2, payload: 3))
        #expect(parse([0, 0, 0, 30] + ip6, linkType: .null).packet?.destinationPort == 2)
        #expect(parse([0, 0, 0, 7] + ip, linkType: .null) == .unparsed(.notIP))
    }
}
