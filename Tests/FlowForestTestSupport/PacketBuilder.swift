/// Builds wire-format frames for parser tests, byte by byte.
public struct PacketBuilder {
    public var vlanTags: [UInt16] = []
    public var ipv4Options = 0
    public var ipv6Extensions: [UInt8] = []   // next-header values of extension headers to insert
    public var ipv6ExtensionUnits: UInt8 = 0  // Hdr Ext Len of those that are not fragment headers: 8 × (1 + units) bytes each
    public var fragmentOffset: UInt16 = 0     // in 8-byte units
    public var moreFragments = false

    public init() {}

    public static func be16(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xFF)] }

    public func ethernet(etherType: UInt16, payload: [UInt8]) -> [UInt8] {
        var f: [UInt8] = [0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1]
        var types = vlanTags.map { _ in UInt16(0x8100) } + [etherType]
        if vlanTags.count == 2 { types[0] = 0x88A8 }
        f += Self.be16(types[0])
        for (i, tag) in vlanTags.enumerated() { f += Self.be16(tag) + Self.be16(types[i + 1]) }
        return f + payload
    }

    public func tcp(sport: UInt16, dport: UInt16, flags: UInt8, window: UInt16 = 64240, payload: Int = 0, options: Int = 0) -> [UInt8] {
        var h = Self.be16(sport) + Self.be16(dport) + [0, 0, 0, 1, 0, 0, 0, 0]
        h += [UInt8((20 + options) / 4) << 4, flags] + Self.be16(window) + [0, 0, 0, 0]
        h += [UInt8](repeating: 1, count: options)
        return h + [UInt8](repeating: 0xAB, count: payload)
    }

    public func udp(sport: UInt16, dport: UInt16, payload: Int) -> [UInt8] {
        Self.be16(sport) + Self.be16(dport) + Self.be16(UInt16(8 + payload)) + [0, 0] + [UInt8](repeating: 0xCD, count: payload)
    }

    public func icmp(type: UInt8, code: UInt8, payload: Int = 56) -> [UInt8] {
        [type, code, 0, 0, 0, 1, 0, 1] + [UInt8](repeating: 0, count: payload)
    }

    public func ipv4(src: [UInt8], dst: [UInt8], proto: UInt8, l4: [UInt8], totalLengthOverride: Int? = nil) -> [UInt8] {
        let headerLength = 20 + ipv4Options
        let total = totalLengthOverride ?? headerLength + l4.count
        var flagsFrag = fragmentOffset
        if moreFragments { flagsFrag |= 0x2000 }
        var h: [UInt8] = [0x40 | UInt8(headerLength / 4), 0] + Self.be16(UInt16(total)) + [0x12, 0x34] + Self.be16(flagsFrag)
        h += [64, proto, 0, 0] + src + dst + [UInt8](repeating: 1, count: ipv4Options)
        return h + l4
    }

    public func ipv6(src: [UInt8], dst: [UInt8], proto: UInt8, l4: [UInt8]) -> [UInt8] {
        var ext: [UInt8] = []
        let chain = ipv6Extensions + [proto]
        for (i, kind) in ipv6Extensions.enumerated() {
            let next = chain[i + 1]
            if kind == 44 {
                var fo = fragmentOffset << 3
                if moreFragments { fo |= 1 }
                ext += [next, 0] + Self.be16(fo) + [0, 0, 0, 7]
            } else {
                // A PadN option, then Pad1 options to the header's length.
                ext += [next, ipv6ExtensionUnits, 1, 4, 0, 0, 0, 0] + [UInt8](repeating: 0, count: 8 * Int(ipv6ExtensionUnits))
            }
        }
        let payload = ext + l4
        let first = ipv6Extensions.first ?? proto
        return [0x60, 0, 0, 0] + Self.be16(UInt16(payload.count)) + [first, 64] + src + dst + payload
    }

    public static let a4: [UInt8] = [198, 18, 0, 1]
    public static let b4: [UInt8] = [198, 18, 0, 2]
    public static let a6: [UInt8] = [0x20, 0x01, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]
    public static let b6: [UInt8] = [0x20, 0x01, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]
}
