public import FlowForestCore
import SQLKit

/// A flow record as stored: which sensor saw it.
public struct StoredFlow: Sendable, Hashable {
    public var sensor: String
    public var record: FlowRecord

    public init(sensor: String, record: FlowRecord) {
        self.sensor = sensor
        self.record = record
    }
}

/// Traffic totals of one address over a time range.
public struct HostSummary: Sendable, Hashable, Codable {
    public var address: String
    /// Flows the address initiated.
    public var flows: Int64
    /// Distinct peers it initiated flows to.
    public var peers: Int64
    /// Bytes and packets of those flows, both directions.
    public var bytes: Int64
    public var packets: Int64
    /// Anomalies naming the address as source or destination.
    public var anomalies: Int64
    public var lastSeen: String

    enum CodingKeys: String, CodingKey {
        case address, flows, peers, bytes, packets, anomalies
        case lastSeen = "last_seen"
    }
}

extension Store {
    static let flowColumns = [
        "sensor", "flow_id", "first_seen_ms", "last_seen_ms", "protocol", "src_ip", "src_port", "dst_ip", "dst_port",
        "vlan", "interface", "icmp_type", "icmp_code", "fwd_packets", "fwd_bytes", "fwd_flags",
        "rev_packets", "rev_bytes", "rev_flags", "state", "end_reason",
    ]

    /// Writes flow records (ended and interim); a record already present is skipped.
    public func insertFlows(_ flows: [StoredFlow]) async throws {
        guard !flows.isEmpty else { return }
        let rows: [[any Encodable & Sendable]] = flows.map { f in
            let r = f.record
            let initiator = r.forward.packets > 0 ? r.forward : r.reverse
            let icmp = IPProtocol.isICMP(r.ipProtocol)
            let values: [any Encodable & Sendable] = [
                f.sensor, Int64(bitPattern: r.id), Int64(r.firstSeenNs / 1_000_000), Int64(r.lastSeenNs / 1_000_000),
                Int(r.ipProtocol), r.sourceAddress.description, Int(r.sourcePort), r.destinationAddress.description, Int(r.destinationPort),
                Int(r.vlan), r.interfaceName, icmp ? Int(initiator.icmpType) : nil, icmp ? Int(initiator.icmpCode) : nil,
                // Counts past 2^63 - 1 (only a hostile exporter claims them) are stored as that.
                Int64(clamping: r.forward.packets), Int64(clamping: r.forward.bytes), Int(r.forward.flags.rawValue),
                Int64(clamping: r.reverse.packets), Int64(clamping: r.reverse.bytes), Int(r.reverse.flags.rawValue),
                r.state.rawValue, r.endReason?.rawValue,
            ]
            return values
        }
        try await insert(into: "flows", columns: Store.flowColumns,
                         conflict: ["sensor", "flow_id", "first_seen_ms", "last_seen_ms", "state"], rows: rows)
    }

    /// Stored flows, most recently seen first.
    /// - Parameter interface: an interface or observation point: the name
    ///   itself, or for a collected flow its exporter's address alone
    ///   (`198.18.0.1` matches `198.18.0.1` and `198.18.0.1%3`).
    public func recentFlows(address: IPAddress? = nil, interface: String? = nil, sinceMs: Int64? = nil, limit: Int = 100) async throws -> [StoredFlow] {
        let limit = max(1, min(limit, 1000))
        let rows = try await withSQL(.read) { db in
            let select = db.select().column("*").from("flows")
            if let a = address?.description {
                select.where { $0.where("src_ip", .equal, a).orWhere("dst_ip", .equal, a) }
            }
            if let name = interface { select.where(Store.observedAt(name)) }
            if let s = sinceMs { select.where("last_seen_ms", .greaterThanOrEqual, s) }
            return try await select.orderBy("last_seen_ms", .descending).orderBy("id", .descending).limit(limit).all()
        }
        return try rows.map(Store.decodeFlow)
    }

    /// Number of stored flow records.
    public func flowCount() async throws -> Int {
        try await withSQL(.read) { db in
            try await db.raw("SELECT COUNT(*) AS n FROM flows").first()?.decode(column: "n", as: Int.self) ?? 0
        }
    }

    /// Deletes flow records last seen before `cutoffMs`; returns how many.
    @discardableResult
    public func deleteFlows(lastSeenBeforeMs cutoffMs: Int64) async throws -> Int {
        try await withSQL { db in
            let n = try await db.raw("SELECT COUNT(*) AS n FROM flows WHERE last_seen_ms < \(bind: cutoffMs)").first()?.decode(column: "n", as: Int.self) ?? 0
            try await db.delete(from: "flows").where("last_seen_ms", .lessThan, cutoffMs).run()
            return n
        }
    }

