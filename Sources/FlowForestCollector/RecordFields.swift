import FlowForestCore

/// What one message's header says about time, and where it came from: the
/// context every record of the message is converted in.
struct MessageContext {
    var version: ExportVersion
    var exporter: ExporterDomain
    /// Export time from the header, ns since the epoch (nil when out of range).
    var exportNs: UInt64?
    /// The exporter's uptime at export, ms (v5 and v9 headers).
    var sysUptimeMs: UInt32?
    /// The collector's clock when the datagram arrived.
    var receivedNs: UInt64
}

/// The elements of one data record FlowForest uses, read by element id
/// (NetFlow v9 field types and IPFIX element ids agree on all of these).
/// Unknown elements are skipped; a known element with a length it cannot
/// have (an IPv4 address of 3 bytes) is ignored.
struct RecordFields {
    var sourceAddress: IPAddress?
    var destinationAddress: IPAddress?
    var sourcePort: UInt16 = 0
    var destinationPort: UInt16 = 0
    var ipProtocol: UInt8 = 0
    var tcpFlags: UInt8 = 0
    var packets: UInt64?
    var bytes: UInt64?
    var icmpTypeCode: UInt16?
    var vlan: UInt16 = 0
    var ingressInterface: UInt32 = 0
    var startNs: UInt64?
    var endNs: UInt64?
    var startUptimeMs: UInt32?
    var endUptimeMs: UInt32?
    var systemInitMs: UInt64?
    /// 1 in this many packets (elements 34, 50; after ``finishSampling()``
    /// also 305 and 306's ratio).
    var samplingInterval: UInt64?
    var packetInterval: UInt64?
    var packetSpace: UInt64?
    /// RFC 5103 reverse elements (FlowForest's `--ipfix-biflow`, YAF).
    var reversePackets: UInt64?
    var reverseBytes: UInt64?
    var reverseTCPFlags: UInt8 = 0
    var reverseStartNs: UInt64?
    var reverseEndNs: UInt64?

    /// Records one field's value; `value` holds exactly the field's bytes.
    mutating func read(_ field: FieldSpec, _ value: inout ByteCursor) {
        let length = value.remaining
        if field.enterprise == FieldSpec.reversePEN {
            readReverse(field.id, &value, length: length)
            return
        }
        guard field.enterprise == nil else { return }
        switch field.id {
        case 8 where length == 4: sourceAddress = value.u32().map { IPAddress(ipv4: $0) }
        case 12 where length == 4: destinationAddress = value.u32().map { IPAddress(ipv4: $0) }
        case 27 where length == 16: sourceAddress = Self.ipv6(&value)
        case 28 where length == 16: destinationAddress = Self.ipv6(&value)
        case 7: sourcePort = UInt16(truncatingIfNeeded: value.uint(min(length, 2)) ?? 0)
        case 11: destinationPort = UInt16(truncatingIfNeeded: value.uint(min(length, 2)) ?? 0)
        case 4 where length == 1: ipProtocol = value.u8() ?? 0
        // tcpControlBits is 2 bytes in IPFIX, 1 in NetFlow v9; the low byte holds the classic flags.
        case 6: tcpFlags = UInt8(truncatingIfNeeded: value.uint(length) ?? 0)
        // Delta counts, else total counts (exporters that send only totals, for records of ended flows).
        case 1: bytes = value.uint(length)
        case 85 where bytes == nil: bytes = value.uint(length)
        case 2: packets = value.uint(length)
        case 86 where packets == nil: packets = value.uint(length)
        case 32, 139: icmpTypeCode = value.uint(length).map { UInt16(truncatingIfNeeded: $0) }
        case 58, 243: vlan = UInt16(truncatingIfNeeded: value.uint(length) ?? 0) & 0x0FFF
        case 10: ingressInterface = UInt32(truncatingIfNeeded: value.uint(length) ?? 0)
        case 22: startUptimeMs = value.uint(length).map { UInt32(truncatingIfNeeded: $0) }
        case 21: endUptimeMs = value.uint(length).map { UInt32(truncatingIfNeeded: $0) }
        case 150, 151, 152, 153, 154, 155, 156, 157:
            let ns = Self.absoluteTime(field.id, &value, length: length)
            if field.id % 2 == 0 { startNs = ns ?? startNs } else { endNs = ns ?? endNs }
        case 160: systemInitMs = value.uint(length)
        // samplingInterval and samplerRandomInterval: 1 in N.
        case 34, 50: samplingInterval = value.uint(length)
        // RFC 5477 systematic count-based sampling: N packets taken, then M skipped.
        case 305: packetInterval = value.uint(length)
        case 306: packetSpace = value.uint(length)
        default: break
        }
    }

