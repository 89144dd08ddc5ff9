import FlowForestCore
import FlowForestTestSupport
import Testing
@testable import FlowForestDetection

/// Batch times come from packets, and a capture file's packets can be
/// stamped years ahead of the rest: the detector's clocks step back with
/// the file rather than stay pinned to the stamp.
@Suite("Detector clocks that step back")
struct ClockStepTests {
    @Test("one poll stamped years ahead (a hostile capture file) does not make every later poll retrain")
    func clockBackRetrain() {
        var sim = TrafficSimulator()
        var detector = trainedDetector(&sim) { $0.retrainIntervalSeconds = 60 }
        // Enough normal vectors scored for a retraining to have material.
        _ = sim.runNormal(seconds: 120, into: &detector)
        _ = detector.process(FlowBatch(timeNs: sim.nowNs + 100 * 365 * 86_400_000_000_000, records: [], statistics: CaptureStatistics(), activeFlows: 0))
        let afterJump = detector.status.retrainings
        _ = sim.runNormal(seconds: 30, into: &detector)
        // 30 s of the file's own times again: less than the 60 s interval since anything.
        #expect(detector.status.retrainings == afterJump, "\(detector.status.retrainings - afterJump) retrainings in the 30 polls after the jump")
    }

    @Test("windowed counters decay again after a step back of years; a step back of a moment is left alone")
    func decayAfterStepBack() {
        let now: UInt64 = 1_764_000_000_000_000_000, years: UInt64 = 100 * 365 * 86_400_000_000_000
        var stats = WindowedStatistics(stems: 1, now: now + years)
        stats.add(0, 100)
        stats.decay(to: now)
        stats.decay(to: now + 100_000_000_000)
        #expect(stats.value(0, 0) < 1, "the 1 s window after 100 s: \(stats.value(0, 0))")
        var close = WindowedStatistics(stems: 1, now: now + 500_000_000)
        close.add(0, 100)
        close.decay(to: now)
        close.decay(to: now + 500_000_000)
        #expect(close.value(0, 0) == 100)
    }

    @Test("a SYN stamped ahead of the batch time (an agent's clock ahead of ours) is not yet unanswered; one a second old is")
    func synAheadNotFailed() {
        let now: UInt64 = 1_764_000_000_000_000_000
        func syn(at t: UInt64) -> FlowRecord {
            FlowRecord.loneSyn(id: 1, from: IPAddress("198.18.0.5")!, to: IPAddress("198.18.0.2")!, sourcePort: 40000, destinationPort: 80, at: t)
        }
        #expect(!HostTracker.hasFailed(syn(at: now + 120_000_000_000), at: now))
        #expect(HostTracker.hasFailed(syn(at: now - 2_000_000_000), at: now))
        #expect(now.subtractingSaturated(now + 1) == 0 && (now + 5).subtractingSaturated(now) == 5)
    }
}
