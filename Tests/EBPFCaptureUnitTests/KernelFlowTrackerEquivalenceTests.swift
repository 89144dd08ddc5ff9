import FlowForestCore
import FlowForestDetection
import Testing
@testable import EBPFCapture

/// The drainer's tracker against the one it replaced, which kept the
/// kernel's full totals in every slot: the same polls over the same
/// simulated kernel map must give the same records, end decisions and
/// accounting. Only the order of a checkpoint's records may differ (neither
/// promises one), so those are compared by id.
@Suite("Kernel flow tracker against its full-totals reference")
struct KernelFlowTrackerEquivalenceTests {
    static let second: UInt64 = 1_000_000_000
    static let t0: UInt64 = 1_700_000_000 * second
    static let configuration: FlowTableConfiguration = {
        var c = FlowTableConfiguration(idleTimeoutNs: 15 * second, activeTimeoutNs: 60 * second, tcpCloseTimeoutNs: second)
        // Low enough that ring-buffer flows meet the cap.
        c.maxFlows = 12
        return c
    }()

    @Test("the same records, end decisions and accounting over random polls", arguments: [1, 2, 3, 4, 5, 6, 7, 8] as [UInt64])
    func randomPolls(seed: UInt64) throws {
        var world = SimulatedKernel(seed: seed, start: Self.t0)
        var tracker = KernelFlowTracker(configuration: Self.configuration)
        var reference = ReferenceKernelFlowTracker(configuration: Self.configuration)
        tracker.interfaceNames = [1: "eth0", 2: "eth1"]
        reference.interfaceNames = tracker.interfaceNames
        var records = 0
        for poll in 0..<400 {
            let events = world.advance()
            let context = "seed \(seed), poll \(poll)"
            records += try world.poll(&tracker, &reference, events: events, context: context)
        }
        records += try world.finalDrain(&tracker, &reference, events: world.advance(), context: "seed \(seed), final drain")
        #expect(records > 1000, "too few records to say much (seed \(seed))")
    }
}

/// A kernel flow map and the packets that reach it, driven by a seeded
/// generator: each poll some flows send packets (into the map, or into the
/// ring buffer when "the map is full"), and time moves on by amounts that
/// cross the close, idle and active timeouts.
struct SimulatedKernel {
    var rng: SeededGenerator
    var nowNs: UInt64
    var map: [FlowKey: KernelFlow] = [:]
    /// Each mapped flow's kernel slot, freed slots taken again first as the
    /// program does: a slot's hint in the tracker then often names a flow
    /// that ended or moved.
    var kernelSlots: [FlowKey: UInt32] = [:]
    var freeSlots: [UInt32] = []
    var slotsUsed: UInt32 = 0
    /// A fixed set of flows, so flows end and come back under the same key.
    let keys: [FlowKey]

    init(seed: UInt64, start: UInt64) {
        rng = SeededGenerator(seed: seed)
        nowNs = start
        keys = (0..<24).map { i in
            FlowKey(lowAddress: IPAddress(ipv4: 0x0A00_0001), highAddress: IPAddress(ipv4: 0x0A00_0002 + UInt32(i % 5)),
                    lowPort: 40000 + UInt16(i), highPort: 443, ipProtocol: i % 3 == 2 ? IPProtocol.udp : IPProtocol.tcp,
                    vlan: 0)
        }
    }

    mutating func chance(_ p: Double) -> Bool { Double(rng.next() >> 11) * 0x1.0p-53 < p }
    mutating func below(_ n: Int) -> Int { Int(rng.next() % UInt64(n)) }

    /// Moves time on and lets flows send; returns the ring-buffer events.
    mutating func advance() -> [KernelEvent] {
        // Mostly poll-sized steps, so flows live past their active timeout;
        // now and then one past the idle or the active timeout.
        let steps: [UInt64] = [200_000_000, 500_000_000, 1_000_000_000, 2_000_000_000, 5_000_000_000]
        let start = nowNs
        nowNs += chance(0.05) ? 16_000_000_000 : chance(0.03) ? 61_000_000_000 : steps[below(steps.count)]
        var events: [KernelEvent] = []
        // Some flows busy, some sending now and then: quiet ones reach their active timeout unread.
        for (i, key) in keys.enumerated() where chance([0.8, 0.3, 0.1][i % 3]) {
            for _ in 0...below(3) {
                let t = start + 1 + UInt64(below(Int(nowNs - start)))
                let p = packet(key, at: t)
                // Now and then the map has no room, or a packet of a mapped flow races its insert.
                if map[key] == nil ? chance(0.3) : chance(0.01) {
                    events.append(KernelEvent(key: key, senderIsLow: p.senderIsLow, packet: p.summary))
                } else {
                    add(p.summary, senderIsLow: p.senderIsLow, to: key)
                }
            }
        }
        return events.sorted { $0.packet.timestampNs < $1.packet.timestampNs }
    }

