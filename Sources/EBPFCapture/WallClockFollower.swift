import FlowForestCore

/// Keeps what leaves the drainer on the wall clock.
///
/// Inside the drainer every time is the kernel's `CLOCK_MONOTONIC` plus the
/// offset to the wall clock taken at start, so a flow's idle and active
/// timeouts are never moved by a clock step. But the wall clock can move
/// away from that offset: NTP stepping it after the sensor started (a board
/// without a real-time clock, a VM restored from a snapshot), or a host or
/// VM resumed from suspend, whose monotonic clock did not count the pause.
/// The collector, ingest, the store and the API all use the wall clock; a
/// drainer an hour behind them would have its flows stored an hour in the
/// past and, in one pipeline with collected flows, would make every host
/// look an hour idle at each collector batch. So each batch's times are
/// moved by how far the wall clock has moved, once that is more than
/// ``toleranceNs`` (NTP's slewing never gets there).
struct WallClockFollower: Sendable {
    /// The wall clock's offset from `CLOCK_MONOTONIC` at start.
    let startOffsetNs: UInt64
    /// Added to every time that leaves the drainer.
    private(set) var correctionNs: Int64 = 0
    /// How far the wall clock may move before the correction follows it.
    static let toleranceNs: Int64 = 1_000_000_000

    init(startOffsetNs: UInt64) {
        self.startOffsetNs = startOffsetNs
    }

    /// Reads where the wall clock is now against the monotonic one; returns
    /// true when the correction changed.
    mutating func follow(monotonicNs: UInt64, realtimeNs: UInt64) -> Bool {
        let drift = Int64(bitPattern: (realtimeNs &- monotonicNs) &- startOffsetNs)
        guard (drift &- correctionNs).magnitude > UInt64(Self.toleranceNs) else { return false }
        correctionNs = drift
        return true
    }

    /// `batch` with its time, its records' packet times and its aggregates'
    /// times moved by the correction (unset times, 0, stay unset).
    func onWallClock(_ batch: FlowBatch) -> FlowBatch {
        guard correctionNs != 0 else { return batch }
        var out = batch
        out.timeNs = moved(batch.timeNs)
        for i in out.records.indices {
            out.records[i].forward.firstSeenNs = moved(out.records[i].forward.firstSeenNs)
            out.records[i].forward.lastSeenNs = moved(out.records[i].forward.lastSeenNs)
            out.records[i].reverse.firstSeenNs = moved(out.records[i].reverse.firstSeenNs)
            out.records[i].reverse.lastSeenNs = moved(out.records[i].reverse.lastSeenNs)
        }
        for i in out.aggregates.indices {
            out.aggregates[i].firstSeenNs = moved(out.aggregates[i].firstSeenNs)
            out.aggregates[i].lastSeenNs = moved(out.aggregates[i].lastSeenNs)
        }
        return out
    }

    private func moved(_ t: UInt64) -> UInt64 {
        guard t != 0 else { return 0 }
        return correctionNs >= 0 ? t.addingSaturated(UInt64(correctionNs)) : t.subtractingSaturated(correctionNs.magnitude)
    }
}
