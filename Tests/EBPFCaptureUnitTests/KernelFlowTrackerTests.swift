import FlowForestCore
import Testing
@testable import EBPFCapture

/// The drainer's bookkeeping, fed kernel records built in Swift: no BPF
/// program, no map, no root.
@Suite("Kernel flow tracker")
struct KernelFlowTrackerTests {
    static let low = IPAddress("10.0.0.1")!
    static let high = IPAddress("10.0.0.2")!
    static let key = FlowKey(lowAddress: low, highAddress: high, lowPort: 40000, highPort: 443, ipProtocol: IPProtocol.tcp, vlan: 0)
    static let second: UInt64 = 1_000_000_000
    static let t0: UInt64 = 1_700_000_000 * second

    static let configuration = FlowTableConfiguration(
        idleTimeoutNs: 15 * second, activeTimeoutNs: 60 * second, tcpCloseTimeoutNs: second)

    /// One direction's kernel totals: `packets` packets of `length` bytes,
    /// one every 10 ms from `start`, sent from `from` to `to`, with `flags` on each.
    static func direction(packets: Int, length: UInt32 = 100, start: UInt64, from: IPAddress, to: IPAddress,
                          flags: TCPFlags = [.ack]) -> DirectionStats {
        var d = DirectionStats()
        for i in 0..<packets {
            d.add(PacketSummary(timestampNs: start + UInt64(i) * 10_000_000, source: from, destination: to,
                                sourcePort: from == low ? 40000 : 443, destinationPort: from == low ? 443 : 40000,
                                ipProtocol: IPProtocol.tcp, ipLength: length, tcpFlags: flags))
        }
        return d
    }

    /// The kernel's view of the flow: the high address (443) answered the low one.
    static func kernelFlow(lowPackets: Int, highPackets: Int, initiatorIsLow: Bool = true,
                           lowFlags: TCPFlags = [.ack], highFlags: TCPFlags = [.ack]) -> KernelFlow {
        KernelFlow(key: key, initiatorIsLow: initiatorIsLow, ifindex: 3,
                   low: direction(packets: lowPackets, start: t0, from: low, to: high, flags: lowFlags),
                   high: direction(packets: highPackets, start: t0 + 5_000_000, from: high, to: low, flags: highFlags))
    }

    @Test("cumulative kernel totals become one record per change, oriented by the initiator, never deltas")
    func activeRecords() throws {
        var tracker = KernelFlowTracker(configuration: Self.configuration)
        tracker.interfaceNames[3] = "eth0"
        tracker.observe(Self.kernelFlow(lowPackets: 3, highPackets: 2))
        let first = tracker.checkpoint(at: Self.t0 + Self.second)
        #expect(first.count == 1)
        let record = try #require(first.first)
        #expect(record.state == .active)
        #expect(record.sourceAddress == Self.low && record.sourcePort == 40000)
        #expect(record.destinationAddress == Self.high && record.destinationPort == 443)
        #expect(record.forward.packets == 3 && record.reverse.packets == 2)
        #expect(record.interfaceName == "eth0")
        #expect(tracker.flowsStarted == 1)

        // Unchanged totals: nothing to report.
        #expect(tracker.checkpoint(at: Self.t0 + 2 * Self.second).isEmpty)

        // The kernel's totals grew: the record carries the new totals, same id.
        tracker.observe(Self.kernelFlow(lowPackets: 5, highPackets: 4))
        let nextRecords = tracker.checkpoint(at: Self.t0 + 3 * Self.second)
        let next = try #require(nextRecords.first)
        #expect(next.id == record.id)
        #expect(next.forward.packets == 5 && next.reverse.packets == 4)
        #expect(next.forward.bytes == 500 && next.reverse.bytes == 400)
        #expect(tracker.flowsStarted == 1)
    }

    @Test("the high address as initiator makes it the source")
    func initiatorIsHigh() throws {
        var tracker = KernelFlowTracker(configuration: Self.configuration)
        tracker.observe(Self.kernelFlow(lowPackets: 1, highPackets: 4, initiatorIsLow: false))
        let recordRecords = tracker.checkpoint(at: Self.t0 + Self.second)
        let record = try #require(recordRecords.first)
        #expect(record.sourceAddress == Self.high && record.sourcePort == 443)
        #expect(record.forward.packets == 4 && record.reverse.packets == 1)
    }

    @Test("an entry whose packet count did not change is not converted again")
    func unchangedEntryIsNotConverted() {
        var tracker = KernelFlowTracker(configuration: Self.configuration)
        var conversions = 0
        let flow = Self.kernelFlow(lowPackets: 3, highPackets: 2)
        tracker.observe(Self.key, kernelPackets: flow.packets) { conversions += 1; return flow }
        tracker.observe(Self.key, kernelPackets: flow.packets) { conversions += 1; return flow }
        #expect(conversions == 1)
        let grown = Self.kernelFlow(lowPackets: 4, highPackets: 2)
        tracker.observe(Self.key, kernelPackets: grown.packets) { conversions += 1; return grown }
        #expect(conversions == 2)
        #expect(tracker.entries[Self.key]?.packets == 6)
    }

