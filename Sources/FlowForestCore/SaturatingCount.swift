extension UInt64 {
    /// `self + other`, or `UInt64.max` when the sum does not fit. Packet and
    /// byte counts built from numbers someone else sent (exporters' records,
    /// ingested traffic) stop at the top instead of trapping or wrapping
    /// round to a small number.
    @inlinable public func addingSaturated(_ other: UInt64) -> UInt64 {
        let (sum, overflow) = addingReportingOverflow(other)
        return overflow ? .max : sum
    }

    /// `self - other`, or 0 when `other` is larger: the time since a stamp
    /// that a sender's clock put ahead of ours is none, not nearly 2^64.
    @inlinable public func subtractingSaturated(_ other: UInt64) -> UInt64 {
        self > other ? self - other : 0
    }

    /// How far apart two times are, whichever is later. Batch times from
    /// different clocks (capture, collector, ingest) can arrive slightly out
    /// of order: a stamp a little ahead of now is moments ago, not nearly
    /// 2^64 ns ago, and one far ahead is long ago, so it cannot hold state
    /// until the clock catches up.
    @inlinable public func nanosecondsApart(from other: UInt64) -> UInt64 {
        self >= other ? self - other : other - self
    }
}
