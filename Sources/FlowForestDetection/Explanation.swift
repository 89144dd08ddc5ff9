public import FlowForestCore

/// Turns a vector's path credit into the words an anomaly carries.
///
/// Every line is true: it names a feature whose value lies strictly beyond
/// its baseline (above p99, or below p1) as printed, so a reader never sees
/// "0 (baseline p1: 0)". When no feature lies beyond its baseline, the line
/// says what did drive the report: the forest's score above its alert
/// threshold, or the rule that fired.
public enum Explainer {
    /// What drove a report besides the features: the forest's score and the
    /// threshold it passed, or a certain rule's own evidence.
    public struct Drivers: Sendable {
        public var score: Double
        public var threshold: Double
        /// A rule's line (``Labeler/ruleEvidence(_:kind:vector:)``) when a rule decided the label.
        public var rule: ExplanationItem?

        public init(score: Double, threshold: Double, rule: ExplanationItem? = nil) {
            self.score = score
            self.threshold = threshold
            self.rule = rule
        }
    }

    /// The features of an anomalous vector that lie beyond their baseline,
    /// ranked by their share of the path credit that isolated it (local
    /// DIFFI); at most `count`, plus the label's own features (`leading`)
    /// that lie beyond their baseline but rank lower. Without any such
    /// feature: the rule's line, or the score's.
    public static func explain(kind: AnomalyKind, vector: [Double], credit: [Double], baseline: [FeatureBaseline],
                               leading: [String] = [], drivers: Drivers, count: Int = 3) -> [ExplanationItem] {
        let features = FeatureSchema.features(of: kind)
        guard vector.count == features.count, baseline.count == features.count else { return fallback(drivers) }
        let total = credit.count == features.count ? credit.reduce(0, +) : 0
        let share = features.indices.map { total > 0 ? credit[$0] / total : 0 }
        // Without credit (a vector no tree split on), distance from the median ranks.
        // Each line's rank is worked out once, by its feature's index: a
        // comparator that looked each feature up by name hashed a string per comparison.
        let lines: [(item: ExplanationItem, rank: Double)] = features.indices.compactMap { j in
            line(j, info: features[j], vector: vector, baseline: baseline, share: share[j])
                .map { ($0, total > 0 ? share[j] : abs(baseline[j].robustZ(vector[j]))) }
        }
        guard !lines.isEmpty else { return fallback(drivers) }
        let ranked = lines.sorted { $0.rank > $1.rank }.map(\.item)
        var chosen = Array(ranked.prefix(count))
        chosen += ranked.dropFirst(count).filter { leading.contains($0.feature) }
        return chosen
    }

    /// Feature `j`'s line if its value lies strictly beyond its baseline,
    /// as printed, in the direction stated; nil otherwise.
    static func line(_ j: Int, info: FeatureInfo, vector: [Double], baseline: [FeatureBaseline], share: Double) -> ExplanationItem? {
        let b = baseline[j]
        let above: Bool
        if vector[j] > b.p99 {
            above = true
        } else if vector[j] < b.p01 {
            above = false
        } else {
            return nil
        }
        let valueText = format(info.display(vector[j]))
        let baseText = format(info.display(above ? b.p99 : b.p01))
        guard let value = Double(valueText), let base = Double(baseText), above ? value > base : value < base else { return nil }
        let percent = share > 0 ? "; \(format(share * 100)) % of the isolation" : ""
        let text = "\(info.words) \(valueText) (baseline \(above ? "p99" : "p1"): \(baseText)\(percent))"
        return ExplanationItem(feature: info.name, value: value, baseline: base, direction: above ? "above" : "below",
                               text: text, share: share)
    }

    /// The one true line when no feature lies beyond its baseline.
    static func fallback(_ d: Drivers) -> [ExplanationItem] {
        if let rule = d.rule, rule.isTrue { return [rule] }
        guard d.score > d.threshold else { return [] }
        let (score, threshold) = distinct(d.score, d.threshold)
        let text = "isolation score \(score) (alert threshold: \(threshold)): isolated in fewer splits than "
            + "baseline vectors, though no single feature lies outside its baseline p1–p99"
        return [ExplanationItem(feature: "isolation_score", value: d.score, baseline: d.threshold, direction: "above", text: text)]
    }

    /// Two scores printed with as many places (3 to 9) as it takes to tell them apart.
    static func distinct(_ a: Double, _ b: Double) -> (String, String) {
        var places = 3
        while true {
            let scale = pow10(places)
            let x = (a * scale).rounded(.down) / scale, y = (b * scale).rounded(.down) / scale
            if x != y || places >= 9 { return ("\(x)", "\(y)") }
            places += 1
        }
    }

    private static func pow10(_ n: Int) -> Double { (0..<n).reduce(1.0) { value, _ in value * 10 } }

    /// Whole numbers without decimals, small values with two significant places
    /// (rounded, so 89.99999 prints as 90).
    static func format(_ x: Double) -> String {
        guard x.isFinite else { return "\(x)" }
        let r = abs(x) >= 100 ? x.rounded() : abs(x) >= 10 ? (x * 10).rounded() / 10 : (x * 100).rounded() / 100
        if r == r.rounded() && abs(r) < 9e18 { return String(Int64(r)) }
        return String(r)
    }
}