    mutating func packet(_ key: FlowKey, at t: UInt64) -> (summary: PacketSummary, senderIsLow: Bool) {
        let senderIsLow = chance(0.5)
        let flagChoices: [TCPFlags] = [[.ack], [.psh, .ack], [.syn], [.syn, .ack], [.fin, .ack], [.rst]]
        let weights = [40, 30, 6, 6, 3, 1]
        var pick = below(weights.reduce(0, +)), i = 0
        while pick >= weights[i] { pick -= weights[i]; i += 1 }
        let tcp = key.ipProtocol == IPProtocol.tcp
        let p = PacketSummary(
            timestampNs: t, source: senderIsLow ? key.lowAddress : key.highAddress,
            destination: senderIsLow ? key.highAddress : key.lowAddress,
            sourcePort: senderIsLow ? key.lowPort : key.highPort, destinationPort: senderIsLow ? key.highPort : key.lowPort,
            ipProtocol: key.ipProtocol, ipLength: 40 + UInt32(below(1460)), payloadLength: UInt32(below(1400)),
            tcpFlags: tcp ? flagChoices[i] : [], tcpWindow: UInt16(below(65535)), interfaceIndex: UInt32(1 + below(2)))
        return (p, senderIsLow)
    }

    /// One packet into the map, as the program counts it (its arithmetic is `DirectionStats.add`).
    mutating func add(_ p: PacketSummary, senderIsLow: Bool, to key: FlowKey) {
        var flow = map[key] ?? KernelFlow(key: key, initiatorIsLow: senderIsLow != p.tcpFlags.contains([.syn, .ack]),
                                          ifindex: p.interfaceIndex, low: DirectionStats(), high: DirectionStats())
        if senderIsLow { flow.low.add(p) } else { flow.high.add(p) }
        if map[key] == nil { kernelSlots[key] = freeSlots.popLast() ?? { slotsUsed += 1; return slotsUsed - 1 }() }
        map[key] = flow
    }

    /// Takes a flow out of the map, its slot freed.
    mutating func take(_ key: FlowKey) -> KernelFlow? {
        if let slot = kernelSlots.removeValue(forKey: key) { freeSlots.append(slot) }
        return map.removeValue(forKey: key)
    }

    /// A poll as the drain loop runs it, on both trackers; returns the records compared.
    mutating func poll(_ tracker: inout KernelFlowTracker, _ reference: inout ReferenceKernelFlowTracker,
                       events: [KernelEvent], context: String) throws -> Int {
        for (key, flow) in map {
            // The drain loop's walk: by slot, nothing staged, totals read at the checkpoint.
            tracker.observe(key, kernelSlot: kernelSlots[key]!, kernelPackets: flow.packets,
                            summary: { KernelFlowTracker.Summary(flow) }, convert: { flow })
            reference.observe(key, kernelPackets: flow.packets) { flow }
        }
        for e in events {
            tracker.observe(e)
            reference.observe(e)
        }
        let due = tracker.due(at: nowNs)
        #expect(Set(due.map(Due.init)) == Set(reference.due(at: nowNs).map(Due.init)), "\(context)")
        var compared = 0
        for d in due {
            let final = d.inKernel ? take(d.key) : nil
            let record = tracker.end(d.key, final: final, reason: d.reason)
            #expect(record == reference.end(d.key, final: final, reason: d.reason), "\(context)")
            compared += 1
        }
        var records: [FlowRecord] = []
        let slots = kernelSlots
        tracker.checkpoint(at: nowNs, appendingTo: &records) { key, slot in
            #expect(slot == nil || slot == slots[key], "\(context): read through another flow's slot")
            return map[key]?.totals
        }
        let expected = reference.checkpoint(at: nowNs)
        #expect(records.sorted { $0.id < $1.id } == expected.sorted { $0.id < $1.id }, "\(context)")
        try expectSameAccounting(tracker, reference, context)
        return compared + records.count
    }

