import FlowForestCore
import Foundation
import Testing
@testable import FlowForestDetection

/// A half-open flow sends nothing after its SYN, so no record of it arrives
/// until it times out; its failure must show by the clock.
@Suite("Unanswered SYNs fail by the clock")
struct UnansweredSynTests {
    static let scanner = TrafficSimulator.ip("198.18.0.99")
    static let target = TrafficSimulator.ip("198.18.1.2")

    /// One poll holding `ports` unanswered SYNs, all stamped `t`.
    static func scan(ports: Int, at t: UInt64) -> [FlowRecord] {
        (0..<ports).map { i in
            TrafficSimulator.unansweredSyn(id: UInt64(i + 1), from: scanner, to: target, sourcePort: 55555, destinationPort: UInt16(i + 1), at: t)
        }
    }

    static func failed(_ v: EntityVector) -> Double {
        let name = "failed_flows_10s"
        let i = FeatureSchema.index(name, in: v.kind)
        return FeatureSchema.features(of: v.kind)[i].display(v.vector[i])
    }

    @Test("a scan reported in one poll shows its failures at the first poll a second later, once")
    func failuresByClock() throws {
        let t0: UInt64 = 1_764_000_000_000_000_000
        var ledger = FlowLedger()
        var tracker = HostTracker()
        let records = Self.scan(ports: 300, at: t0)
        let first = tracker.update(ledger.apply(records, origin: "ingest", nowNs: t0 + 200_000_000), flows: ledger, nowNs: t0 + 200_000_000)
        let host0 = try #require(first.first { $0.kind == .host && $0.address == Self.scanner })
        #expect(Self.failed(host0) == 0)
        // No record arrives (nothing more was sent); half a second on, still nothing failed.
        let quiet = tracker.update(ledger.apply([], origin: "ingest", nowNs: t0 + 700_000_000), flows: ledger, nowNs: t0 + 700_000_000)
        #expect(!quiet.contains { $0.address == Self.scanner })
        // A second after the SYNs: every one has failed, on the scanner and on its target.
        let later = tracker.update(ledger.apply([], origin: "ingest", nowNs: t0 + 1_200_000_000), flows: ledger, nowNs: t0 + 1_200_000_000)
        let host = try #require(later.first { $0.kind == .host && $0.address == Self.scanner }, "no fresh vector of the scanner")
        let victim = try #require(later.first { $0.kind == .destination && $0.address == Self.target }, "no fresh vector of the target")
        #expect(Self.failed(host) > 290 && Self.failed(victim) > 290)
        // Counted once: the flows' ended records (idle timeout) add no second failure.
        let ended = records.map { r -> FlowRecord in
            var e = r
            e.state = .ended
            e.endReason = .idle
            return e
        }
        let end = t0 + 16_000_000_000
        let last = tracker.update(ledger.apply(ended, origin: "ingest", nowNs: end), flows: ledger, nowNs: end)
        let hostAtEnd = try #require(last.first { $0.kind == .host && $0.address == Self.scanner })
        let decayed = Self.failed(host) * Foundation.pow(2, -(Double(end - t0 - 1_200_000_000) / 1e9) / 10)
        #expect(abs(Self.failed(hostAtEnd) - decayed) < 1, "failures counted again at the end: \(Self.failed(hostAtEnd)) vs \(decayed)")
    }
}
