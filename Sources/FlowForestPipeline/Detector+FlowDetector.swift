public import FlowForestDetection
import FlowForestCore
import Foundation

/// The pipeline runs FlowForestDetection's detector; `process(_:changes:flows:)` is its own.
extension Detector: FlowDetector {
    public var apiStatus: ModelStatus {
        let s = status
        var details: [String: String] = [:]
        for k in s.kinds {
            details["\(k.kind.rawValue)_phase"] = k.phase.phaseName
            details["\(k.kind.rawValue)_vectors_scored"] = String(k.vectorsScored)
            details["\(k.kind.rawValue)_reservoir_vectors"] = String(k.reservoirVectors)
            details["\(k.kind.rawValue)_expected_vectors"] = String(k.expectedVectors)
        }
        // What the detector held back, and why (docs/detection.md).
        details["unexplained"] = String(s.unexplained)
        details["unconfirmed"] = String(s.unconfirmed)
        details["suppressed_repeats"] = String(s.suppressedRepeats)
        details["retrainings"] = String(s.retrainings)
        details["unreachables_not_held"] = String(s.tracker.unreachablesNotHeld)
        let trained = s.kinds.compactMap(\.trainedAtMs).max()
        return ModelStatus(
            // Detecting as soon as one vector kind scores; details give each kind's phase.
            state: s.kinds.contains { $0.phase == .scoring } ? .scoring : .learning,
            version: s.modelVersion,
            trainedAt: trained.map { Timestamp.rfc3339(milliseconds: $0) },
            vectorsSeen: Int(s.kinds.reduce(0) { $0 + $1.vectorsSeen }),
            learningTarget: s.kinds.contains { $0.phase == .learning } ? configuration.minimumLearningVectors : nil,
            learningUntil: s.learningUntilMs.map { Timestamp.rfc3339(milliseconds: $0) },
            details: details)
    }

    public func modelJSON() -> String? {
        guard let model else { return nil }
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return (try? encoder.encode(model)).map { String(decoding: $0, as: UTF8.self) }
    }
}
