import FlowForestCore
@testable import FlowForestIPFIX
import Testing

/// Big-endian reads from a message, for checking layouts.
extension Array where Element == UInt8 {
    func be16(_ at: Int) -> Int { Int(self[at]) << 8 | Int(self[at + 1]) }
    func be32(_ at: Int) -> UInt32 { (0..<4).reduce(0) { $0 << 8 | UInt32(self[at + $1]) } }
    func be64(_ at: Int) -> UInt64 { (0..<8).reduce(0) { $0 << 8 | UInt64(self[at + $1]) } }
}

/// A flow with the given cumulative counts in each direction.
func flow(id: UInt64, src: String = "198.18.0.1", dst: String = "198.18.0.2", sport: UInt16 = 40000, dport: UInt16 = 443,
          proto: UInt8 = IPProtocol.tcp, fwd: (UInt64, UInt64), rev: (UInt64, UInt64),
          state: FlowState = .ended, end: FlowEndReason? = .idle) -> FlowRecord {
    var f = DirectionStats()
    f.packets = fwd.0
    f.bytes = fwd.1
    f.firstSeenNs = 1_764_000_000_000_000_000
    f.lastSeenNs = f.firstSeenNs + 2_000_000_000
    f.flags = [.syn, .ack]
    var r = DirectionStats()
    r.packets = rev.0
    r.bytes = rev.1
    if rev.0 > 0 {
        r.firstSeenNs = f.firstSeenNs + 1_000_000
        r.lastSeenNs = f.lastSeenNs
    }
    var record = FlowRecord(id: id, sourceAddress: IPAddress(src)!, destinationAddress: IPAddress(dst)!,
                            sourcePort: sport, destinationPort: dport, ipProtocol: proto, forward: f, reverse: r)
    record.state = state
    record.endReason = state == .ended ? end : nil
    record.interfaceIndex = 7
    record.vlan = 12
    return record
}

@Suite("IPFIX encoding (RFC 7011, RFC 5103)")
struct IPFIXEncoderTests {
    @Test("the template message announces both address families with their field specifiers")
    func templates() {
        for biflow in [false, true] {
            let m = IPFIXEncoder(observationDomain: 42, biflow: biflow).templateMessage(exportTime: 1000)
            #expect(m.be16(0) == 10)
            #expect(m.be16(2) == m.count)
            #expect(m.be32(4) == 1000 && m.be32(12) == 42)
            #expect(m.be16(16) == 2 && m.be16(18) == m.count - 16)
            let fields = biflow ? 19 : 14
            #expect(m.be16(20) == (biflow ? 258 : 256) && m.be16(22) == fields)
            // The IPv4 template: 4 bytes per field, 8 for each reverse (enterprise) field.
            let second = 24 + fields * 4 + (biflow ? 5 * 4 : 0)
            #expect(m.be16(second) == (biflow ? 259 : 257) && m.be16(second + 2) == fields)
            if biflow {
                // The first reverse field: reverse tcpControlBits with RFC 5103's enterprise number.
                let reverse = 24 + 14 * 4
                #expect(m.be16(reverse) == 0x8006 && m.be32(reverse + 4) == 29305)
            }
        }
    }

    @Test("a uniflow export is a record per direction with packets, fields in template order")
    func uniflowLayout() throws {
        var encoder = IPFIXEncoder()
        var tracker = DeltaTracker()
        let exported = tracker.export(flow(id: 1, fwd: (10, 1000), rev: (8, 6000)))
        let export = try #require(exported)
        let messages = encoder.dataMessages([export], exportTime: 5)
        let m = try #require(messages.first?.bytes)
        #expect(messages.count == 1 && messages[0].records == 2)
        #expect(m.be16(16) == 256 && m.be16(18) == 4 + 2 * 56)
        let a = 20, b = 20 + 56
        #expect(m.be32(a) == 0xC612_0001 && m.be32(a + 4) == 0xC612_0002)
        #expect(m.be16(a + 8) == 40000 && m.be16(a + 10) == 443 && m[a + 12] == 6)
        #expect(m.be16(a + 13) == 0x12)  // SYN|ACK
        #expect(m.be16(a + 17) == 12 && m.be32(a + 19) == 7 && m[a + 23] == 1)  // vlan, interface, idle timeout
        #expect(m.be64(a + 24) == 1_764_000_000_000 && m.be64(a + 32) == 1_764_000_002_000)
        #expect(m.be64(a + 40) == 1000 && m.be64(a + 48) == 10)
        // The reply direction: addresses and ports swapped.
        #expect(m.be32(b) == 0xC612_0002 && m.be16(b + 8) == 443 && m.be16(b + 10) == 40000)
        #expect(m.be64(b + 40) == 6000 && m.be64(b + 48) == 8)
        #expect(encoder.sequence == 2)
    }