    @Test("a flow past its active timeout gets an interim record with totals, and a fresh window")
    func interimAtActiveTimeout() throws {
        var tracker = KernelFlowTracker(configuration: Self.configuration)
        tracker.observe(Self.kernelFlow(lowPackets: 3, highPackets: 2))
        _ = tracker.checkpoint(at: Self.t0 + Self.second)
        let interimRecords = tracker.checkpoint(at: Self.t0 + 60 * Self.second)
        let interim = try #require(interimRecords.first)
        #expect(interim.state == .interim)
        #expect(interim.packets == 5)
        // The window restarted at the interim record and nothing changed since.
        #expect(tracker.checkpoint(at: Self.t0 + 61 * Self.second).isEmpty)
        #expect(tracker.checkpoint(at: Self.t0 + 119 * Self.second).isEmpty)
        #expect(tracker.checkpoint(at: Self.t0 + 120 * Self.second).first?.state == .interim)
    }

    @Test("an idle flow is due; ending it with its final kernel totals gives the ended record and the accounting")
    func idleEnd() throws {
        var tracker = KernelFlowTracker(configuration: Self.configuration)
        tracker.observe(Self.kernelFlow(lowPackets: 3, highPackets: 2))
        let lastPacket = tracker.entries[Self.key]!.lastSeenNs
        #expect(tracker.due(at: lastPacket + 14 * Self.second).isEmpty)
        let due = try #require(tracker.due(at: lastPacket + 15 * Self.second).first)
        #expect(due.key == Self.key && due.reason == .idle && due.inKernel)

        let final = Self.kernelFlow(lowPackets: 4, highPackets: 2)
        let last = tracker.end(Self.key, final: final, reason: due.reason)
        let ended = try #require(last)
        #expect(ended.state == .ended && ended.endReason == .idle)
        #expect(ended.packets == 6 && ended.bytes == 600)
        #expect(tracker.flowsEnded == 1)
        #expect(tracker.entries.isEmpty)
        #expect(tracker.accounted.packets == 6 && tracker.accounted.bytes == 600)
        #expect(tracker.end(Self.key, final: nil, reason: .idle) == nil)
        #expect(tracker.flowsEnded == 1)
    }

    @Test("a TCP flow closed by FIN both ways, or by a RST, is due after the close timeout, not the idle one")
    func tcpClose() {
        for (lowFlags, highFlags) in [(TCPFlags([.fin, .ack]), TCPFlags([.fin, .ack])), ([.rst], [.ack])] {
            var tracker = KernelFlowTracker(configuration: Self.configuration)
            tracker.observe(Self.kernelFlow(lowPackets: 2, highPackets: 2, lowFlags: lowFlags, highFlags: highFlags))
            let last = tracker.entries[Self.key]!.lastSeenNs
            #expect(tracker.due(at: last + Self.second / 2).isEmpty)
            #expect(tracker.due(at: last + Self.second).map { $0.reason } == [.tcpClose])
        }
        // FIN one way only is not a close.
        var tracker = KernelFlowTracker(configuration: Self.configuration)
        tracker.observe(Self.kernelFlow(lowPackets: 2, highPackets: 2, lowFlags: [.fin, .ack]))
        let last = tracker.entries[Self.key]!.lastSeenNs
        #expect(tracker.due(at: last + 2 * Self.second).isEmpty)
    }

    @Test("ring-buffer packets of new flows beyond --max-flows are counted, not tracked; known flows still take theirs")
    func ringBufferCap() {
        var configuration = Self.configuration
        configuration.maxFlows = 2
        var tracker = KernelFlowTracker(configuration: configuration)
        func packet(from port: UInt16) -> KernelEvent {
            let p = PacketSummary(timestampNs: Self.t0, source: Self.low, destination: Self.high, sourcePort: port,
                                  destinationPort: 443, ipProtocol: IPProtocol.tcp, ipLength: 60, tcpFlags: [.syn])
            let (key, senderIsLow) = FlowKey.of(p)
            return KernelEvent(key: key, senderIsLow: senderIsLow, packet: p)
        }
        for port: UInt16 in [40000, 40001, 40002, 40000] { tracker.observe(packet(from: port)) }
        #expect(tracker.entries.count == 2)
        #expect(tracker.overflowPackets == 3 && tracker.overflowPacketsNotTracked == 1)
        #expect(tracker.flowsStarted == 2)
    }