    /// Turns RFC 5477's packet interval and space (elements 305, 306: N
    /// packets taken, then M skipped) into the 1-in-(N+M)/N ratio, rounded,
    /// when no 1-in-N element (34, 50) came. An interval alone, with no
    /// space, takes every packet.
    mutating func finishSampling() {
        guard samplingInterval == nil, let taken = packetInterval, taken > 0 else { return }
        let (span, overflow) = taken.addingReportingOverflow(packetSpace ?? 0)
        samplingInterval = overflow ? .max : max(1, (span + taken / 2) / taken)
    }

    /// Sixteen bytes in network order as an address: two big-endian halves.
    private static func ipv6(_ value: inout ByteCursor) -> IPAddress? {
        guard let high = value.uint(8), let low = value.uint(8) else { return nil }
        return IPAddress(high: high, low: low)
    }

    private mutating func readReverse(_ id: UInt16, _ value: inout ByteCursor, length: Int) {
        switch id {
        case 1: reverseBytes = value.uint(length)
        case 2: reversePackets = value.uint(length)
        case 6: reverseTCPFlags = UInt8(truncatingIfNeeded: value.uint(length) ?? 0)
        case 150, 151, 152, 153, 154, 155, 156, 157:
            let ns = Self.absoluteTime(id, &value, length: length)
            if id % 2 == 0 { reverseStartNs = ns ?? reverseStartNs } else { reverseEndNs = ns ?? reverseEndNs }
        default: break
        }
    }

    /// flowStart/End in seconds (150/151), milliseconds (152/153), or NTP
    /// timestamps with micro- or nanosecond resolution (154-157), as ns
    /// since the epoch; nil when outside FlowForest's range.
    static func absoluteTime(_ id: UInt16, _ value: inout ByteCursor, length: Int) -> UInt64? {
        switch id {
        case 150, 151:
            guard length == 4, let s = value.u32() else { return nil }
            return checkedNs(seconds: UInt64(s), fractionNs: 0)
        case 152, 153:
            guard length == 8, let ms = value.uint(8) else { return nil }
            return checkedNs(seconds: ms / 1000, fractionNs: (ms % 1000) * 1_000_000)
        default:
            // NTP: seconds since 1900, then a 32-bit binary fraction (RFC 7011 §6.1.10).
            guard length == 8, let s = value.u32(), let fraction = value.u32() else { return nil }
            let ntpToUnix: UInt64 = 2_208_988_800
            guard UInt64(s) >= ntpToUnix else { return nil }
            return checkedNs(seconds: UInt64(s) - ntpToUnix, fractionNs: (UInt64(fraction) * 1_000_000_000) >> 32)
        }
    }

    static func checkedNs(seconds: UInt64, fractionNs: UInt64) -> UInt64? {
        guard seconds < UInt64(Timestamp.endSeconds) else { return nil }
        return seconds * 1_000_000_000 + fractionNs
    }
}

extension MessageContext {
    /// An uptime stamp as ns since the epoch: the header's export time minus
    /// how long before export it was. The difference is read as a signed
    /// 32-bit value, so an uptime that wrapped (after 49.7 days) or a stamp a
    /// little after the header's still converts; out of range gives nil.
    func uptimeNs(_ stampMs: UInt32) -> UInt64? {
        guard let exportNs, let sysUptimeMs else { return nil }
        let ageMs = Int64(Int32(bitPattern: sysUptimeMs &- stampMs))
        let (ns, overflow) = Int64(exportNs).subtractingReportingOverflow(ageMs * 1_000_000)
        guard !overflow, ns >= 0, UInt64(ns) < Timestamp.endNs else { return nil }
        return UInt64(ns)
    }

    /// A record's first and last packet times on the collector's time line:
    /// the exporter's stamps where they convert, else the export time, else
    /// arrival; never after arrival, so no record can keep a flow open by
    /// claiming a future time.
    func times(start: UInt64?, end: UInt64?) -> (first: UInt64, last: UInt64) {
        let fallback = min(exportNs ?? receivedNs, receivedNs)
        let last = min(end ?? start ?? fallback, receivedNs)
        let first = min(start ?? last, last)
        return (first, last)
    }
}

