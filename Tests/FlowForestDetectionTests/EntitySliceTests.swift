import FlowForestCore
import Testing
@testable import FlowForestDetection

/// The detector builds a poll's host and destination vectors a slice at a
/// time (``HostTracker/beginPoll(_:flows:nowNs:)``, ``HostTracker/vectors(of:in:)``,
/// ``HostTracker/endPoll(flows:nowNs:)``), so a poll that changes a hundred
/// thousand hosts never holds a vector for each. Sliced or whole, the
/// vectors must be the same.
@Suite("Entity vectors in slices")
struct EntitySliceTests {
    /// The fields a vector and its report carry, with the features' bits, so
    /// that a NaN compares equal to itself.
    struct Seen: Equatable {
        var kind: AnomalyKind
        var address: IPAddress
        var peer: IPAddress?
        var ipProtocol: UInt8
        var port: UInt16
        var observationPoint: String?
        var features: [UInt64]
        var recent: [UInt64]

        init(_ e: EntityVector) {
            kind = e.kind
            address = e.address
            peer = e.peer
            ipProtocol = e.ipProtocol
            port = e.port
            observationPoint = e.observationPoint
            features = e.vector.map(\.bitPattern)
            recent = e.recentFlowIDs
        }
    }

    @Test("vectors built in slices equal the whole poll's, through normal traffic, a forged burst and its timeout",
          arguments: [1, 7, 4096])
    func slicesEqualWhole(slice: Int) {
        var sim = TrafficSimulator()
        // Small limits, so the burst also evicts: the slots a poll names
        // must still be the entities' when their vectors are built.
        let limits = TrackerLimits(entities: 3_000, pairs: 6_000)
        var whole = HostTracker(limits: limits), sliced = HostTracker(limits: limits)
        var flows = FlowLedger()
        let victim = TrafficSimulator.web
        var id: UInt64 = 1 << 40
        var forged: [FlowRecord] = []
        var polls = 0, vectors = 0, endedVectors = 0
        for second in 0..<40 {
            sim.normalSecond()
            var batch = sim.tick()
            if second == 10 {
                // 5,000 forged sources in one poll, which end together 15 polls later.
                forged = (0..<5_000).map { i in
                    id += 1
                    return TrafficSimulator.unansweredSyn(id: id, from: IPAddress(ipv4: 0x0B00_0000 | UInt32(i)), to: victim,
                                                          sourcePort: UInt16(1024 + i), destinationPort: 80, at: batch.timeNs - 1)
                }
                batch.records += forged
            } else if second == 25 {
                batch.records += forged.map { r in
                    var ended = r
                    ended.state = .ended
                    ended.endReason = .idle
                    return ended
                }
            }
            let changes = flows.apply(batch.records, origin: "test", nowNs: batch.timeNs)
            let expected = whole.update(changes, flows: flows, nowNs: batch.timeNs).map(Seen.init)
            let touched = sliced.beginPoll(changes, flows: flows, nowNs: batch.timeNs)
            var got: [Seen] = []
            var start = 0
            while start < touched.count {
                got += sliced.vectors(of: touched, in: start..<min(start + slice, touched.count)).map(Seen.init)
                start += slice
            }
            sliced.endPoll(flows: flows, nowNs: batch.timeNs)
            #expect(got == expected, "second \(second): \(got.count) sliced vectors, \(expected.count) whole")
            #expect(sliced.statistics == whole.statistics, "second \(second)")
            polls += 1
            vectors += expected.count
            if second == 25 { endedVectors = expected.filter { $0.address.ipv4Value.map { $0 >> 24 == 0x0B } ?? false }.count }
        }
        #expect(polls == 40 && vectors > 5_000, "the burst's sources had vectors: \(vectors)")
        // The limits kept some of them: those had vectors again as their flows ended.
        #expect(endedVectors > 1_000, "\(endedVectors) forged sources had a vector as their flows ended")
    }
}
