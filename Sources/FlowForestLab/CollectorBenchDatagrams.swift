import FlowForestCore
import FlowForestIPFIX
public import Foundation

/// The datagrams the collector benchmark replays: half the flows as IPFIX
/// (FlowForest's own exporter encoding, uniflow records), half as NetFlow v9
/// (one template of IPv4 fields, as routers and softflowd send it), the two
/// interleaved, templates first and again every 200 datagrams.
///
/// Every flow is a finished TCP exchange (SYN, data, FIN both ways) between
/// addresses in 198.18.0.0/15 and ended a second before the replay, so a
/// collector that follows TCP closes ends and scores it while the replay runs.
public struct CollectorBenchDatagrams: Sendable {
    public let datagrams: [[UInt8]]
    /// Data records in them (templates not counted).
    public let records: Int
    public let flows: Int

    public init(flows: Int, now: Date = Date()) {
        let nowMs = UInt64(now.timeIntervalSince1970 * 1000)
        let half = flows / 2
        let ipfix = Self.ipfix(flows: 0..<half, nowMs: nowMs)
        let v9 = Self.v9(flows: half..<flows, nowMs: nowMs)
        var merged: [[UInt8]] = []
        merged.reserveCapacity(ipfix.datagrams.count + v9.datagrams.count)
        for i in 0..<max(ipfix.datagrams.count, v9.datagrams.count) {
            if i < ipfix.datagrams.count { merged.append(ipfix.datagrams[i]) }
            if i < v9.datagrams.count { merged.append(v9.datagrams[i]) }
        }
        datagrams = merged
        records = ipfix.records + v9.records
        self.flows = flows
    }

    /// Flow `i`'s client and server: distinct 5-tuples for up to 65536 × 1000 flows.
    static func endpoints(_ i: Int) -> (client: UInt32, server: UInt32, port: UInt16) {
        let client = 0xC612_0000 | UInt32(i % 65536)                         // 198.18.x.y
        let server = 0xC613_0000 | UInt32((i / 65536) % 256) << 8 | 1       // 198.19.n.1
        return (client, server, UInt16(1024 + (i / 65536 / 256) % 60000))
    }

    /// Flow `i`'s packets and bytes, initiator to responder and back.
    public static func packets(_ i: Int) -> (forward: (UInt64, UInt64), reverse: (UInt64, UInt64)) {
        let f = UInt64(4 + i % 7), r = UInt64(3 + i % 5)
        return ((f, f * 60 + UInt64(i % 900)), (r, r * 60 + UInt64(i % 1400) * 3))
    }

    static func ipfix(flows: Range<Int>, nowMs: UInt64) -> (datagrams: [[UInt8]], records: Int) {
        var encoder = IPFIXEncoder(observationDomain: 1)
        let exportTime = UInt32(nowMs / 1000)
        var out: [[UInt8]] = [], records = 0
        var batch: [ExportRecord] = []
        var tracker = DeltaTracker()
        func flush() {
            for message in encoder.dataMessages(batch, exportTime: exportTime) {
                if out.count % 200 == 0 { out.append(encoder.templateMessage(exportTime: exportTime)) }
                out.append(message.bytes)
                records += message.records
            }
            batch.removeAll(keepingCapacity: true)
        }
        for i in flows {
            let (client, server, port) = endpoints(i)
            let (fwd, rev) = packets(i)
            var f = DirectionStats(), r = DirectionStats()
            (f.packets, f.bytes, r.packets, r.bytes) = (fwd.0, fwd.1, rev.0, rev.1)
            f.firstSeenNs = (nowMs - 3000) * 1_000_000
            f.lastSeenNs = (nowMs - 1000) * 1_000_000
            (r.firstSeenNs, r.lastSeenNs) = (f.firstSeenNs + 1_000_000, f.lastSeenNs)
            f.flags = [.syn, .ack, .psh, .fin]
            r.flags = [.syn, .ack, .psh, .fin]
            let record = FlowRecord(id: UInt64(i), sourceAddress: IPAddress(ipv4: client), destinationAddress: IPAddress(ipv4: server),
                                    sourcePort: port, destinationPort: 443, ipProtocol: IPProtocol.tcp, forward: f, reverse: r,
                                    state: .ended, endReason: .tcpClose)
            if let export = tracker.export(record) { batch.append(export) }
            if batch.count == 1000 { flush() }
        }
        flush()
        return (out, records)
    }

    /// NetFlow v9 (RFC 3954): IPv4 source/destination, ports, protocol, TCP
    /// flags, packets, bytes, first and last switched (uptime milliseconds).
    static let v9Fields: [(type: UInt16, length: UInt16)] = [(8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (6, 1), (2, 4), (1, 4), (22, 4), (21, 4)]
    static let v9RecordBytes = 30, v9RecordsPerDatagram = 44

    static func v9(flows: Range<Int>, nowMs: UInt64) -> (datagrams: [[UInt8]], records: Int) {
        let uptimeMs: UInt32 = 500_000_000
        var rows: [[UInt8]] = []
        rows.reserveCapacity(flows.count * 2)
        for i in flows {
            let (client, server, port) = endpoints(i)
            let (fwd, rev) = packets(i)
            rows.append(v9Record(client, server, port, 443, flags: 0x1B, fwd, first: uptimeMs - 3000, last: uptimeMs - 1000))
            rows.append(v9Record(server, client, 443, port, flags: 0x1B, rev, first: uptimeMs - 2999, last: uptimeMs - 1000))
        }
        var out: [[UInt8]] = [], sequence: UInt32 = 0
        for start in stride(from: 0, to: rows.count, by: v9RecordsPerDatagram) {
            let chunk = rows[start..<min(start + v9RecordsPerDatagram, rows.count)]
            var sets: [UInt8] = []
            var count = chunk.count
            if out.count % 200 == 0 {
                sets += be16(0) + be16(UInt16(8 + 4 * v9Fields.count)) + be16(256) + be16(UInt16(v9Fields.count))
                sets += v9Fields.flatMap { be16($0.type) + be16($0.length) }
                count += 1
            }
            let body = chunk.flatMap { $0 }
            let padding = (4 - (4 + body.count) % 4) % 4
            sets += be16(256) + be16(UInt16(4 + body.count + padding)) + body + [UInt8](repeating: 0, count: padding)
            out.append(be16(9) + be16(UInt16(count)) + be32(uptimeMs) + be32(UInt32(nowMs / 1000)) + be32(sequence) + be32(7) + sets)
            sequence &+= 1
        }
        return (out, rows.count)
    }

    static func v9Record(_ src: UInt32, _ dst: UInt32, _ sport: UInt16, _ dport: UInt16, flags: UInt8,
                         _ counts: (UInt64, UInt64), first: UInt32, last: UInt32) -> [UInt8] {
        be32(src) + be32(dst) + be16(sport) + be16(dport) + [IPProtocol.tcp, flags]
            + be32(UInt32(counts.0)) + be32(UInt32(counts.1)) + be32(first) + be32(last)
    }

    static func be16(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xFF)] }
    static func be32(_ v: UInt32) -> [UInt8] { be16(UInt16(v >> 16)) + be16(UInt16(v & 0xFFFF)) }
}
