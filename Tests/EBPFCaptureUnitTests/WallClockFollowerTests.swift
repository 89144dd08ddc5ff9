import FlowForestCore
import Testing
@testable import EBPFCapture

/// The drainer's batches follow the wall clock when it steps after start.
@Suite("Drainer times on the wall clock")
struct WallClockFollowerTests {
    static let second: UInt64 = 1_000_000_000
    /// The wall clock at start: monotonic 100 s, wall clock 2026-12-05.
    static let (mono0, real0): (UInt64, UInt64) = (100 * second, 1_796_428_800 * second)

    static func batch(at t: UInt64) -> FlowBatch {
        var forward = DirectionStats()
        forward.packets = 3
        forward.firstSeenNs = t - 2 * second
        forward.lastSeenNs = t - second
        let record = FlowRecord(id: 1, sourceAddress: IPAddress("198.18.0.1")!, destinationAddress: IPAddress("198.18.0.2")!,
                                sourcePort: 40000, destinationPort: 443, ipProtocol: 6, forward: forward)
        let key = FlowAggregate.Key(address: IPAddress("198.18.0.2")!, port: 80, ipProtocol: 6, vlan: 0, flowClass: .tcpSyn, side: .destination)
        let aggregate = FlowAggregate(key: key, packets: 10, bytes: 600, totalPackets: 10, totalBytes: 600, peerEstimate: 10,
                                      firstSeenNs: t - 3 * second, lastSeenNs: t, ended: false)
        return FlowBatch(timeNs: t, records: [record], statistics: CaptureStatistics(), activeFlows: 1, aggregates: [aggregate])
    }

    @Test("in step (NTP's slewing, under a second): batches pass unchanged")
    func inStep() {
        var clock = WallClockFollower(startOffsetNs: Self.real0 - Self.mono0)
        let slewed = clock.follow(monotonicNs: Self.mono0 + 60 * Self.second, realtimeNs: Self.real0 + 60 * Self.second + Self.second / 2)
        #expect(!slewed && clock.correctionNs == 0)
        let b = Self.batch(at: Self.real0 + 60 * Self.second)
        let passed = clock.onWallClock(b)
        #expect(passed.timeNs == b.timeNs)
        #expect(passed.records == b.records)
    }

    @Test("the wall clock stepped an hour on (NTP after boot), then a resume that missed 10 minutes: every time follows; unset times stay unset")
    func steps() throws {
        var clock = WallClockFollower(startOffsetNs: Self.real0 - Self.mono0)
        let hour = 3_600 * Self.second
        let stepped = clock.follow(monotonicNs: Self.mono0 + 60 * Self.second, realtimeNs: Self.real0 + 60 * Self.second + hour)
        #expect(stepped)
        #expect(clock.correctionNs == Int64(hour))
        let drainer = Self.real0 + 60 * Self.second
        let moved = clock.onWallClock(Self.batch(at: drainer))
        #expect(moved.timeNs == drainer + hour)
        let r = try #require(moved.records.first)
        #expect(r.forward.firstSeenNs == drainer + hour - 2 * Self.second && r.forward.lastSeenNs == drainer + hour - Self.second)
        #expect(r.reverse.firstSeenNs == 0 && r.reverse.lastSeenNs == 0, "a direction with no packet has no time")
        #expect(moved.aggregates.first?.lastSeenNs == drainer + hour)
        // Suspended 10 minutes: the monotonic clock did not count them.
        let resumed = clock.follow(monotonicNs: Self.mono0 + 120 * Self.second, realtimeNs: Self.real0 + 720 * Self.second + hour)
        #expect(resumed)
        #expect(clock.correctionNs == Int64(hour + 600 * Self.second))
        // Stepped back to where it started from: no correction.
        let back = clock.follow(monotonicNs: Self.mono0 + 130 * Self.second, realtimeNs: Self.real0 + 130 * Self.second)
        #expect(back)
        #expect(clock.correctionNs == 0)
    }
}
