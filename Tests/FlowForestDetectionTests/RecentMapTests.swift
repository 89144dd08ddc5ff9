@testable import FlowForestDetection
import FlowForestCore
import Testing

/// The detector's per-address memory: keys a sender chooses cannot grow it
/// past its limit, whatever times come with them, and what is recent stays.
@Suite("Recent maps bound the detector's per-address memory")
struct RecentMapTests {
    @Test("entries untouched for the idle time go at the next prune; recent ones stay with their values")
    func idleEntriesGo() {
        var map = RecentMap<Int, Int>(idleNs: 1_000, limit: 10)
        for k in 0..<6 { map.set(k, k * 10, nowNs: 0) }
        for k in 6..<11 { map.set(k, k * 10, nowNs: 5_000) }
        // The 11th entry pruned: the six idle ones went, the five recent stayed.
        #expect(map.count == 5)
        #expect(map.evicted == 0, "idle entries expire, they are not evicted")
        #expect((6..<11).allSatisfy { map[$0] == $0 * 10 })
        #expect(map[0] == nil)
        map.set(7, nil, nowNs: 5_000)
        #expect(map[7] == nil && map.count == 4)
    }

    @Test("200,000 distinct keys within a second (a forged flood) hold at most the limit, the newest kept")
    func distinctKeysBounded() {
        var map = RecentMap<UInt32, UInt32>(idleNs: 300_000_000_000, limit: 1_000)
        var peak = 0
        for k in UInt32(0)..<200_000 {
            map.set(k, k, nowNs: 1_000_000_000 + UInt64(k))
            peak = max(peak, map.count)
        }
        #expect(peak == 1_000)
        #expect(map[199_999] == 199_999 && map[0] == nil)
        // None was idle: every key but the 1,000 held was evicted, and counted.
        #expect(map.evicted == UInt64(200_000 - map.count))
    }

    @Test("times far ahead of the clock (hostile timestamps) cannot pin entries past the limit")
    func futureTimesBounded() {
        var map = RecentMap<Int, Int>(idleNs: 1_000, limit: 100)
        for k in 0..<50 { map.set(k, k, nowNs: .max - 1) }
        for k in 50..<10_000 { map.set(k, k, nowNs: 10) }
        #expect(map.count <= 100)
    }

    @Test("thousands of new sources with flagged flows leave the detector's per-address memory within its bound (about 5,000 entries without it)")
    func detectorBounded() {
        var sim = TrafficSimulator()
        var detector = trainedDetector(&sim) { $0.trackerLimits = TrackerLimits(entities: 256, pairs: 1024) }
        // Each second 300 new sources, each with one bulky UDP flow to a port
        // the training never saw: flow vectors flagged one source at a time.
        let found = sim.runAttack(seconds: 20, into: &detector) { s, second in
            for i in 0..<300 {
                let source = TrafficSimulator.ip("198.19.\(second).\(1 + i % 250)")
                let sport = UInt16(1024 + i)
                for p in 0..<20 {
                    s.packet(at: s.nowNs + UInt64(i) * 3_000_000 + UInt64(p) * 100_000, source, TrafficSimulator.web,
                             sport: sport, dport: 31337, proto: 17, length: 1400)
                }
            }
        }.map(\.anomaly)
        #expect(!found.isEmpty)
        let entries = detector.perAddressEntries
        #expect(entries.history <= 512 && entries.reported <= 100_000, "\(entries)")
    }
}
