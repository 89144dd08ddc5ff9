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
        let flow = Self.kernelFlow(lowPackets: 3, highPackets: 2)
        tracker.observe(flow)
        _ = tracker.checkpoint(at: Self.t0 + Self.second)
        // Not read since: the checkpoint reads the entry for the interim record's totals.
        let map = [Self.key: flow]
        let interimRecords = tracker.checkpoint(at: Self.t0 + 60 * Self.second, map: map)
        let interim = try #require(interimRecords.first)
        #expect(interim.state == .interim)
        #expect(interim.packets == 5)
        // The window restarted at the interim record and nothing changed since.
        #expect(tracker.checkpoint(at: Self.t0 + 61 * Self.second).isEmpty)
        #expect(tracker.checkpoint(at: Self.t0 + 119 * Self.second).isEmpty)
        #expect(tracker.checkpoint(at: Self.t0 + 120 * Self.second, map: map).first?.state == .interim)
    }

    @Test("an interim record of a flow the walk found unchanged carries its full totals, read again; a changed one is not read")
    func interimOfQuietFlow() throws {
        var tracker = KernelFlowTracker(configuration: Self.configuration)
        let flow = Self.kernelFlow(lowPackets: 3, highPackets: 2, lowFlags: [.psh, .ack])
        var conversions = 0
        func walk(_ flow: KernelFlow) { tracker.observe(Self.key, kernelPackets: flow.packets) { conversions += 1; return flow } }
        walk(flow)
        _ = tracker.checkpoint(at: Self.t0 + Self.second)
        walk(flow)
        #expect(conversions == 1)
        var reads = 0
        var records: [FlowRecord] = []
        tracker.checkpoint(at: Self.t0 + 60 * Self.second, appendingTo: &records) { key, _ in
            reads += 1
            return key == Self.key ? flow.totals : nil
        }
        #expect(reads == 1)
        let interim = try #require(records.first)
        #expect(interim.state == .interim)
        #expect(interim.forward == flow.low && interim.reverse == flow.high)

        // Changed when its next window ends: the walk's totals are the record's.
        let grown = Self.kernelFlow(lowPackets: 4, highPackets: 2)
        walk(grown)
        let nextRecords = tracker.checkpoint(at: Self.t0 + 120 * Self.second)
        let next = try #require(nextRecords.first)
        #expect(next.state == .interim && next.forward == grown.low && next.reverse == grown.high)
    }

    @Test("a re-read that finds packets counted since the walk puts them in the record and in the flow's summary")
    func rereadFindsNewPackets() throws {
        var tracker = KernelFlowTracker(configuration: Self.configuration)
        let flow = Self.kernelFlow(lowPackets: 3, highPackets: 2)
        tracker.observe(Self.key, kernelPackets: flow.packets) { flow }
        _ = tracker.checkpoint(at: Self.t0 + Self.second)
        tracker.observe(Self.key, kernelPackets: flow.packets) { flow }
        // Two more packets between the walk and the checkpoint's read.
        let later = Self.kernelFlow(lowPackets: 4, highPackets: 3)
        let interimRecords = tracker.checkpoint(at: Self.t0 + 60 * Self.second, map: [Self.key: later])
        let interim = try #require(interimRecords.first)
        #expect(interim.state == .interim && interim.forward == later.low && interim.reverse == later.high)
        #expect(tracker.entries[Self.key]?.packets == 7 && tracker.entries[Self.key]?.lastSeenNs == later.low.lastSeenNs)
        #expect(tracker.accounted.packets == 7)
        // The next walk finds what the record already carries: nothing to convert or report.
        tracker.observe(Self.key, kernelPackets: later.packets) {
            Issue.record("an entry the checkpoint read was converted again")
            return later
        }
        #expect(tracker.checkpoint(at: Self.t0 + 61 * Self.second).isEmpty)
    }

    @Test("totals staged for a flow not due a record go with their poll; a later poll's are never taken for them")
    func stagedButNotDue() throws {
        var tracker = KernelFlowTracker(configuration: Self.configuration)
        let flow = Self.kernelFlow(lowPackets: 3, highPackets: 2)
        tracker.observe(flow)
        let firstRecords = tracker.checkpoint(at: Self.t0 + Self.second)
        let first = try #require(firstRecords.first)
        // Read again with nothing new: staged, but no record due.
        tracker.observe(flow)
        #expect(tracker.checkpoint(at: Self.t0 + 2 * Self.second).isEmpty)
        // Another flow's read is the first staged in a later poll.
        let otherKey = FlowKey(lowAddress: Self.low, highAddress: Self.high, lowPort: 40001, highPort: 443,
                               ipProtocol: IPProtocol.tcp, vlan: 0)
        tracker.observe(KernelFlow(key: otherKey, initiatorIsLow: true, ifindex: 3,
                                   low: Self.direction(packets: 9, start: Self.t0 + 50 * Self.second, from: Self.low, to: Self.high),
                                   high: DirectionStats()))
        let records = tracker.checkpoint(at: Self.t0 + 60 * Self.second, map: [Self.key: flow])
        let interim = try #require(records.first { $0.id == first.id })
        #expect(interim.state == .interim && interim.forward == flow.low && interim.reverse == flow.high)
        #expect(records.count == 2)
    }

    @Test("a quiet flow whose entry is gone at its active timeout gets no interim record and keeps its window")
    func interimOfVanishedEntry() {
        var tracker = KernelFlowTracker(configuration: Self.configuration)
        tracker.observe(Self.kernelFlow(lowPackets: 3, highPackets: 2))
        _ = tracker.checkpoint(at: Self.t0 + Self.second)
        #expect(tracker.checkpoint(at: Self.t0 + 60 * Self.second, map: [:]).isEmpty)
        #expect(tracker.entries[Self.key]?.windowStartNs == Self.t0)
        #expect(tracker.entries[Self.key]?.emittedPackets == 5)
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

    @Test("a flow read changed and ended in the same poll has only its ended record: the totals taken, else the read's")
    func changedAndEnded() throws {
        for taken in [true, false] {
            var tracker = KernelFlowTracker(configuration: Self.configuration)
            tracker.observe(Self.kernelFlow(lowPackets: 2, highPackets: 1))
            _ = tracker.checkpoint(at: Self.t0 + Self.second)
            let read = Self.kernelFlow(lowPackets: 3, highPackets: 2)
            tracker.observe(Self.key, kernelPackets: read.packets) { read }
            // Taken: one more packet arrived between the walk and the take.
            let final = Self.kernelFlow(lowPackets: 4, highPackets: 2)
            let last = tracker.end(Self.key, final: taken ? final : nil, reason: .idle)
            let ended = try #require(last)
            let expected = taken ? final : read
            #expect(ended.state == .ended && ended.endReason == .idle)
            #expect(ended.forward == expected.low && ended.reverse == expected.high)
            #expect(tracker.checkpoint(at: Self.t0 + 2 * Self.second).isEmpty)
            #expect(tracker.accounted.packets == expected.packets && tracker.accounted.bytes == ended.bytes)
        }
    }

    @Test("a kernel flow whose entry vanished, with no totals read this poll, ends counted but without a record")
    func vanishedEntryEnds() {
        var tracker = KernelFlowTracker(configuration: Self.configuration)
        tracker.observe(Self.kernelFlow(lowPackets: 3, highPackets: 2))
        _ = tracker.checkpoint(at: Self.t0 + Self.second)
        #expect(tracker.end(Self.key, final: nil, reason: .idle) == nil)
        #expect(tracker.flowsEnded == 1 && tracker.entries.isEmpty)
        #expect(tracker.accounted.packets == 5 && tracker.accounted.bytes == 500)
    }

    @Test("a TCP flow closed by FIN both ways ends as tcp_close with the final totals, its close seen without reading it")
    func tcpCloseEnd() throws {
        var tracker = KernelFlowTracker(configuration: Self.configuration)
        let closing = Self.kernelFlow(lowPackets: 4, highPackets: 3, lowFlags: [.fin, .ack], highFlags: [.fin, .ack])
        tracker.observe(Self.key, kernelPackets: closing.packets) { closing }
        #expect(tracker.checkpoint(at: Self.t0 + Self.second / 2).first?.state == .active)
        // The next walk finds it unchanged; the close decision needs no totals.
        tracker.observe(Self.key, kernelPackets: closing.packets) {
            Issue.record("an unchanged entry was converted")
            return closing
        }
        let last = tracker.entries[Self.key]!.lastSeenNs
        let due = try #require(tracker.due(at: last + Self.second).first)
        #expect(due.reason == .tcpClose && due.inKernel)
        let lastRecord = tracker.end(Self.key, final: closing, reason: due.reason)
        let ended = try #require(lastRecord)
        #expect(ended.state == .ended && ended.endReason == .tcpClose)
        #expect(ended.forward == closing.low && ended.reverse == closing.high)
        #expect(ended.forward.finCount == 4 && ended.reverse.finCount == 3)
        #expect(tracker.checkpoint(at: last + Self.second).isEmpty)
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

    @Test("a responder's packet met in the ring buffer before the kernel's entry is read does not make the responder the initiator")
    func ringPacketBeforeKernelEntry() throws {
        // A download's server data, sent to the ring buffer while the flow's
        // kernel slot was locked; the kernel's entry holds the client's SYN, 50 ms earlier.
        // Both ways a poll reads the kernel's entry: whole, or (the daemon's
        // walk) by its slot, converted only when needed.
        func run(ringAt ring: UInt64, walk: Bool) throws -> FlowRecord {
            var tracker = KernelFlowTracker(configuration: Self.configuration)
            let data = PacketSummary(timestampNs: ring, source: Self.high, destination: Self.low, sourcePort: 443,
                                     destinationPort: 40000, ipProtocol: IPProtocol.tcp, ipLength: 1500, tcpFlags: [.ack, .psh])
            tracker.observe(KernelEvent(key: Self.key, senderIsLow: false, packet: data))
            let flow = Self.kernelFlow(lowPackets: 3, highPackets: 2, initiatorIsLow: true)
            if walk {
                tracker.observe(Self.key, kernelSlot: 7, kernelPackets: 5, summary: { .init(flow) }, convert: { flow })
                var records: [FlowRecord] = []
                tracker.checkpoint(at: Self.t0 + Self.second, appendingTo: &records) { _, slot in
                    slot == 7 ? KernelFlowTracker.Totals(low: flow.low, high: flow.high) : nil
                }
                return try #require(records.first)
            }
            tracker.observe(flow)
            return try #require(tracker.checkpoint(at: Self.t0 + Self.second).first)
        }
        for walk in [false, true] {
            let download = try run(ringAt: Self.t0 + 50_000_000, walk: walk)
            #expect(download.sourceAddress == Self.low && download.sourcePort == 40000, "the client opened it (walk: \(walk))")
            #expect(download.forward.packets == 3 && download.reverse.packets == 3)
            // The ring buffer's packet came first (the map was full then): it still decides.
            let ringFirst = try run(ringAt: Self.t0 - 50_000_000, walk: walk)
            #expect(ringFirst.sourceAddress == Self.high, "walk: \(walk)")
        }
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

    @Test("a flow only ever seen in the ring buffer ends with its ring-buffer totals, oriented and whole")
    func ringOnlyEnd() throws {
        var tracker = KernelFlowTracker(configuration: Self.configuration)
        func packet(_ i: UInt64, fromLow: Bool, _ flags: TCPFlags) -> KernelEvent {
            let p = PacketSummary(timestampNs: Self.t0 + i * 1_000_000, source: fromLow ? Self.low : Self.high,
                                  destination: fromLow ? Self.high : Self.low, sourcePort: fromLow ? 40000 : 443,
                                  destinationPort: fromLow ? 443 : 40000, ipProtocol: IPProtocol.tcp,
                                  ipLength: fromLow ? 60 : 80, tcpFlags: flags, tcpWindow: 1000)
            return KernelEvent(key: Self.key, senderIsLow: fromLow, packet: p)
        }
        tracker.observe(packet(0, fromLow: true, [.syn]))
        tracker.observe(packet(1, fromLow: false, [.syn, .ack]))
        tracker.observe(packet(2, fromLow: true, [.ack]))
        let activeRecords = tracker.checkpoint(at: Self.t0 + Self.second)
        let active = try #require(activeRecords.first)
        let due = try #require(tracker.due(at: Self.t0 + 16 * Self.second).first)
        #expect(due.reason == .idle && !due.inKernel)
        let last = tracker.end(Self.key, final: nil, reason: due.reason)
        let ended = try #require(last)
        #expect(ended.id == active.id && ended.state == .ended && ended.endReason == .idle)
        #expect(ended.sourceAddress == Self.low && ended.sourcePort == 40000)
        #expect(ended.forward.packets == 2 && ended.forward.synCount == 1 && ended.forward.bytes == 120)
        #expect(ended.reverse.packets == 1 && ended.reverse.synAckCount == 1 && ended.reverse.bytes == 80)
        #expect(ended.forward.iatMinUs == 2_000 && ended.forward.initialWindow == 1000)
        #expect(tracker.accounted.packets == 3 && tracker.accounted.bytes == 200)
        #expect(tracker.entries.isEmpty)
    }

    @Test("ring-buffer packets drained after the walk are in that poll's record; alone, they have the entry read again")
    func ringBufferAfterWalk() throws {
        var tracker = KernelFlowTracker(configuration: Self.configuration)
        let flow = Self.kernelFlow(lowPackets: 3, highPackets: 2)
        func late(_ i: UInt64) -> (KernelEvent, DirectionStats) {
            let p = PacketSummary(timestampNs: Self.t0 + i * Self.second, source: Self.low, destination: Self.high,
                                  sourcePort: 40000, destinationPort: 443, ipProtocol: IPProtocol.tcp, ipLength: 60,
                                  tcpFlags: [.ack])
            var d = DirectionStats()
            d.add(p)
            return (KernelEvent(key: Self.key, senderIsLow: true, packet: p), d)
        }
        tracker.observe(Self.key, kernelPackets: flow.packets) { flow }
        let (first, firstStats) = late(1)
        tracker.observe(first)
        let records = tracker.checkpoint(at: Self.t0 + 2 * Self.second)
        let record = try #require(records.first)
        #expect(record.forward == DirectionStats.merged(flow.low, firstStats) && record.reverse == flow.high)

        // Next poll the walk finds the entry unchanged; a ring-buffer packet alone is a change.
        tracker.observe(Self.key, kernelPackets: flow.packets) { flow }
        let (second, _) = late(3)
        tracker.observe(second)
        let nextRecords = tracker.checkpoint(at: Self.t0 + 4 * Self.second, map: [Self.key: flow])
        let next = try #require(nextRecords.first)
        #expect(next.state == .active && next.packets == 7 && next.reverse == flow.high)
    }
}

extension KernelFlowTracker {
    /// A checkpoint with `map` as the kernel map its re-reads look up; with
    /// no map, any re-read is a test failure.
    mutating func checkpoint(at nowNs: UInt64, map: [FlowKey: KernelFlow]? = nil) -> [FlowRecord] {
        var records: [FlowRecord] = []
        checkpoint(at: nowNs, appendingTo: &records) { key, _ in
            guard let map else {
                Issue.record("the checkpoint read \(key) again, with no kernel map to read")
                return nil
            }
            return map[key]?.totals
        }
        return records
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
