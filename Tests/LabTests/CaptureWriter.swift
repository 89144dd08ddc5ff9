import Foundation

/// Writes a classic pcap file (Ethernet, microsecond timestamps) of IPv4
/// and IPv6 packets built byte by byte.
struct CaptureWriter {
    private var packets: [(time: Double, frame: [UInt8])] = []

    static func be16(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xFF)] }

    mutating func ipv4(at time: Double, _ src: [UInt8], _ dst: [UInt8], proto: UInt8, l4: [UInt8]) {
        var frame: [UInt8] = [2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00]
        frame += [0x45, 0] + Self.be16(UInt16(20 + l4.count)) + [0, 0, 0x40, 0, 64, proto, 0, 0] + src + dst
        packets.append((time, frame + l4))
    }

    mutating func ipv6(at time: Double, _ src: [UInt8], _ dst: [UInt8], proto: UInt8, l4: [UInt8]) {
        var frame: [UInt8] = [2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x86, 0xDD]
        frame += [0x60, 0, 0, 0] + Self.be16(UInt16(l4.count)) + [proto, 64] + src + dst
        packets.append((time, frame + l4))
    }

    /// One UDP datagram, over IPv6 when the addresses have 16 bytes.
    mutating func udp(at time: Double, _ src: [UInt8], _ dst: [UInt8], sport: UInt16, dport: UInt16, payload: Int) {
        let l4 = Self.be16(sport) + Self.be16(dport) + Self.be16(UInt16(8 + payload)) + [0, 0] + [UInt8](repeating: 0x64, count: payload)
        if src.count == 16 { ipv6(at: time, src, dst, proto: 17, l4: l4) } else { ipv4(at: time, src, dst, proto: 17, l4: l4) }
    }

    /// One TCP segment; `flags` as in the header (0x02 SYN, 0x12 SYN-ACK, 0x10 ACK, 0x18 PSH-ACK, 0x11 FIN-ACK, 0x14 RST-ACK).
    mutating func tcp(at time: Double, _ src: [UInt8], _ dst: [UInt8], sport: UInt16, dport: UInt16, flags: UInt8, payload: Int = 0) {
        var h = Self.be16(sport) + Self.be16(dport) + [0, 0, 0, 1, 0, 0, 0, 1]
        h += [0x50, flags] + Self.be16(64240) + [0, 0, 0, 0]
        ipv4(at: time, src, dst, proto: 6, l4: h + [UInt8](repeating: 0x61, count: payload))
    }

    mutating func tcpSession(at t: Double, _ c: [UInt8], _ s: [UInt8], sport: UInt16, dport: UInt16, responseSegments: Int) {
        var time = t
        func next(_ ms: Double) -> Double { time += ms / 1000; return time }
        tcp(at: next(0), c, s, sport: sport, dport: dport, flags: 0x02)
        tcp(at: next(0.2), s, c, sport: dport, dport: sport, flags: 0x12)
        tcp(at: next(0.1), c, s, sport: sport, dport: dport, flags: 0x10)
        tcp(at: next(0.1), c, s, sport: sport, dport: dport, flags: 0x18, payload: 250)
        for _ in 0..<responseSegments {
            tcp(at: next(0.3), s, c, sport: dport, dport: sport, flags: 0x10, payload: 1400)
            tcp(at: next(0.05), c, s, sport: sport, dport: dport, flags: 0x10)
        }
        tcp(at: next(1), c, s, sport: sport, dport: dport, flags: 0x11)
        tcp(at: next(0.2), s, c, sport: dport, dport: sport, flags: 0x11)
        tcp(at: next(0.1), c, s, sport: sport, dport: dport, flags: 0x10)
    }

    mutating func udpExchange(at t: Double, _ c: [UInt8], _ s: [UInt8], sport: UInt16, dport: UInt16) {
        ipv4(at: t, c, s, proto: 17, l4: Self.be16(sport) + Self.be16(dport) + Self.be16(8 + 40) + [0, 0] + [UInt8](repeating: 0x62, count: 40))
        ipv4(at: t + 0.0008, s, c, proto: 17, l4: Self.be16(dport) + Self.be16(sport) + Self.be16(8 + 100) + [0, 0] + [UInt8](repeating: 0x63, count: 100))
    }

    mutating func ping(at t: Double, _ c: [UInt8], _ s: [UInt8]) {
        ipv4(at: t, c, s, proto: 1, l4: [8, 0, 0, 0, 0, 1, 0, 1] + [UInt8](repeating: 0, count: 56))
        ipv4(at: t + 0.0003, s, c, proto: 1, l4: [0, 0, 0, 0, 0, 1, 0, 1] + [UInt8](repeating: 0, count: 56))
    }

    /// The file's bytes, packets in time order.
    func bytes() -> [UInt8] {
        var data: [UInt8] = []
        func le32(_ v: UInt32) { data += withUnsafeBytes(of: v.littleEndian, Array.init) }
        func le16(_ v: UInt16) { data += withUnsafeBytes(of: v.littleEndian, Array.init) }
        le32(0xA1B2_C3D4); le16(2); le16(4); le32(0); le32(0); le32(65535); le32(1)
        for p in packets.sorted(by: { $0.time < $1.time }) {
            let seconds = p.time.rounded(.down)
            le32(UInt32(seconds)); le32(UInt32((p.time - seconds) * 1e6))
            le32(UInt32(p.frame.count)); le32(UInt32(p.frame.count))
            data += p.frame
        }
        return data
    }

    func write(to url: URL) throws { try Data(bytes()).write(to: url) }
}
