#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An IPv4 or IPv6 address held as 16 bytes in network order.
///
/// IPv4 is stored IPv4-mapped (`::ffff:a.b.c.d`), exactly as the kernel flow
/// key stores it, so addresses from every capture path compare and hash the
/// same. Ordering is lexicographic over the 16 bytes, which is the order the
/// bidirectional ``FlowKey`` uses to pick its "low" endpoint.
public struct IPAddress: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// Bytes 0–7 as a big-endian integer.
    public var high: UInt64
    /// Bytes 8–15 as a big-endian integer.
    public var low: UInt64

    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// An IPv4 address from its 32-bit value in host order (`0xC6120001` is 198.18.0.1).
    public init(ipv4 value: UInt32) {
        self.high = 0
        self.low = 0x0000_FFFF_0000_0000 | UInt64(value)
    }

    /// An address from 4 (IPv4) or 16 (IPv6) bytes in network order.
    public init?(bytes: some Collection<UInt8>) {
        var h: UInt64 = 0
        var l: UInt64 = 0
        switch bytes.count {
        case 4:
            var v: UInt32 = 0
            for b in bytes { v = v << 8 | UInt32(b) }
            self.init(ipv4: v)
            return
        case 16:
            for (i, b) in bytes.enumerated() {
                if i < 8 { h = h << 8 | UInt64(b) } else { l = l << 8 | UInt64(b) }
            }
            self.init(high: h, low: l)
        default:
            return nil
        }
    }

    /// Parses dotted-quad IPv4 or RFC 4291 IPv6 text; `nil` for anything else,
    /// including text with a NUL byte or any character an address never has.
    public init?(_ text: some StringProtocol) {
        var buffer = [UInt8](repeating: 0, count: 16)
        let string = String(text)
        // inet_pton reads a C string, so "198.18.0.1\0junk" would parse as the
        // bare address; check the whole text ourselves first.
        guard string.utf8.count <= 45, string.utf8.allSatisfy({ c in
            (c >= 48 && c <= 57) || (c >= 97 && c <= 102) || (c >= 65 && c <= 70) || c == 46 || c == 58
        }) else { return nil }
        if string.contains(":") {
            guard inet_pton(AF_INET6, string, &buffer) == 1 else { return nil }
            self.init(bytes: buffer)
        } else {
            guard inet_pton(AF_INET, string, &buffer) == 1 else { return nil }
            self.init(bytes: buffer[0..<4])
        }
    }

    /// True for IPv4-mapped addresses.
    public var isIPv4: Bool { high == 0 && (low >> 32) == 0x0000_FFFF }

    /// The IPv4 value in host order, or `nil` for IPv6.
    public var ipv4Value: UInt32? { isIPv4 ? UInt32(truncatingIfNeeded: low) : nil }

    /// The 16 bytes in network order.
    public var bytes: [UInt8] {
        var out = [UInt8](repeating: 0, count: 16)
        for i in 0..<8 {
            out[i] = UInt8(truncatingIfNeeded: high >> UInt64(56 - 8 * i))
            out[8 + i] = UInt8(truncatingIfNeeded: low >> UInt64(56 - 8 * i))
        }
        return out
    }

    public var description: String {
        var out = [CChar](repeating: 0, count: 64)
        if let v4 = ipv4Value {
            var raw = v4.bigEndian
            _ = inet_ntop(AF_INET, &raw, &out, socklen_t(out.count))
        } else {
            var raw = bytes
            _ = inet_ntop(AF_INET6, &raw, &out, socklen_t(out.count))
        }
        return String(decoding: out.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    public static func < (a: IPAddress, b: IPAddress) -> Bool {
        (a.high, a.low) < (b.high, b.low)
    }
}
