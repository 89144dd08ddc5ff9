extension UInt64 {
    /// `self + other`, or `UInt64.max` when the sum does not fit. Packet and
    /// byte counts built from numbers someone else sent (exporters' records,
    /// ingested traffic) stop at the top instead of trapping or wrapping
    /// round to a small number.
    @inlinable public func addingSaturated(_ other: UInt64) -> UInt64 {
        let (sum, overflow) = addingReportingOverflow(other)
        return overflow ? .max : sum
    }
}
