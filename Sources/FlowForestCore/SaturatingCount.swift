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
}