extension RecordFields {
    /// Packets or bytes one record may claim in a direction, sampling
    /// applied: 2^48, some 280 TB, more than a 400 Gb/s link carries in
    /// the longest active timeout routers use. A record claiming more is
    /// refused (``MalformedReason/implausibleCount``), so hostile counts
    /// never reach the flow table's sums.
    static let maxCount: UInt64 = 1 << 48
    /// The largest sampling interval taken: 1 in 2^24 packets.
    static let maxSampling: UInt64 = 1 << 24

    /// Appends the record's one or two directions (two for an RFC 5103
    /// biflow) to `out`, with sampling applied: counts multiplied by
    /// `sampling`, observed at the context's exporter (with the record's
    /// ingress interface as the flow's interface index). Returns why,
    /// appending nothing, when the record cannot be a flow: a count past
    /// ``maxCount``, or addresses of two families.
    func appendUniflows(_ context: MessageContext, sampling defaultSampling: UInt64,
                        to out: inout [UniflowSummary]) -> MalformedReason? {
        let name = InterfaceName(exporter: context.exporter.address)
        guard let src = sourceAddress, let dst = destinationAddress else { return .unusableRecord }
        guard src.isIPv4 == dst.isIPv4 else { return .badRecord }
        guard (packets ?? 0) > 0 || (reversePackets ?? 0) > 0 else { return .unusableRecord }
        let own = samplingInterval
        if let own, own > Self.maxSampling { return .implausibleSampling }
        let sampling = max(own ?? defaultSampling, 1)
        func scaled(_ v: UInt64) -> UInt64 {
            let (r, overflow) = v.multipliedReportingOverflow(by: sampling)
            return overflow ? .max : r
        }
        let (forward, reverse) = ((scaled(packets ?? 0), scaled(bytes ?? 0)), (scaled(reversePackets ?? 0), scaled(reverseBytes ?? 0)))
        guard max(forward.0, forward.1, reverse.0, reverse.1) <= Self.maxCount else { return .implausibleCount }
        var start = startNs, end = endNs
        if start == nil, let s = startUptimeMs { start = uptimeFromInit(s) ?? context.uptimeNs(s) }
        if end == nil, let e = endUptimeMs { end = uptimeFromInit(e) ?? context.uptimeNs(e) }
        let icmp = IPProtocol.isICMP(ipProtocol)
        // Exporters without an ICMP type-code element (v5, softflowd) put it in the destination port.
        let typeCode = icmpTypeCode ?? (icmp ? destinationPort : 0)
        let (type, code) = (UInt8(typeCode >> 8), UInt8(typeCode & 0xFF))
        let v6 = !src.isIPv4
        let ports = icmp ? IPProtocol.icmpPorts(type: type, code: code, v6: v6) : (sourcePort, destinationPort)
        if forward.0 > 0 {
            let t = context.times(start: start, end: end)
            out.append(UniflowSummary(
                firstSeenNs: t.first, lastSeenNs: t.last, source: src, destination: dst,
                sourcePort: ports.0, destinationPort: ports.1, ipProtocol: ipProtocol, vlan: vlan,
                packets: forward.0, bytes: forward.1, tcpFlags: TCPFlags(rawValue: ipProtocol == IPProtocol.tcp ? tcpFlags : 0),
                icmpType: icmp ? type : 0, icmpCode: icmp ? code : 0, interfaceIndex: ingressInterface, interface: name))
        }
        if reverse.0 > 0 {
            let t = context.times(start: reverseStartNs ?? start, end: reverseEndNs ?? end)
            // The reply's ICMP ports are the request's mirrored, as capture keys them.
            let reversePorts = (ports.1, ports.0)
            out.append(UniflowSummary(
                firstSeenNs: t.first, lastSeenNs: t.last, source: dst, destination: src,
                sourcePort: reversePorts.0, destinationPort: reversePorts.1, ipProtocol: ipProtocol, vlan: vlan,
                packets: reverse.0, bytes: reverse.1,
                tcpFlags: TCPFlags(rawValue: ipProtocol == IPProtocol.tcp ? reverseTCPFlags : 0),
                interfaceIndex: ingressInterface, interface: name))
        }
        return nil
    }

    /// IPFIX flowStart/EndSysUpTime relative to systemInitTimeMilliseconds, when the record has both.
    private func uptimeFromInit(_ stampMs: UInt32) -> UInt64? {
        guard let initMs = systemInitMs else { return nil }
        let (ms, overflow) = initMs.addingReportingOverflow(UInt64(stampMs))
        guard !overflow else { return nil }
        return RecordFields.checkedNs(seconds: ms / 1000, fractionNs: (ms % 1000) * 1_000_000)
    }
}
