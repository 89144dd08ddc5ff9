/// Ethernet frames a broken or hostile network sends: packets of every shape
/// the parsers follow (VLAN tags, IPv4 options, IPv6 extension chains,
/// fragments, TCP, UDP, SCTP, ICMP and other protocols), about a third of
/// them then damaged where parsers read lengths, offsets and types.
///
/// The destination MAC (02:00:00:00:00:02) is never touched, so a lab
/// receiver whose own address differs drops every frame after its hooks and
/// answers none. Frames are at most 1,514 bytes (a veth's MTU) and never cut
/// inside a VLAN tag that the kernel would untag, which it drops before any
/// hook sees the frame.
public enum HostileFrames {
    /// `count` frames drawn from `generator`.
    public static func make(count: Int, using generator: inout SplitMix64) -> [[UInt8]] {
        var frames: [[UInt8]] = []
        frames.reserveCapacity(count)
        while frames.count < count {
            var frame = wellFormed(using: &generator)
            if Int.random(in: 0..<3, using: &generator) == 0 { damage(&frame, using: &generator) }
            if frame.count > 1514 { frame.removeLast(frame.count - 1514) }
            guard frame.count >= 14, !cutInsideUntaggedVLAN(frame) else { continue }
            frames.append(frame)
        }
        return frames
    }

    /// The kernel moves an outer 802.1Q or 802.1ad tag into the packet's
    /// metadata before tc and socket filters run, and drops a frame too short
    /// for it (it needs the tag and the EtherType after it).
    static func cutInsideUntaggedVLAN(_ frame: [UInt8]) -> Bool {
        let type = UInt16(frame[12]) << 8 | UInt16(frame[13])
        return (type == 0x8100 || type == 0x88A8) && frame.count < 20
    }

    static func wellFormed(using g: inout SplitMix64) -> [UInt8] {
        var b = PacketBuilder()
        let tagCounts = [0, 0, 0, 0, 0, 0, 1, 1, 2, 3]
        b.vlanTags = (0..<tagCounts.randomElement(using: &g)!).map { _ in UInt16.random(in: 1...4094, using: &g) }
        let v6 = Bool.random(using: &g)
        if Int.random(in: 0..<5, using: &g) == 0 {
            b.fragmentOffset = Bool.random(using: &g) ? 0 : UInt16.random(in: 1...400, using: &g)
            b.moreFragments = Bool.random(using: &g)
        }
        if v6 {
            let kinds: [UInt8] = [0, 43, 60, 51, 44]
            let chain = Int.random(in: 0..<4, using: &g) == 0 ? Int.random(in: 1...8, using: &g) : 0
            b.ipv6Extensions = (0..<chain).map { _ in kinds.randomElement(using: &g)! }
            if b.fragmentOffset != 0 || b.moreFragments, !b.ipv6Extensions.contains(44) { b.ipv6Extensions.append(44) }
        } else {
            b.ipv4Options = [0, 0, 0, 4, 8, 40].randomElement(using: &g)!
        }
        let (proto, l4) = transport(b, v6: v6, using: &g)
        var src = v6 ? PacketBuilder.a6 : PacketBuilder.a4, dst = v6 ? PacketBuilder.b6 : PacketBuilder.b4
        src[src.count - 1] = UInt8.random(in: 1...4, using: &g)
        dst[dst.count - 1] = UInt8.random(in: 1...4, using: &g)
        let ip = v6 ? b.ipv6(src: src, dst: dst, proto: proto, l4: l4) : b.ipv4(src: src, dst: dst, proto: proto, l4: l4)
        return b.ethernet(etherType: v6 ? 0x86DD : 0x0800, payload: ip)
    }

    /// A transport header and payload, from few enough ports that flows see
    /// several packets each.
    static func transport(_ b: PacketBuilder, v6: Bool, using g: inout SplitMix64) -> (UInt8, [UInt8]) {
        let ports: [UInt16] = [53, 80, 443, 40000, 40001]
        let sport = ports.randomElement(using: &g)!, dport = ports.randomElement(using: &g)!
        let payload = Int.random(in: 0...120, using: &g)
        switch Int.random(in: 0..<20, using: &g) {
        case 0..<7:
            let flags = UInt8.random(in: 0...0x3F, using: &g)
            return (6, b.tcp(sport: sport, dport: dport, flags: flags, window: UInt16.random(in: 0...UInt16.max, using: &g),
                             payload: payload, options: 4 * Int.random(in: 0...10, using: &g)))
        case 7..<13:
            return (17, b.udp(sport: sport, dport: dport, payload: payload))
        case 13..<17:
            let types: [UInt8] = v6 ? [128, 129, 1, 3, 135, 136, 200] : [8, 0, 3, 11, 13, 14, 200]
            // Now and then the other family's ICMP, which is no ICMP to this one.
            let proto: UInt8 = Int.random(in: 0..<8, using: &g) == 0 ? (v6 ? 1 : 58) : (v6 ? 58 : 1)
            return (proto, b.icmp(type: types.randomElement(using: &g)!, code: UInt8.random(in: 0...3, using: &g), payload: payload))
        case 17:
            return (132, PacketBuilder.be16(sport) + PacketBuilder.be16(dport) + [UInt8](repeating: 0, count: 8 + payload))
        default:
            return ([0, 47, 50, 59, 89, 255].randomElement(using: &g)!, [UInt8](repeating: 0x5A, count: payload))
        }
    }

    /// One kind of damage: a frame cut short, a few bytes overwritten in the
    /// headers, an IP length that lies, or trailing bytes after the packet.
    static func damage(_ frame: inout [UInt8], using g: inout SplitMix64) {
        switch Int.random(in: 0..<4, using: &g) {
        case 0:
            frame.removeLast(Int.random(in: 1...max(1, frame.count - 14), using: &g))
        case 1:
            for _ in 0..<Int.random(in: 1...3, using: &g) {
                let at = Int.random(in: 12..<min(frame.count, 14 + 8 + 80), using: &g)
                frame[at] = UInt8.random(in: 0...255, using: &g)
            }
        case 2:
            // The length field after the last VLAN tag's EtherType: IPv4 total
            // length or IPv6 payload length.
            var l3 = 14
            while l3 + 4 <= frame.count, [0x81, 0x88, 0x91].contains(frame[l3 - 2]) { l3 += 4 }
            let at = frame[l3 - 2] == 0x86 ? l3 + 4 : l3 + 2
            guard at + 1 < frame.count else { return }
            let old = Int(frame[at]) << 8 | Int(frame[at + 1])
            let new = Bool.random(using: &g) ? Int.random(in: 0...0xFFFF, using: &g) : max(0, old + Int.random(in: -24...24, using: &g))
            frame[at] = UInt8(truncatingIfNeeded: new >> 8)
            frame[at + 1] = UInt8(truncatingIfNeeded: new)
        default:
            frame += (0..<Int.random(in: 1...40, using: &g)).map { _ in UInt8.random(in: 0...255, using: &g) }
        }
    }
}
