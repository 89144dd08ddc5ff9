@testable import FlowForestCore
import Testing

private func record(_ id: UInt64, packets: (UInt64, UInt64), bytes: (UInt64, UInt64), lastSeenNs: UInt64 = 1_000,
                    state: FlowState = .active) -> FlowRecord {
    var forward = DirectionStats(), reverse = DirectionStats()
    (forward.packets, reverse.packets) = packets
    (forward.bytes, reverse.bytes) = bytes
    forward.firstSeenNs = 1_000
    forward.lastSeenNs = lastSeenNs
    return FlowRecord(id: id, sourceAddress: IPAddress("198.18.0.1")!, destinationAddress: IPAddress("198.18.0.2")!,
                      sourcePort: 40000, destinationPort: 443, ipProtocol: IPProtocol.tcp,
                      forward: forward, reverse: reverse, state: state)
}

@Suite("Flow ledger")
struct FlowLedgerTests {
    @Test("each record's delta is what it adds since the flow's previous record; an ended record removes the flow")
    func deltas() throws {
        var ledger = FlowLedger()
        let first = ledger.apply([record(1, packets: (3, 1), bytes: (300, 60))], origin: "tc", nowNs: 1_000)
        #expect(first[0].isNew && first[0].tracked)
        #expect(first[0].delta.packets == 4 && first[0].delta.bytes == 360)
        let second = ledger.apply([record(1, packets: (5, 2), bytes: (500, 120))], origin: "tc", nowNs: 2_000)
        #expect(!second[0].isNew)
        #expect(second[0].delta.forwardPackets == 2 && second[0].delta.reversePackets == 1)
        #expect(second[0].delta.forwardBytes == 200 && second[0].delta.reverseBytes == 60)
        #expect(ledger[1]?.origin == "tc" && ledger[1]?.updatedNs == 2_000)
        let ended = ledger.apply([record(1, packets: (6, 2), bytes: (560, 120), state: .ended)], origin: "tc", nowNs: 3_000)
        #expect(ended[0].delta.packets == 1)
        #expect(ledger.count == 0)
    }

    @Test("a total below the previous one (a reused id) counts as a fresh start, never a wrapped delta")
    func restartedCounters() {
        var ledger = FlowLedger()
        _ = ledger.apply([record(7, packets: (10, 10), bytes: (1000, 1000))], origin: "ingest", nowNs: 1_000)
        let again = ledger.apply([record(7, packets: (2, 0), bytes: (120, 0))], origin: "ingest", nowNs: 2_000)
        #expect(again[0].delta.packets == 2 && again[0].delta.bytes == 120)
    }

    @Test("observation points are held while their flows are open and freed with them")
    func namesFreedWithFlows() throws {
        var ledger = FlowLedger()
        // A new interface in every record, 1,000 at a time.
        for round in 0..<5 {
            let ids = (0..<1_000).map { UInt64(round * 1_000 + $0) }
            func named(_ id: UInt64, _ state: FlowState, _ name: String) -> FlowRecord {
                var r = record(id, packets: (1, 0), bytes: (60, 0), state: state)
                r.interfaceName = name
                return r
            }
            _ = ledger.apply(ids.map { named($0, .active, "veth\($0)") }, origin: "collect", nowNs: 1_000)
            #expect(ledger.interfaceNamesHeld == 1_000)
            // A record that renames its flow's interface lets go of the old name.
            _ = ledger.apply(ids.map { named($0, .active, "veth\($0 + 1_000_000)") }, origin: "collect", nowNs: 2_000)
            #expect(ledger.interfaceNamesHeld == 1_000)
            #expect(ledger[ids[0]]?.record.interfaceName == "veth\(ids[0] + 1_000_000)")
            _ = ledger.apply(ids.map { named($0, .ended, "veth\($0)") }, origin: "collect", nowNs: 3_000)
            #expect(ledger.interfaceNamesHeld == 0 && ledger.count == 0)
        }
        // Names shared by many flows stay while any holds them; codes freed earlier are reused.
        _ = ledger.apply((0..<10).map { id in
            var r = record(UInt64(100_000 + id), packets: (1, 0), bytes: (60, 0))
            r.interfaceName = id % 2 == 0 ? "eth0" : "eth1"
            return r
        }, origin: "tc", nowNs: 4_000)
        _ = ledger.apply([record(100_000, packets: (2, 0), bytes: (120, 0), state: .ended)], origin: "tc", nowNs: 5_000)
        #expect(ledger.interfaceNamesHeld == 2)
        #expect(ledger[100_002]?.record.interfaceName == "eth0" && ledger[100_001]?.record.interfaceName == "eth1")
        #expect(ledger[100_002]?.origin == "tc")
    }

