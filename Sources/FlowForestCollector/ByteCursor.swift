/// Big-endian reads from a datagram that never go past `end`: every read
/// returns nil instead, so hostile lengths cannot trap.
struct ByteCursor {
    let bytes: [UInt8]
    private(set) var offset: Int
    let end: Int

    init(_ bytes: [UInt8], from offset: Int = 0, end: Int? = nil) {
        self.bytes = bytes
        self.end = min(end ?? bytes.count, bytes.count)
        self.offset = min(max(0, offset), self.end)
    }

    var remaining: Int { end - offset }

    mutating func u8() -> UInt8? {
        guard offset < end else { return nil }
        defer { offset += 1 }
        return bytes[offset]
    }

    mutating func u16() -> UInt16? { uint(2).map { UInt16(truncatingIfNeeded: $0) } }
    mutating func u32() -> UInt32? { uint(4).map { UInt32(truncatingIfNeeded: $0) } }

    /// An unsigned integer of 1...8 bytes (IPFIX reduced-size encoding).
    mutating func uint(_ length: Int) -> UInt64? {
        guard length >= 1, length <= 8, length <= remaining else { return nil }
        var v: UInt64 = 0
        for i in offset..<offset + length { v = v << 8 | UInt64(bytes[i]) }
        offset += length
        return v
    }

    /// A cursor over the next `length` bytes, which this one skips.
    mutating func take(_ length: Int) -> ByteCursor? {
        guard length >= 0, length <= remaining else { return nil }
        defer { offset += length }
        return ByteCursor(bytes, from: offset, end: offset + length)
    }

    mutating func skip(_ length: Int) -> Bool {
        guard length >= 0, length <= remaining else { return false }
        offset += length
        return true
    }
}
