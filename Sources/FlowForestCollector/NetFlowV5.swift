import FlowForestCore

extension FlowDecoder {
    static let v5HeaderLength = 24
    static let v5RecordLength = 48

    /// NetFlow v5: a 24-byte header and 1-30 fixed 48-byte records.
    mutating func decodeV5(_ datagram: [UInt8], exporter: IPAddress, receivedNs: UInt64, into result: inout DecodeResult) {
        var c = ByteCursor(datagram, from: 2)
        guard let count = c.u16(), let uptime = c.u32(), let seconds = c.u32(), let nanos = c.u32(),
              let sequence = c.u32(), let engineType = c.u8(), let engineID = c.u8(), let sampling = c.u16() else {
            result.malformed.append(.truncated)
            return
        }
        guard count >= 1, count <= 30, nanos < 1_000_000_000 else {
            result.malformed.append(.badHeader)
            return
        }
        guard datagram.count >= Self.v5HeaderLength + Int(count) * Self.v5RecordLength else {
            result.malformed.append(.truncated)
            return
        }
        let domain = ExporterDomain(version: .netflowV5, address: exporter, domain: UInt32(engineType) << 8 | UInt32(engineID))
        guard admit(domain, at: receivedNs, into: &result) else { return }
        guard checkSequence(sequence, next: UInt32(count), digest: Self.digest(datagram), domain: domain, at: receivedNs,
                            into: &result) else {
            result.records += Int(count)
            result.duplicateRecords += Int(count)
            return
        }
        // The low 14 bits are the interval; the top two the sampling mode.
        let interval = UInt64(sampling & 0x3FFF)
        if interval > 1 { result.samplingInterval = interval }
        let context = MessageContext(
            version: .netflowV5, exporter: domain,
            exportNs: RecordFields.checkedNs(seconds: UInt64(seconds), fractionNs: UInt64(nanos)),
            sysUptimeMs: uptime, receivedNs: receivedNs)
        for i in 0..<Int(count) {
            var r = ByteCursor(datagram, from: Self.v5HeaderLength + i * Self.v5RecordLength)
            guard let fields = Self.v5Record(&r) else { continue }
            result.records += 1
            if let reason = fields.appendUniflows(context, sampling: max(interval, 1), to: &result.flows) {
                result.malformed.append(reason)
            }
        }
    }

    /// One v5 record in the element terms of v9 and IPFIX.
    private static func v5Record(_ r: inout ByteCursor) -> RecordFields? {
        guard let src = r.u32(), let dst = r.u32(), r.skip(4), let input = r.u16(), r.skip(2),
              let packets = r.u32(), let octets = r.u32(), let first = r.u32(), let last = r.u32(),
              let sport = r.u16(), let dport = r.u16(), r.skip(1), let flags = r.u8(), let proto = r.u8() else { return nil }
        var f = RecordFields()
        f.sourceAddress = IPAddress(ipv4: src)
        f.destinationAddress = IPAddress(ipv4: dst)
        f.ingressInterface = UInt32(input)
        f.packets = UInt64(packets)
        f.bytes = UInt64(octets)
        f.startUptimeMs = first
        f.endUptimeMs = last
        f.sourcePort = sport
        f.destinationPort = dport
        f.tcpFlags = flags
        f.ipProtocol = proto
        return f
    }
}