    /// The final drain as the drain loop runs it at stop: every flow of the
    /// map taken, then whatever is left (ring-buffer flows) ended.
    mutating func finalDrain(_ tracker: inout KernelFlowTracker, _ reference: inout ReferenceKernelFlowTracker,
                             events: [KernelEvent], context: String) throws -> Int {
        let keys = Array(map.keys)
        for key in keys {
            tracker.track(map[key]!)
            reference.observe(map[key]!)
        }
        for e in events {
            tracker.observe(e)
            reference.observe(e)
        }
        var compared = 0
        for key in keys {
            let final = take(key)
            let record = tracker.end(key, final: final, reason: .shutdown)
            #expect(record == reference.end(key, final: final, reason: .shutdown), "\(context)")
            compared += 1
        }
        for key in tracker.entries.keys {
            let record = tracker.end(key, final: nil, reason: .shutdown)
            #expect(record == reference.end(key, final: nil, reason: .shutdown), "\(context)")
            compared += 1
        }
        #expect(reference.entries.isEmpty, "\(context)")
        try expectSameAccounting(tracker, reference, context)
        return compared
    }

    func expectSameAccounting(_ tracker: KernelFlowTracker, _ reference: ReferenceKernelFlowTracker, _ context: String) throws {
        #expect(tracker.accounted == reference.accounted, "\(context)")
        #expect(tracker.flowsStarted == reference.flowsStarted && tracker.flowsEnded == reference.flowsEnded, "\(context)")
        #expect(tracker.overflowPackets == reference.overflowPackets, "\(context)")
        #expect(tracker.overflowPacketsNotTracked == reference.overflowPacketsNotTracked, "\(context)")
        #expect(tracker.entries.count == reference.entries.count, "\(context)")
        for key in tracker.entries.keys {
            let e = try #require(tracker.entries[key]), r = try #require(reference.entries[key])
            #expect(e.id == r.id && e.packets == r.packets && e.lastSeenNs == r.lastSeenNs && e.inKernel == r.inKernel,
                    "\(context)")
            #expect(e.windowStartNs == r.windowStartNs && e.emittedPackets == r.emittedPackets, "\(context)")
        }
    }

    struct Due: Hashable {
        var key: FlowKey
        var reason: FlowEndReason
        var inKernel: Bool
        init(_ d: (key: FlowKey, reason: FlowEndReason, inKernel: Bool)) { (key, reason, inKernel) = d }
    }
}

/// The tracker as it was before its slots were summarised (2737ab5), on a
/// dictionary: every open flow keeps the kernel's full totals from its
/// last read, and records are built from them at the checkpoint.
struct ReferenceKernelFlowTracker {
    struct Entry {
        var id: UInt64
        var initiatorIsLow: Bool
        var ifindex: UInt32
        var kernelLow = DirectionStats()
        var kernelHigh = DirectionStats()
        var overflowLow = DirectionStats()
        var overflowHigh = DirectionStats()
        var inKernel: Bool
        var emittedPackets: UInt64 = 0
        var windowStartNs: UInt64

        var low: DirectionStats { DirectionStats.merged(kernelLow, overflowLow) }
        var high: DirectionStats { DirectionStats.merged(kernelHigh, overflowHigh) }
        var packets: UInt64 { kernelLow.packets + kernelHigh.packets + overflowLow.packets + overflowHigh.packets }
        var lastSeenNs: UInt64 {
            max(kernelLow.lastSeenNs, kernelHigh.lastSeenNs, overflowLow.lastSeenNs, overflowHigh.lastSeenNs)
        }
    }

    let configuration: FlowTableConfiguration
    var interfaceNames: [UInt32: String] = [:]
    private(set) var entries: [FlowKey: Entry] = [:]
    private var nextID: UInt64 = 1
    private(set) var flowsStarted: UInt64 = 0
    private(set) var flowsEnded: UInt64 = 0
    private(set) var endedPackets: UInt64 = 0
    private(set) var endedBytes: UInt64 = 0
    private(set) var overflowPackets: UInt64 = 0
    private(set) var overflowPacketsNotTracked: UInt64 = 0

    init(configuration: FlowTableConfiguration) {
        self.configuration = configuration
    }

    mutating func observe(_ key: FlowKey, kernelPackets: UInt64, _ convert: () -> KernelFlow) {
        if let e = entries[key], e.inKernel, e.kernelLow.packets + e.kernelHigh.packets == kernelPackets { return }
        observe(convert())
    }

