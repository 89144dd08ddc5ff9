internal import CLibbpf
import FlowForestCore

/// One kernel map entry in Swift terms: times already on the wall clock.
struct KernelFlow {
    var key: FlowKey
    var initiatorIsLow: Bool
    var ifindex: UInt32
    var low: DirectionStats
    var high: DirectionStats

    var packets: UInt64 { low.packets.addingSaturated(high.packets) }

    /// Both directions' totals, low endpoint first.
    var totals: KernelFlowTracker.Totals { KernelFlowTracker.Totals(low: low, high: high) }

    init(key: FlowKey, initiatorIsLow: Bool, ifindex: UInt32, low: DirectionStats, high: DirectionStats) {
        self.key = key
        self.initiatorIsLow = initiatorIsLow
        self.ifindex = ifindex
        self.low = low
        self.high = high
    }

    init(_ slot: flow_slot, wallOffsetNs: UInt64) {
        self.init(key: FlowKey(slot.key), slot: slot, wallOffsetNs: wallOffsetNs)
    }

    /// A slot's flow, its key already converted.
    init(key: FlowKey, slot v: flow_slot, wallOffsetNs: UInt64) {
        self.key = key
        initiatorIsLow = v.initiator == UInt8(FF_DIR_LO_TO_HI)
        ifindex = v.ifindex
        low = DirectionStats(v.dir.0, wallOffsetNs: wallOffsetNs)
        high = DirectionStats(v.dir.1, wallOffsetNs: wallOffsetNs)
    }
}

extension KernelFlowTracker.Totals {
    /// Both directions of a slot, low endpoint first, on the wall clock.
    init(_ slot: flow_slot, wallOffsetNs: UInt64) {
        self.init(low: DirectionStats(slot.dir.0, wallOffsetNs: wallOffsetNs),
                  high: DirectionStats(slot.dir.1, wallOffsetNs: wallOffsetNs))
    }
}

extension KernelFlowTracker.Summary {
    /// What the tracker's decisions read of a slot, without converting its totals.
    init(_ slot: UnsafePointer<flow_slot>, wallOffsetNs: UInt64) {
        let low = slot.pointee.dir.0, high = slot.pointee.dir.1
        let close = KernelFlowTracker.CloseSignals(rst: low.rst > 0 || high.rst > 0, finLow: low.fin > 0, finHigh: high.fin > 0)
        let last = max(low.packets > 0 ? low.last_seen_ns : 0, high.packets > 0 ? high.last_seen_ns : 0)
        self.init(packets: low.packets &+ high.packets, bytes: low.bytes &+ high.bytes,
                  lastSeenNs: last == 0 ? 0 : last &+ wallOffsetNs, close: close)
    }
}

/// A ring-buffer event: one packet whose flow the kernel could not insert.
struct KernelEvent {
    var key: FlowKey
    var senderIsLow: Bool
    var packet: PacketSummary

    init(key: FlowKey, senderIsLow: Bool, packet: PacketSummary) {
        self.key = key
        self.senderIsLow = senderIsLow
        self.packet = packet
    }

    init(_ e: flow_event, wallOffsetNs: UInt64) {
        key = FlowKey(e.key)
        senderIsLow = e.dir == UInt8(FF_DIR_LO_TO_HI)
        let (src, dst, sport, dport) = senderIsLow
            ? (key.lowAddress, key.highAddress, key.lowPort, key.highPort)
            : (key.highAddress, key.lowAddress, key.highPort, key.lowPort)
        packet = PacketSummary(
            timestampNs: e.ts_ns &+ wallOffsetNs, source: src, destination: dst,
            sourcePort: sport, destinationPort: dport, ipProtocol: key.ipProtocol, vlan: key.vlan,
            ipLength: e.ip_len, payloadLength: e.payload_len, tcpFlags: TCPFlags(rawValue: e.tcp_flags),
            tcpWindow: e.tcp_window, icmpType: e.icmp_type, icmpCode: e.icmp_code, interfaceIndex: e.ifindex)
    }
}

