/// The four record layouts FlowForest exports: IPv4 or IPv6, one direction
/// per record (uniflow) or both in one record with RFC 5103 reverse elements
/// (biflow). Every template is fixed-length, so a record's size is known
/// before it is written.
public struct IPFIXTemplate: Hashable, Sendable {
    public enum Kind: CaseIterable, Sendable {
        case ipv4Uniflow, ipv6Uniflow, ipv4Biflow, ipv6Biflow

        public var ipv6: Bool { self == .ipv6Uniflow || self == .ipv6Biflow }
        public var biflow: Bool { self == .ipv4Biflow || self == .ipv6Biflow }
    }

    public let id: UInt16
    public let kind: Kind
    public let elements: [InformationElement]

    /// Bytes of one data record.
    public var recordLength: Int { elements.reduce(0) { $0 + Int($1.length) } }

    /// Bytes of the template record (header plus field specifiers).
    var templateRecordLength: Int { 4 + elements.reduce(0) { $0 + $1.templateLength } }

    public static func make(_ kind: Kind) -> IPFIXTemplate {
        typealias E = InformationElement
        let addresses: [E] = kind.ipv6 ? [.sourceIPv6Address, .destinationIPv6Address] : [.sourceIPv4Address, .destinationIPv4Address]
        var elements = addresses + [
            .sourceTransportPort, .destinationTransportPort, .protocolIdentifier, .tcpControlBits,
            kind.ipv6 ? .icmpTypeCodeIPv6 : .icmpTypeCodeIPv4, .vlanId, .ingressInterface, .flowEndReason,
            .flowStartMilliseconds, .flowEndMilliseconds, .octetDeltaCount, .packetDeltaCount,
        ]
        if kind.biflow {
            elements += [E.tcpControlBits, .flowStartMilliseconds, .flowEndMilliseconds, .octetDeltaCount, .packetDeltaCount].map(\.reverse)
        }
        let id: UInt16 = switch kind {
        case .ipv4Uniflow: 256
        case .ipv6Uniflow: 257
        case .ipv4Biflow: 258
        case .ipv6Biflow: 259
        }
        return IPFIXTemplate(id: id, kind: kind, elements: elements)
    }

    /// Appends the template record (RFC 7011 §3.4.1).
    func appendTemplateRecord(to out: inout [UInt8]) {
        out.appendBE(id)
        out.appendBE(UInt16(elements.count))
        for e in elements {
            out.appendBE(e.enterprise == nil ? e.id : e.id | 0x8000)
            out.appendBE(e.length)
            if let pen = e.enterprise { out.appendBE(pen) }
        }
    }
}

extension Array where Element == UInt8 {
    @inline(__always)
    mutating func appendBE<T: FixedWidthInteger>(_ value: T) {
        var v = value.bigEndian
        Swift.withUnsafeBytes(of: &v) { append(contentsOf: $0) }
    }

    /// Overwrites a big-endian UInt16 at `offset` (set and message lengths).
    mutating func setBE(_ value: UInt16, at offset: Int) {
        self[offset] = UInt8(value >> 8)
        self[offset + 1] = UInt8(value & 0xFF)
    }
}