    @Test("ring-buffer packets of a flow the kernel could not insert make their own flow, merged with later kernel totals")
    func ringBufferPackets() throws {
        var tracker = KernelFlowTracker(configuration: Self.configuration)
        // A SYN-ACK seen first: its receiver (the low address) opened the flow.
        let synAck = PacketSummary(timestampNs: Self.t0, source: Self.high, destination: Self.low, sourcePort: 443,
                                   destinationPort: 40000, ipProtocol: IPProtocol.tcp, ipLength: 60, tcpFlags: [.syn, .ack])
        tracker.observe(KernelEvent(key: Self.key, senderIsLow: false, packet: synAck))
        #expect(tracker.overflowPackets == 1)
        #expect(tracker.entries[Self.key]?.inKernel == false)
        let firstRecords = tracker.checkpoint(at: Self.t0 + Self.second)
        let first = try #require(firstRecords.first)
        #expect(first.sourceAddress == Self.low)
        #expect(first.forward.packets == 0 && first.reverse.packets == 1 && first.reverse.synAckCount == 1)

        // Later the kernel holds the flow: both parts count.
        tracker.observe(Self.kernelFlow(lowPackets: 3, highPackets: 2))
        let mergedRecords = tracker.checkpoint(at: Self.t0 + 2 * Self.second)
        let merged = try #require(mergedRecords.first)
        #expect(merged.id == first.id)
        #expect(merged.forward.packets == 3 && merged.reverse.packets == 3)
        #expect(merged.reverse.bytes == 260)
        #expect(tracker.flowsStarted == 1)
        #expect(tracker.due(at: Self.t0 + 60 * Self.second).first?.inKernel == true)

        // A flow only ever seen in the ring buffer has no kernel entry to take.
        var ringOnly = KernelFlowTracker(configuration: Self.configuration)
        ringOnly.observe(KernelEvent(key: Self.key, senderIsLow: false, packet: synAck))
        #expect(ringOnly.due(at: Self.t0 + 60 * Self.second).first?.inKernel == false)
        let last = ringOnly.end(Self.key, final: nil, reason: .idle)
        let ended = try #require(last)
        #expect(ended.packets == 1 && ringOnly.accounted.packets == 1)
    }
}

@Suite("DirectionStats.merged")
struct DirectionStatsMergedTests {
    static let a = IPAddress("10.0.0.1")!
    static let b = IPAddress("10.0.0.2")!

    static func stats(_ times: [UInt64], length: UInt32, window: UInt16 = 0, flags: TCPFlags = [.ack]) -> DirectionStats {
        var d = DirectionStats()
        for t in times {
            d.add(PacketSummary(timestampNs: t, source: a, destination: b, ipProtocol: IPProtocol.tcp, ipLength: length,
                                payloadLength: length - 40, tcpFlags: flags, tcpWindow: window))
        }
        return d
    }

    @Test("an empty part leaves the other unchanged")
    func emptyPart() {
        let s = Self.stats([1_000, 2_000_000], length: 100)
        #expect(DirectionStats.merged(s, DirectionStats()) == s)
        #expect(DirectionStats.merged(DirectionStats(), s) == s)
    }

    @Test("counts and sums add, extremes combine, firsts come from the part seen first")
    func sumsAndExtremes() {
        let kernel = Self.stats([10_000_000, 20_000_000, 50_000_000], length: 100, window: 1000, flags: [.ack])
        let ring = Self.stats([5_000_000, 8_000_000], length: 1500, window: 2000, flags: [.psh, .ack])
        let m = DirectionStats.merged(kernel, ring)
        #expect(m.packets == 5)
        #expect(m.bytes == 3 * 100 + 2 * 1500)
        #expect(m.firstSeenNs == 5_000_000 && m.lastSeenNs == 50_000_000)
        #expect(m.minLength == 100 && m.maxLength == 1500)
        #expect(m.sumSquaredLength == 3 * 100 * 100 + 2 * 1500 * 1500)
        #expect(m.initialWindow == 2000)
        #expect(m.ackCount == 5 && m.pshCount == 2)
        #expect(m.payloadPackets == 5)
        #expect(m.flags == [.psh, .ack])
        // The gap between the two parts is lost; each part's own gaps remain.
        #expect(m.iatSumUs == kernel.iatSumUs + ring.iatSumUs)
        #expect(m.iatMinUs == 3_000 && m.iatMaxUs == 30_000)
        #expect(DirectionStats.merged(ring, kernel) == m)
    }

    @Test("inter-arrival extremes come only from parts with at least two packets")
    func interArrivalExtremes() {
        let two = Self.stats([1_000_000, 4_000_000], length: 100)
        let one = Self.stats([9_000_000], length: 100)
        let m = DirectionStats.merged(two, one)
        #expect(m.iatMinUs == 3_000 && m.iatMaxUs == 3_000)
        #expect(DirectionStats.merged(one, two).iatMinUs == 3_000)
        let single = DirectionStats.merged(one, Self.stats([20_000_000], length: 100))
        #expect(single.packets == 2 && single.iatMinUs == 0 && single.iatMaxUs == 0)
    }
}