extension FlowKey {
    init(_ k: flow_key) {
        func address<T>(_ tuple: T) -> IPAddress {
            withUnsafeBytes(of: tuple) { raw in
                IPAddress(high: UInt64(bigEndian: raw.loadUnaligned(as: UInt64.self)),
                          low: UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self)))
            }
        }
        self.init(lowAddress: address(k.addr_lo), highAddress: address(k.addr_hi),
                  lowPort: k.port_lo, highPort: k.port_hi, ipProtocol: k.proto, vlan: k.vlan)
    }

    /// The kernel's key layout, for lookups by key.
    var kernelKey: flow_key {
        var k = flow_key()
        withUnsafeMutableBytes(of: &k.addr_lo) { raw in
            raw.storeBytes(of: lowAddress.high.bigEndian, as: UInt64.self)
            raw.storeBytes(of: lowAddress.low.bigEndian, toByteOffset: 8, as: UInt64.self)
        }
        withUnsafeMutableBytes(of: &k.addr_hi) { raw in
            raw.storeBytes(of: highAddress.high.bigEndian, as: UInt64.self)
            raw.storeBytes(of: highAddress.low.bigEndian, toByteOffset: 8, as: UInt64.self)
        }
        k.port_lo = lowPort
        k.port_hi = highPort
        k.proto = ipProtocol
        k.vlan = vlan
        return k
    }
}

extension DirectionStats {
    init(_ d: flow_dir_stats, wallOffsetNs: UInt64) {
        self.init()
        guard d.packets > 0 else { return }
        packets = d.packets
        bytes = d.bytes
        firstSeenNs = d.first_seen_ns &+ wallOffsetNs
        lastSeenNs = d.last_seen_ns &+ wallOffsetNs
        minLength = d.len_min
        maxLength = d.len_max
        sumSquaredLength = d.len_sum_sq
        iatSumUs = d.iat_sum_us
        iatSumSquaresUs = d.iat_sum_sq_us
        if d.packets >= 2 && d.iat_min_us != FF_IAT_UNSET {
            iatMinUs = d.iat_min_us
            iatMaxUs = d.iat_max_us
        }
        synCount = d.syn
        synAckCount = d.syn_ack
        finCount = d.fin
        rstCount = d.rst
        pshCount = d.psh
        ackCount = d.ack
        urgCount = d.urg
        payloadPackets = d.payload_packets
        initialWindow = d.init_window
        flags = TCPFlags(rawValue: d.flags_or)
        icmpType = d.icmp_type
        icmpCode = d.icmp_code
    }

    /// Both parts of one direction (kernel map and ring-buffer packets) as
    /// one. Inter-arrival sums lose the single gap between the two parts.
    static func merged(_ a: DirectionStats, _ b: DirectionStats) -> DirectionStats {
        if b.packets == 0 { return a }
        if a.packets == 0 { return b }
        // Firsts (initial window, ICMP type) come from the part seen first.
        var m = a.firstSeenNs <= b.firstSeenNs ? a : b
        m.packets = a.packets.addingSaturated(b.packets)
        m.bytes = a.bytes.addingSaturated(b.bytes)
        m.lastSeenNs = max(a.lastSeenNs, b.lastSeenNs)
        m.minLength = min(a.minLength, b.minLength)
        m.maxLength = max(a.maxLength, b.maxLength)
        m.sumSquaredLength = a.sumSquaredLength &+ b.sumSquaredLength
        m.iatSumUs = a.iatSumUs &+ b.iatSumUs
        m.iatSumSquaresUs = a.iatSumSquaresUs &+ b.iatSumSquaresUs
        switch (a.packets >= 2, b.packets >= 2) {
        case (true, true):
            m.iatMinUs = min(a.iatMinUs, b.iatMinUs)
            m.iatMaxUs = max(a.iatMaxUs, b.iatMaxUs)
        case (true, false): (m.iatMinUs, m.iatMaxUs) = (a.iatMinUs, a.iatMaxUs)
        case (false, true): (m.iatMinUs, m.iatMaxUs) = (b.iatMinUs, b.iatMaxUs)
        case (false, false): (m.iatMinUs, m.iatMaxUs) = (0, 0)
        }
        m.synCount = a.synCount &+ b.synCount
        m.synAckCount = a.synAckCount &+ b.synAckCount
        m.finCount = a.finCount &+ b.finCount
        m.rstCount = a.rstCount &+ b.rstCount
        m.pshCount = a.pshCount &+ b.pshCount
        m.ackCount = a.ackCount &+ b.ackCount
        m.urgCount = a.urgCount &+ b.urgCount
        m.payloadPackets = a.payloadPackets &+ b.payloadPackets
        m.flags = a.flags.union(b.flags)
        return m
    }
}

/// A NUL-terminated C buffer as a String.
func decodeCString(_ buffer: [CChar]) -> String {
    String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
