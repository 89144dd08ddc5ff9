extension Duration {
    /// Whole milliseconds, rounded down; `Int64.max` past its range (a
    /// configured gap of centuries does not trap).
    public var wholeMilliseconds: Int64 {
        let c = components
        let (ms, overflow) = c.seconds.multipliedReportingOverflow(by: 1000)
        guard !overflow else { return c.seconds < 0 ? .min : .max }
        return ms.addingReportingOverflow(c.attoseconds / 1_000_000_000_000_000).partialValue
    }
}
