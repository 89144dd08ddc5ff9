public import FlowForestCore
public import Foundation

/// `analyze --format json`'s flow list written directly, byte for byte as
/// `JSONEncoder` (sorted keys) writes it: through `Encodable` the encoder
/// spent a third of `analyze`'s time on a large file. A flow with anything
/// this writer does not reproduce exactly (a string needing escapes, a
/// duration in exponent notation) goes through `JSONEncoder` instead, so
/// the output never differs.
public struct FlowJSONText {
    private let encoder: JSONEncoder
    /// The text so far, UTF-8.
    public private(set) var bytes: [UInt8] = []

    /// - Parameter encoder: the encoder whose output this matches (sorted keys).
    public init(encoder: JSONEncoder) { self.encoder = encoder }

    /// Appends `[flow,flow,...]`.
    public mutating func appendArray(_ flows: [FlowRecord]) throws {
        try appendArray(flows.lazy.map { $0.json() }, count: flows.count)
    }

    /// Appends `[flow,flow,...]` of flows already in their JSON shape.
    public mutating func appendArray(_ flows: some Sequence<FlowJSON>, count: Int = 0) throws {
        bytes.reserveCapacity(bytes.count + count * 480)
        bytes.append(UInt8(ascii: "["))
        for (i, flow) in flows.enumerated() {
            if i > 0 { bytes.append(UInt8(ascii: ",")) }
            if !append(flow) { bytes += try encoder.encode(flow) }
        }
        bytes.append(UInt8(ascii: "]"))
    }

    /// Appends one flow as the encoder writes it.
    public mutating func appendFlow(_ flow: FlowRecord) throws {
        let json = flow.json()
        if !append(json) { bytes += try encoder.encode(json) }
    }

    /// The text so far, leaving the writer empty for more.
    public mutating func take() -> [UInt8] {
        defer { bytes.removeAll(keepingCapacity: true) }
        return bytes
    }

    /// Appends `value` as the encoder writes it.
    public mutating func appendEncoded(_ value: some Encodable) throws { bytes += try encoder.encode(value) }

    /// Appends `text` as it is (JSON punctuation and keys the caller writes).
    public mutating func appendRaw(_ text: String) { bytes += Array(text.utf8) }

    /// Appends one flow in the encoder's key order, or appends nothing and
    /// returns false when a value needs what only the encoder does. Bytes
    /// are appended directly: building the text as `String`s first took
    /// half of this writer's time.
    private mutating func append(_ f: FlowJSON) -> Bool {
        let strings = [f.dstIP, f.firstSeen, f.lastSeen, f.protocol, f.srcIP, f.state.rawValue] + [f.endReason?.rawValue, f.interface, f.sensor].compactMap { $0 }
        guard strings.allSatisfy(Self.plain), let duration = Self.number(f.durationMs) else { return false }
        key("{\"dst_ip\":"); string(f.dstIP)
        key(",\"dst_port\":"); integer(f.dstPort)
        key(",\"duration_ms\":"); bytes += duration.utf8
        key(",\"end_reason\":"); string(f.endReason?.rawValue)
        key(",\"first_seen\":"); string(f.firstSeen)
        key(",\"fwd\":"); direction(f.fwd)
        key(",\"icmp_code\":"); integer(f.icmpCode)
        key(",\"icmp_type\":"); integer(f.icmpType)
        key(",\"id\":"); integer(f.id)
        key(",\"interface\":"); string(f.interface)
        key(",\"last_seen\":"); string(f.lastSeen)
        key(",\"protocol\":"); string(f.protocol)
        key(",\"rev\":"); direction(f.rev)
        key(",\"sensor\":"); string(f.sensor)
        key(",\"src_ip\":"); string(f.srcIP)
        key(",\"src_port\":"); integer(f.srcPort)
        key(",\"state\":"); string(f.state.rawValue)
        key(",\"vlan\":"); integer(f.vlan)
        bytes.append(UInt8(ascii: "}"))
        return true
    }

    private mutating func direction(_ d: FlowJSON.Direction) {
        key("{\"bytes\":"); integer(d.bytes)
        key(",\"packets\":"); integer(d.packets)
        key(",\"tcp_flags\":[")
        for (i, name) in d.tcpFlags.enumerated() {
            if i > 0 { bytes.append(UInt8(ascii: ",")) }
            string(name)
        }
        key("]}")
    }

    private mutating func key(_ s: StaticString) {
        s.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }

    /// A string already checked ``plain``, or null.
    private mutating func string(_ s: String?) {
        guard let s else { return key("null") }
        bytes.append(UInt8(ascii: "\""))
        bytes += s.utf8
        bytes.append(UInt8(ascii: "\""))
    }

    private mutating func integer<T: BinaryInteger>(_ v: T?) {
        guard let v else { return key("null") }
        var n = UInt64(v)
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes: room for 20 digits
        withUnsafeMutableBytes(of: &digits) { d in
            var i = d.count
            repeat {
                i -= 1
                d[i] = UInt8(ascii: "0") + UInt8(n % 10)
                n /= 10
            } while n > 0
            bytes.append(contentsOf: d[i...])
        }
    }

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
