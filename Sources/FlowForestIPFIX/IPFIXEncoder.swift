import FlowForestCore

/// Builds IPFIX messages (RFC 7011) from export records: templates, then data
/// sets, each message kept under ``maxMessageBytes`` so a UDP datagram fits
/// the path MTU unfragmented. The sequence number counts the data records
/// sent from this observation domain, as §3.1 defines it.
public struct IPFIXEncoder: Sendable {
    public let observationDomain: UInt32
    /// One RFC 5103 biflow record per flow instead of two uniflow records.
    public let biflow: Bool
    /// Largest message: 1400 bytes leaves room for IPv6 and tunnel headers in a 1500-byte MTU.
    public let maxMessageBytes: Int
    /// Data records sent so far, modulo 2^32.
    public private(set) var sequence: UInt32 = 0

    public let templates: [IPFIXTemplate]

    static let headerBytes = 16
    static let setHeaderBytes = 4

    public init(observationDomain: UInt32 = 1, biflow: Bool = false, maxMessageBytes: Int = 1400) {
        self.observationDomain = observationDomain
        self.biflow = biflow
        self.maxMessageBytes = max(maxMessageBytes, 256)
        templates = (biflow ? [IPFIXTemplate.Kind.ipv4Biflow, .ipv6Biflow] : [.ipv4Uniflow, .ipv6Uniflow]).map(IPFIXTemplate.make)
    }

    /// One message announcing every template this encoder uses. It carries
    /// the sequence number of the next data record, as every message does:
    /// a template message does not advance it, but a collector checks it.
    public func templateMessage(exportTime: UInt32) -> [UInt8] {
        var out = header(exportTime: exportTime, sequence: sequence)
        let setStart = out.count
        out.appendBE(UInt16(2))  // template set
        out.appendBE(UInt16(0))
        for t in templates { t.appendTemplateRecord(to: &out) }
        out.setBE(UInt16(out.count - setStart), at: setStart + 2)
        out.setBE(UInt16(out.count), at: 2)
        return out
    }

    /// One message and the data records in it.
    public struct Message: Sendable {
        public var bytes: [UInt8]
        public var records: Int
    }

    /// Messages carrying `records`: uniflow exports give one data record per
    /// direction that has packets, biflow exports one record per flow.
    public mutating func dataMessages(_ records: [ExportRecord], exportTime: UInt32) -> [Message] {
        var messages: [Message] = []
        var current: [UInt8] = []
        var currentTemplate: UInt16 = 0
        var setStart = 0
        var recordsInMessage: UInt32 = 0

        func close() {
            guard !current.isEmpty else { return }
            current.setBE(UInt16(current.count - setStart), at: setStart + 2)
            current.setBE(UInt16(current.count), at: 2)
            messages.append(Message(bytes: current, records: Int(recordsInMessage)))
            sequence &+= recordsInMessage
            current = []
            recordsInMessage = 0
        }

        for record in records {
            let v6 = !(record.flow.sourceAddress.isIPv4 && record.flow.destinationAddress.isIPv4)
            let template = templates[v6 ? 1 : 0]
            for reverse in biflow ? [false] : [false, true] {
                let direction = reverse ? record.reverse : record.forward
                guard biflow || direction.packets > 0 else { continue }
                if current.count + template.recordLength + (template.id == currentTemplate ? 0 : Self.setHeaderBytes) > maxMessageBytes {
                    close()
                }
                if current.isEmpty {
                    current = header(exportTime: exportTime, sequence: sequence)
                    currentTemplate = 0
                }
                if template.id != currentTemplate {
                    if currentTemplate != 0 { current.setBE(UInt16(current.count - setStart), at: setStart + 2) }
                    setStart = current.count
                    current.appendBE(template.id)
                    current.appendBE(UInt16(0))
                    currentTemplate = template.id
                }
                append(record, reverse: reverse, v6: v6, to: &current)
                recordsInMessage += 1
            }
        }
        close()
        return messages
    }

    private func header(exportTime: UInt32, sequence: UInt32) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(maxMessageBytes)
        out.appendBE(UInt16(10))
        out.appendBE(UInt16(0))  // length, set when the message is closed
        out.appendBE(exportTime)
        out.appendBE(sequence)
        out.appendBE(observationDomain)
        return out
    }

    /// Writes one data record in template order (see ``IPFIXTemplate/make(_:)``).
    private func append(_ r: ExportRecord, reverse: Bool, v6: Bool, to out: inout [UInt8]) {
        let flow = r.flow
        let (src, dst) = reverse ? (flow.destinationAddress, flow.sourceAddress) : (flow.sourceAddress, flow.destinationAddress)
        let icmp = IPProtocol.isICMP(flow.ipProtocol)
        let (sport, dport) = icmp ? (0, 0) : reverse ? (flow.destinationPort, flow.sourcePort) : (flow.sourcePort, flow.destinationPort)
        let d = reverse ? r.reverse : r.forward
        for address in [src, dst] {
            if v6 {
                out.appendBE(address.high)
                out.appendBE(address.low)
            } else {
                out.appendBE(UInt32(truncatingIfNeeded: address.low))
            }
        }
        out.appendBE(sport)
        out.appendBE(dport)
        out.append(flow.ipProtocol)
        out.appendBE(d.flags)
        out.appendBE(icmp ? d.icmpTypeCode : 0)
        out.appendBE(flow.vlan)
        out.appendBE(flow.interfaceIndex)
        out.append(r.endReason.rawValue)
        appendCounts(d, to: &out)
        if biflow {
            out.appendBE(r.reverse.flags)
            appendCounts(r.reverse, to: &out)
        }
    }

    private func appendCounts(_ d: ExportRecord.Direction, to out: inout [UInt8]) {
        out.appendBE(d.startMs)
        out.appendBE(d.endMs)
        out.appendBE(d.bytes)
        out.appendBE(d.packets)
    }
}
