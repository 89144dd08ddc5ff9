import FlowForestCollector
import FlowForestCore
import Foundation

/// Test datagrams: the checked-in corpus, and a builder for hand-made ones.
enum Corpus {
    static let loopback = IPAddress("127.0.0.1")!

    static func load(_ name: String) throws -> [UInt8] {
        guard let url = Bundle.module.url(forResource: name, withExtension: "bin", subdirectory: "Fixtures") else {
            throw CocoaError(.fileNoSuchFile)
        }
        return [UInt8](try Data(contentsOf: url))
    }

    static let names = [
        "flowforest-ipfix-000", "flowforest-ipfix-001", "flowforest-ipfix-biflow-000", "flowforest-ipfix-biflow-001",
        "nfreplay-v5-000", "nfreplay-v9-000",
    ]

    /// The receiver clock of the corpus: a second after it was captured.
    static let receivedNs: UInt64 = 1_764_526_200_000_000_000
}

/// Big-endian datagram bytes.
struct Bytes {
    var bytes: [UInt8] = []

    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func u16(_ v: UInt16) { bytes += [UInt8(v >> 8), UInt8(v & 0xFF)] }
    mutating func u32(_ v: UInt32) { for s in stride(from: 24, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: v >> UInt32(s))) } }
    mutating func u64(_ v: UInt64) { for s in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: v >> UInt64(s))) } }
    mutating func set16(_ v: UInt16, at i: Int) { bytes[i] = UInt8(v >> 8); bytes[i + 1] = UInt8(v & 0xFF) }

    /// An IPFIX message of `sets` (each: set id and body), lengths filled in.
    static func ipfix(domain: UInt32 = 1, sequence: UInt32 = 0, exportTime: UInt32 = 1_764_526_199, sets: [(UInt16, [UInt8])]) -> [UInt8] {
        var b = Bytes()
        b.u16(10); b.u16(0); b.u32(exportTime); b.u32(sequence); b.u32(domain)
        for (id, body) in sets { b.u16(id); b.u16(UInt16(body.count + 4)); b.bytes += body }
        b.set16(UInt16(b.bytes.count), at: 2)
        return b.bytes
    }

    /// A NetFlow v9 datagram of `sets`.
    static func v9(sourceID: UInt32 = 0, sequence: UInt32 = 0, uptimeMs: UInt32 = 100_000, seconds: UInt32 = 1_764_526_199,
                   sets: [(UInt16, [UInt8])]) -> [UInt8] {
        var b = Bytes()
        b.u16(9); b.u16(UInt16(sets.count)); b.u32(uptimeMs); b.u32(seconds); b.u32(sequence); b.u32(sourceID)
        for (id, body) in sets { b.u16(id); b.u16(UInt16(body.count + 4)); b.bytes += body }
        return b.bytes
    }

    /// A template record: id, then (element id, length) pairs.
    static func template(_ id: UInt16, _ fields: [(UInt16, UInt16)]) -> [UInt8] {
        var b = Bytes()
        b.u16(id); b.u16(UInt16(fields.count))
        for (e, l) in fields { b.u16(e); b.u16(l) }
        return b.bytes
    }

    /// The fields of ``record(_:_:packets:bytes:startMs:)``: IPv4 5-tuple, counts, ms times.
    static let simpleFields: [(UInt16, UInt16)] = [(8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (2, 8), (1, 8), (152, 8), (153, 8)]

    static func record(_ src: UInt32, _ dst: UInt32, sport: UInt16 = 40000, dport: UInt16 = 80, proto: UInt8 = 17,
                       packets: UInt64, bytes: UInt64, startMs: UInt64 = 1_764_526_198_000) -> [UInt8] {
        var b = Bytes()
        b.u32(src); b.u32(dst); b.u16(sport); b.u16(dport); b.u8(proto); b.u64(packets); b.u64(bytes); b.u64(startMs); b.u64(startMs + 500)
        return b.bytes
    }
}

extension FlowDecoder {
    /// Records (v9: datagrams) in the gaps held open for late datagrams,
    /// counted as lost once the reorder wait after `now` is over.
    mutating func lostAfterReorder(now: UInt64) -> UInt64 {
        expireGaps(now: now + limits.reorderNs).values.reduce(0) { $0 + $1.missing }
    }
}
