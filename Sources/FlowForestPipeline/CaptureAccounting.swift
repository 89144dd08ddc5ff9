public import FlowForestCore

/// One capture mode's cumulative statistics and open flows, as of its latest batch.
public struct CaptureAccounting: Sendable {
    public var statistics: CaptureStatistics
    public var activeFlows: Int
}
