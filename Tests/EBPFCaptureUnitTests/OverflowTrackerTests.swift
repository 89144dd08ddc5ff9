import FlowForestCore
import Testing
@testable import EBPFCapture

/// The drainer's aggregate bookkeeping, fed kernel values built in Swift:
/// each report carries what the aggregate gained since the previous one,
/// so reports add up to the kernel's totals.
@Suite("Overflow tracker")
struct OverflowTrackerTests {
    static let key = FlowAggregate.Key(address: IPAddress("198.18.2.1")!, port: 80, ipProtocol: IPProtocol.tcp, vlan: 0,
                                       flowClass: .tcpSyn, side: .destination)
    static let t0: UInt64 = 1_700_000_000_000_000_000

    static func kernel(_ packets: UInt64, peers: Int = 0) -> KernelAggregate {
        var sketch = PeerSketch()
        for i in 0..<peers { sketch.insert(IPAddress(ipv4: UInt32(i))) }
        return KernelAggregate(key: key, packets: packets, bytes: packets * 40, firstSeenNs: t0, lastSeenNs: t0 + packets,
                               sketch: sketch)
    }

    @Test("reports are deltas; an unchanged aggregate is not reported; totals add up")
    func deltas() throws {
        var tracker = OverflowTracker()
        let observed = tracker.observe(Self.kernel(1000, peers: 900))
        let first = try #require(observed)
        #expect(first.packets == 1000 && first.bytes == 40_000 && first.totalPackets == 1000 && !first.ended)
        #expect(abs(Double(first.peerEstimate) - 900) < 360)
        #expect(tracker.observe(Self.kernel(1000, peers: 900)) == nil)
        let changed = tracker.observe(Self.kernel(1500))
        let second = try #require(changed)
        #expect(second.packets == 500 && second.totalPackets == 1500)
        let ended = tracker.end(Self.kernel(1600))
        let last = try #require(ended)
        #expect(last.packets == 100 && last.ended)
        #expect(tracker.packets == 1600 && tracker.bytes == 64_000 && tracker.count == 0)
    }

    @Test("an aggregate taken and re-created under the same key starts again from zero")
    func recreated() throws {
        var tracker = OverflowTracker()
        _ = tracker.observe(Self.kernel(700))
        _ = tracker.end(Self.kernel(700))
        let reopened = tracker.observe(Self.kernel(30))
        let again = try #require(reopened)
        #expect(again.packets == 30 && tracker.packets == 730)
    }

    @Test("the kernel key round-trips through Swift")
    func kernelKey() {
        let k = Self.key.kernelKey
        let back = KernelAggregate(key: k, value: .init(), wallOffsetNs: 0)
        #expect(back.key == Self.key)
        // An endpoint's any-port aggregate keeps its flag both ways: its entry is taken by that key.
        var folded = Self.key
        folded.port = 0
        folded.anyPort = true
        #expect(folded.kernelKey.any_port == 1 && Self.key.kernelKey.any_port == 0)
        #expect(KernelAggregate(key: folded.kernelKey, value: .init(), wallOffsetNs: 0).key == folded)
    }
}