    /// SQL for the sum of two count columns over a group, capped at 2^63 - 1:
    /// counts are stored up to that, so adding a row's two, or a group's
    /// rows, must not overflow (SQLite's SUM fails on integer overflow and
    /// PostgreSQL's BIGINT addition does; TOTAL and NUMERIC do not).
    static func cappedSum(_ a: String, _ b: String, sqlite: Bool) -> String {
        sqlite ? "CAST(MIN(TOTAL(\(a)) + TOTAL(\(b)), 9223372036854775807.0) AS INTEGER)"
            : "CAST(LEAST(SUM(\(a)) + SUM(\(b)), 9223372036854775807) AS BIGINT)"
    }

    /// Per source address: flows, peers, bytes and anomalies since `sinceMs`,
    /// the busiest (by bytes) first.
    public func hosts(sinceMs: Int64, limit: Int = 50) async throws -> [HostSummary] {
        let limit = max(1, min(limit, 1000))
        let bytes = Self.cappedSum("fwd_bytes", "rev_bytes", sqlite: isSQLite)
        let packets = Self.cappedSum("fwd_packets", "rev_packets", sqlite: isSQLite)
        return try await withSQL(.read) { db in
            let rows = try await db.raw("""
                SELECT src_ip, COUNT(*) AS flows, COUNT(DISTINCT dst_ip) AS peers,
                       \(unsafeRaw: bytes) AS bytes, \(unsafeRaw: packets) AS packets,
                       MAX(last_seen_ms) AS last_seen
                FROM flows WHERE last_seen_ms >= \(bind: sinceMs) AND state = 'ended'
                GROUP BY src_ip ORDER BY bytes DESC, src_ip LIMIT \(bind: limit)
                """).all()
            var out: [HostSummary] = []
            for row in rows {
                let address = try row.decode(column: "src_ip", as: String.self)
                let anomalies = try await db.raw("""
                    SELECT COUNT(*) AS n FROM anomalies
                    WHERE time_ms >= \(bind: sinceMs) AND (src_ip = \(bind: address) OR dst_ip = \(bind: address))
                    """).first()?.decode(column: "n", as: Int64.self) ?? 0
                out.append(HostSummary(
                    address: address,
                    flows: try row.decode(column: "flows", as: Int64.self),
                    peers: try row.decode(column: "peers", as: Int64.self),
                    bytes: try row.decode(column: "bytes", as: Int64.self),
                    packets: try row.decode(column: "packets", as: Int64.self),
                    anomalies: anomalies,
                    lastSeen: Timestamp.rfc3339(milliseconds: try row.decode(column: "last_seen", as: Int64.self))))
            }
            return out
        }
    }

    static func decodeFlow(_ row: any SQLRow) throws -> StoredFlow {
        func int(_ c: String) throws -> Int64 { try row.decode(column: c, as: Int64.self) }
        // A row another sensor (or a hand) wrote is checked like any input:
        // a time outside 0..<2500 reads as 0 or the end of range, never a trap.
        func ns(_ c: String) throws -> UInt64 {
            let ms = try int(c)
            guard ms > 0 else { return 0 }
            return min(UInt64(ms), Timestamp.endNs / 1_000_000 - 1) * 1_000_000
        }
        let first = try ns("first_seen_ms")
        let last = try ns("last_seen_ms")
        func direction(_ prefix: String) throws -> DirectionStats {
            var d = DirectionStats()
            d.packets = UInt64(bitPattern: try int("\(prefix)_packets"))
            d.bytes = UInt64(bitPattern: try int("\(prefix)_bytes"))
            d.flags = TCPFlags(rawValue: UInt8(truncatingIfNeeded: try int("\(prefix)_flags")))
            // Only the flow's overall first and last times are kept.
            if d.packets > 0 {
                d.firstSeenNs = first
                d.lastSeenNs = last
            }
            return d
        }
        var forward = try direction("fwd")
        let reverse = try direction("rev")
        if let type = try row.decode(column: "icmp_type", as: Int?.self) { forward.icmpType = UInt8(truncatingIfNeeded: type) }
        if let code = try row.decode(column: "icmp_code", as: Int?.self) { forward.icmpCode = UInt8(truncatingIfNeeded: code) }
        let record = FlowRecord(
            id: UInt64(bitPattern: try int("flow_id")),
            sourceAddress: IPAddress(try row.decode(column: "src_ip", as: String.self)) ?? IPAddress(high: 0, low: 0),
            destinationAddress: IPAddress(try row.decode(column: "dst_ip", as: String.self)) ?? IPAddress(high: 0, low: 0),
            sourcePort: UInt16(truncatingIfNeeded: try int("src_port")),
            destinationPort: UInt16(truncatingIfNeeded: try int("dst_port")),
            ipProtocol: UInt8(truncatingIfNeeded: try int("protocol")),
            vlan: UInt16(truncatingIfNeeded: try int("vlan")),
            interfaceName: try row.decode(column: "interface", as: String?.self),
            forward: forward, reverse: reverse,
            state: FlowState(rawValue: try row.decode(column: "state", as: String.self)) ?? .ended,
            endReason: try row.decode(column: "end_reason", as: String?.self).flatMap(FlowEndReason.init(rawValue:)))
        return StoredFlow(sensor: try row.decode(column: "sensor", as: String.self), record: record)
    }
}
