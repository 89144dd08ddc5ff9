public import FlowForestCore
public import FlowForestDetection

/// What the pipeline needs from a detector. FlowForestDetection's `Detector`
/// conforms; the pipeline owns one and feeds it every batch, captured or
/// ingested, after its ``FlowLedger`` has taken the batch's records.
public protocol FlowDetector: Sendable {
    /// Scores a batch whose records `flows` has taken (`changes` is what it
    /// made of them); no anomalies while learning.
    mutating func process(_ batch: FlowBatch, changes: [FlowChange], flows: FlowLedger) -> [Anomaly]
    /// Replaces part of the model with trees grown on recent normal vectors
    /// and on the vectors of anomalies marked expected.
    mutating func retrain(nowNs: UInt64)
    /// The suppression rules in force: vectors of anomalies they match are
    /// kept for the next retraining.
    mutating func setExpected(_ rules: [Suppression])
    /// The state shown by `GET /api/model`, JSON-encodable.
    var apiStatus: ModelStatus { get }
    /// The current model as JSON for the store, nil while learning.
    func modelJSON() -> String?
    /// What the host tracker holds and evicted, for the tracker metrics.
    var trackerStatistics: HostTrackerStatistics { get }
}

extension FlowDetector {
    /// A detector without a host tracker holds none.
    public var trackerStatistics: HostTrackerStatistics { HostTrackerStatistics() }
}