    @Test("a full ledger takes no new flow and counts its records")
    func bounded() {
        var ledger = FlowLedger(maxFlows: 2)
        let changes = ledger.apply((1...4).map { record($0, packets: (1, 0), bytes: (60, 0)) }, origin: "tc", nowNs: 1_000)
        #expect(changes.map(\.tracked) == [true, true, false, false])
        #expect(ledger.count == 2 && ledger.notTracked == 2)
    }

    @Test("flows silent for ten minutes are forgotten; one stamped ahead of the clock once it had no record for that long")
    func forgetsIdle() {
        var ledger = FlowLedger()
        let minute: UInt64 = 60_000_000_000
        _ = ledger.apply([record(1, packets: (1, 0), bytes: (60, 0), lastSeenNs: minute),
                          record(2, packets: (1, 0), bytes: (60, 0), lastSeenNs: 500 * minute)], origin: "ingest", nowNs: minute)
        #expect(ledger.count == 2)
        _ = ledger.apply([record(3, packets: (1, 0), bytes: (60, 0), lastSeenNs: 11 * minute)], origin: "ingest", nowNs: 11 * minute)
        #expect(ledger[1] == nil && ledger[2] == nil && ledger[3] != nil)
    }

    @Test("a ledger fed by sources that may go an hour without reporting an open flow holds a quiet one past the hour, not ten minutes")
    func holdsPastSourcesSilence() {
        let minute: UInt64 = 60_000_000_000
        let table = FlowTableConfiguration(idleTimeoutNs: 120 * minute, activeTimeoutNs: 60 * minute)
        #expect(table.longestSilenceNs == 60 * minute)
        var ledger = FlowLedger(longestSilenceNs: table.longestSilenceNs)
        #expect(ledger.forgetAfterNs == 120 * minute)
        #expect(FlowLedger(longestSilenceNs: 5 * minute).forgetAfterNs == FlowLedger.minimumForgetNs)
        _ = ledger.apply([record(1, packets: (1, 0), bytes: (60, 0), lastSeenNs: minute)], origin: "tc", nowNs: minute)
        for m in stride(from: UInt64(2), through: 61, by: 1) { _ = ledger.apply([], origin: "tc", nowNs: m * minute) }
        #expect(ledger[1] != nil, "held 60 quiet minutes")
        // Its source's interim record after the hour: only what is new.
        let back = ledger.apply([record(1, packets: (2, 0), bytes: (120, 0), lastSeenNs: 61 * minute)], origin: "tc", nowNs: 61 * minute)
        #expect(back.map(\.isNew) == [false] && back.map(\.delta.forwardPackets) == [1])
        for m in stride(from: UInt64(62), through: 182, by: 1) { _ = ledger.apply([], origin: "tc", nowNs: m * minute) }
        #expect(ledger[1] == nil, "forgotten two hours after its last record")
    }

    @Test("each source's flows are forgotten by its own clock: a collector's batches 20 minutes ahead of the drainer's forget none of the drainer's")
    func clocksApart() {
        let minute: UInt64 = 60_000_000_000
        var ledger = FlowLedger()
        // The drainer's clock (monotonic from its start) and the collector's (the wall clock, stepped 20 minutes on).
        _ = ledger.apply([record(1, packets: (1, 0), bytes: (60, 0), lastSeenNs: 100 * minute)], origin: "tc+collect", nowNs: 100 * minute)
        for m in UInt64(0)..<5 {
            _ = ledger.apply([record(2, packets: (1 + m, 0), bytes: (60 + m, 0), lastSeenNs: (120 + m) * minute)],
                             origin: "tc+collect", nowNs: (120 + m) * minute, reporting: .delayed)
            _ = ledger.apply([], origin: "tc+collect", nowNs: (100 + m) * minute)
        }
        #expect(ledger[1] != nil && ledger[2] != nil, "neither is silent by its own source's clock")
        #expect(ledger[1]?.origin == "tc+collect")
        // The drainer's own clock does forget its flow, ten minutes on.
        _ = ledger.apply([], origin: "tc+collect", nowNs: 111 * minute)
        #expect(ledger[1] == nil && ledger[2] != nil)
    }

    @Test("an open flow whose records keep coming with stamps minutes behind (an exporter's slow clock) is held once, its packets counted once")
    func staleStampsHeld() {
        var ledger = FlowLedger()
        let second: UInt64 = 1_000_000_000, start: UInt64 = 3_600 * second
        var added: UInt64 = 0
        // A record every 5 s for 15 minutes, each stamped 20 minutes before it arrives, 10 packets more each time.
        for i in UInt64(1)...180 {
            let now = start + i * 5 * second
            let changes = ledger.apply([record(1, packets: (10 * i, 0), bytes: (600 * i, 0), lastSeenNs: now - 1_200 * second)],
                                       origin: "collect", nowNs: now)
            added += changes.reduce(0) { $0 + $1.delta.forwardPackets }
        }
        #expect(ledger.count == 1)
        #expect(added == 1_800, "packets counted: \(added) of 1800")
    }
}
