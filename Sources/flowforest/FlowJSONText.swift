import FlowForestCore
import Foundation

/// `analyze --format json`'s flow list written directly, byte for byte as
/// `JSONEncoder` (sorted keys) writes it: through `Encodable` the encoder
/// spent a third of `analyze`'s time on a large file. A flow with anything
/// this writer does not reproduce exactly (a string needing escapes, a
/// duration in exponent notation) goes through `JSONEncoder` instead, so
/// the output never differs.
struct FlowJSONText {
    private let encoder: JSONEncoder
    private(set) var bytes: [UInt8] = []

    init(encoder: JSONEncoder) { self.encoder = encoder }

    /// Appends `[flow,flow,...]`.
    mutating func appendArray(_ flows: [FlowRecord]) throws {
        bytes.reserveCapacity(bytes.count + flows.count * 480)
        bytes.append(UInt8(ascii: "["))
        for (i, record) in flows.enumerated() {
            if i > 0 { bytes.append(UInt8(ascii: ",")) }
            let flow = record.json()
            if !append(flow) { bytes += try encoder.encode(flow) }
        }
        bytes.append(UInt8(ascii: "]"))
    }

    /// Appends `value` as the encoder writes it.
    mutating func appendEncoded(_ value: some Encodable) throws { bytes += try encoder.encode(value) }

    mutating func appendRaw(_ text: String) { bytes += Array(text.utf8) }

    /// Appends one flow in the encoder's key order, or appends nothing and
    /// returns false when a value needs what only the encoder does.
    private mutating func append(_ f: FlowJSON) -> Bool {
        let strings = [f.dstIP, f.firstSeen, f.lastSeen, f.protocol, f.srcIP, f.state.rawValue] + [f.endReason?.rawValue, f.interface, f.sensor].compactMap { $0 }
        guard strings.allSatisfy(Self.plain), let duration = Self.number(f.durationMs) else { return false }
        var o = ""
        o.reserveCapacity(480)
        o += #"{"dst_ip":"# + Self.quoted(f.dstIP) + #","dst_port":"# + Self.optional(f.dstPort)
        o += #","duration_ms":"# + duration + #","end_reason":"# + Self.optional(f.endReason?.rawValue)
        o += #","first_seen":"# + Self.quoted(f.firstSeen) + #","fwd":"# + Self.direction(f.fwd)
        o += #","icmp_code":"# + Self.optional(f.icmpCode) + #","icmp_type":"# + Self.optional(f.icmpType)
        o += #","id":"# + String(f.id) + #","interface":"# + Self.optional(f.interface)
        o += #","last_seen":"# + Self.quoted(f.lastSeen) + #","protocol":"# + Self.quoted(f.protocol)
        o += #","rev":"# + Self.direction(f.rev) + #","sensor":"# + Self.optional(f.sensor)
        o += #","src_ip":"# + Self.quoted(f.srcIP) + #","src_port":"# + Self.optional(f.srcPort)
        o += #","state":"# + Self.quoted(f.state.rawValue) + #","vlan":"# + Self.optional(f.vlan) + "}"
        bytes += o.utf8
        return true
    }

    private static func direction(_ d: FlowJSON.Direction) -> String {
        #"{"bytes":"# + String(d.bytes) + #","packets":"# + String(d.packets) + #","tcp_flags":["#
            + d.tcpFlags.map(quoted).joined(separator: ",") + "]}"
    }

    private static func quoted(_ s: String) -> String { "\"" + s + "\"" }

    private static func optional(_ s: String?) -> String { s.map(quoted) ?? "null" }

    private static func optional<T: BinaryInteger>(_ v: T?) -> String { v.map { String($0) } ?? "null" }

    /// Printable ASCII without the characters the encoder escapes (`"`, `\`, `/`).
    private static func plain(_ s: String) -> Bool {
        s.utf8.allSatisfy { $0 >= 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "\\") && $0 != UInt8(ascii: "/") }
    }

    /// A finite double as the encoder writes it (shortest round-trip digits,
    /// a whole number without ".0"); nil for exponent notation.
    private static func number(_ v: Double) -> String? {
        guard v.isFinite else { return nil }
        var s = v.description
        if s.contains("e") { return nil }
        if s.hasSuffix(".0") { s.removeLast(2) }
        return s
    }
}
