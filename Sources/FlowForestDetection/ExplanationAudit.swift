public import FlowForestCore

/// Checks that an anomaly's explanation is true against the model it was
/// scored with: the evaluation runs it over every anomaly it sees.
public enum ExplanationAudit {
    /// A description of each false line of `anomaly` (empty when all are
    /// true), and one when it has no line at all.
    public static func falseLines(of anomaly: Anomaly, model: DetectionModel) -> [String] {
        guard !anomaly.explanation.isEmpty else { return ["\(anomaly.label.rawValue): no explanation"] }
        guard let baseline = model[anomaly.kind]?.baseline else { return [] }
        let features = FeatureSchema.features(of: anomaly.kind)
        return anomaly.explanation.compactMap { item -> String? in
            guard item.isTrue else { return "\(anomaly.label.rawValue): \(item.text) is not \(item.direction) its baseline" }
            // Lines that are not a feature's (the score's, a rule's, a group's) are checked by isTrue alone.
            guard let j = features.firstIndex(where: { $0.name == item.feature }), j < baseline.count,
                  let value = anomaly.features[item.feature] else { return nil }
            let reference = features[j].display(item.direction == "above" ? baseline[j].p99 : baseline[j].p01)
            // A rule's line compares with the rule's floor, not the baseline (isTrue covers it).
            guard abs(item.baseline - reference) <= 0.01 * abs(reference) + 0.01 else { return nil }
            let beyond = item.direction == "above" ? value > reference : value < reference
            return beyond ? nil : "\(anomaly.label.rawValue): \(item.text) (value \(value), baseline \(reference))"
        }
    }
}