    mutating func observe(_ flow: KernelFlow) {
        if entries[flow.key] != nil {
            entries[flow.key]!.kernelLow = flow.low
            entries[flow.key]!.kernelHigh = flow.high
            entries[flow.key]!.inKernel = true
            return
        }
        let first = min(flow.low.packets > 0 ? flow.low.firstSeenNs : .max, flow.high.packets > 0 ? flow.high.firstSeenNs : .max)
        entries[flow.key] = Entry(id: takeID(), initiatorIsLow: flow.initiatorIsLow, ifindex: flow.ifindex,
                                  kernelLow: flow.low, kernelHigh: flow.high, inKernel: true,
                                  windowStartNs: first == .max ? 0 : first)
    }

    mutating func observe(_ event: KernelEvent) {
        if entries[event.key] == nil {
            guard entries.count < configuration.maxFlows else {
                overflowPacketsNotTracked += 1
                return
            }
            let replyFirst = event.packet.tcpFlags.contains([.syn, .ack])
            entries[event.key] = Entry(id: takeID(), initiatorIsLow: event.senderIsLow != replyFirst,
                                       ifindex: event.packet.interfaceIndex, inKernel: false,
                                       windowStartNs: event.packet.timestampNs)
        }
        overflowPackets += 1
        if event.senderIsLow {
            entries[event.key]!.overflowLow.add(event.packet)
        } else {
            entries[event.key]!.overflowHigh.add(event.packet)
        }
    }

    private mutating func takeID() -> UInt64 {
        defer { nextID += 1 }
        flowsStarted += 1
        return nextID
    }

    func due(at nowNs: UInt64) -> [(key: FlowKey, reason: FlowEndReason, inKernel: Bool)] {
        entries.compactMap { key, e in
            let idle = nowNs >= e.lastSeenNs ? nowNs - e.lastSeenNs : 0
            var closed = false
            if idle >= configuration.tcpCloseTimeoutNs && key.ipProtocol == IPProtocol.tcp {
                let low = e.low, high = e.high
                closed = low.rstCount + high.rstCount > 0 || (low.finCount > 0 && high.finCount > 0)
            }
            return configuration.endReason(idleNs: idle, tcpClosed: closed).map { (key, $0, e.inKernel) }
        }
    }

    mutating func end(_ key: FlowKey, final: KernelFlow?, reason: FlowEndReason) -> FlowRecord? {
        guard var e = entries.removeValue(forKey: key) else { return nil }
        if let final {
            e.kernelLow = final.low
            e.kernelHigh = final.high
        }
        flowsEnded += 1
        endedPackets += e.packets
        let record = makeRecord(key, e, state: .ended, reason: reason)
        endedBytes += record.bytes
        return record
    }

    mutating func checkpoint(at nowNs: UInt64) -> [FlowRecord] {
        var out: [FlowRecord] = []
        for key in Array(entries.keys) {
            let e = entries[key]!
            let state: FlowState
            if configuration.checkpointDue(windowStartNs: e.windowStartNs, nowNs: nowNs) {
                state = .interim
            } else if e.packets != e.emittedPackets {
                state = .active
            } else {
                continue
            }
            out.append(makeRecord(key, e, state: state, reason: nil))
            if state == .interim { entries[key]!.windowStartNs = nowNs }
            entries[key]!.emittedPackets = e.packets
        }
        return out
    }

    var accounted: (packets: UInt64, bytes: UInt64) {
        entries.values.reduce((endedPackets, endedBytes)) { sum, e in
            (sum.0 + e.packets, sum.1 + e.kernelLow.bytes + e.kernelHigh.bytes + e.overflowLow.bytes + e.overflowHigh.bytes)
        }
    }

    private func makeRecord(_ key: FlowKey, _ e: Entry, state: FlowState, reason: FlowEndReason?) -> FlowRecord {
        let (src, dst, sport, dport, fwd, rev) = e.initiatorIsLow
            ? (key.lowAddress, key.highAddress, key.lowPort, key.highPort, e.low, e.high)
            : (key.highAddress, key.lowAddress, key.highPort, key.lowPort, e.high, e.low)
        return FlowRecord(
            id: e.id, sourceAddress: src, destinationAddress: dst, sourcePort: sport, destinationPort: dport,
            ipProtocol: key.ipProtocol, vlan: key.vlan, interfaceIndex: e.ifindex,
            interfaceName: interfaceNames[e.ifindex], forward: fwd, reverse: rev, state: state, endReason: reason)
    }
}