    @Test("interim exports carry deltas: the exports of a flow sum to its totals")
    func deltas() throws {
        var tracker = DeltaTracker()
        #expect(tracker.export(flow(id: 9, fwd: (3, 300), rev: (0, 0), state: .active)) == nil)
        let firstExport = tracker.export(flow(id: 9, fwd: (100, 10_000), rev: (50, 70_000), state: .interim))
        let first = try #require(firstExport)
        #expect(first.endReason == .activeTimeout && tracker.openFlows == 1)
        // Nothing new since the interim export: no record.
        #expect(tracker.export(flow(id: 9, fwd: (100, 10_000), rev: (50, 70_000), state: .interim)) == nil)
        let lastExport = tracker.export(flow(id: 9, fwd: (130, 13_000), rev: (51, 71_000), end: .tcpClose))
        let last = try #require(lastExport)
        #expect(last.endReason == .endOfFlow && tracker.openFlows == 0)
        #expect(first.forward.packets + last.forward.packets == 130 && first.forward.bytes + last.forward.bytes == 13_000)
        #expect(first.reverse.packets + last.reverse.packets == 51 && first.reverse.bytes + last.reverse.bytes == 71_000)
    }

    @Test("a total below the one exported (an id a source reused) exports afresh, never a wrapped delta near 2^64")
    func fallingTotal() throws {
        var tracker = DeltaTracker()
        _ = tracker.export(flow(id: 4, fwd: (100, 10_000), rev: (0, 0), state: .interim))
        let exported = tracker.export(flow(id: 4, fwd: (5, 500), rev: (0, 0), end: .tcpClose))
        let after = try #require(exported)
        #expect(after.forward.packets == 5 && after.forward.bytes == 500)
    }

    @Test("messages stay under the size limit, and sequence numbers count data records")
    func sizeAndSequence() {
        var encoder = IPFIXEncoder(maxMessageBytes: 1400)
        var tracker = DeltaTracker()
        let v4 = (0..<500).compactMap { tracker.export(flow(id: UInt64($0), sport: UInt16(1000 + $0), fwd: (2, 200), rev: (1, 100))) }
        let v6 = (0..<200).compactMap {
            tracker.export(flow(id: UInt64(1000 + $0), src: "2001:2::1", dst: "2001:2::2", sport: UInt16($0 + 1), fwd: (1, 80), rev: (0, 0)))
        }
        var expected: UInt32 = 0
        for message in encoder.dataMessages(v4 + v6, exportTime: 1) {
            #expect(message.bytes.count <= 1400 && message.bytes.be16(2) == message.bytes.count)
            #expect(message.bytes.be32(8) == expected, "sequence is the count of earlier data records")
            expected += UInt32(message.records)
        }
        #expect(expected == 500 * 2 + 200)
        #expect(encoder.sequence == expected)
    }

    @Test("a biflow export is one record with the reverse counts")
    func biflow() throws {
        var encoder = IPFIXEncoder(biflow: true)
        var tracker = DeltaTracker()
        let exported = tracker.export(flow(id: 1, src: "2001:2::1", dst: "2001:2::2", fwd: (10, 1000), rev: (8, 6000)))
        let export = try #require(exported)
        let m = try #require(encoder.dataMessages([export], exportTime: 5).first?.bytes)
        let length = 80 + 34
        #expect(m.be16(16) == 259 && m.be16(18) == 4 + length)
        #expect(m.be64(20 + 80 - 8) == 10)  // forward packetDeltaCount
        #expect(m.be64(20 + length - 16) == 6000 && m.be64(20 + length - 8) == 8)
    }

    @Test("collector addresses are checked before anything starts")
    func destinations() throws {
        #expect(try ExportDestination("udp://127.0.0.1:4739") .port == 4739)
        #expect(try ExportDestination("tcp://[::1]:4739").host == "::1")
        for bad in ["127.0.0.1:4739", "sctp://h:1", "udp://h", "udp://h:0", "udp://h:99999", "udp://:4739", "udp://h:47a"] {
            #expect(throws: ExportError.self, "\(bad)") { try ExportDestination(bad) }
        }
    }
}
