public import FlowForestCore

/// Turns a vector's path credit into the words an anomaly carries.
public enum Explainer {
    /// The top `count` features of an anomalous vector: ranked by path
    /// credit, weighted by how far each sits from its baseline (a feature
    /// the trees split on that is ordinary for this vector explains little).
    /// `leading` names features to put first (those that show the label's
    /// behaviour), when they are at least one robust deviation from the baseline.
    public static func explain(kind: AnomalyKind, vector: [Double], credit: [Double], baseline: [FeatureBaseline],
                               leading: [String] = [], count: Int = 3) -> [ExplanationItem] {
        let features = FeatureSchema.features(of: kind)
        guard vector.count == features.count, baseline.count == features.count else { return [] }
        let z = (0..<features.count).map { baseline[$0].robustZ(vector[$0]) }
        let hasCredit = credit.contains { $0 > 0 }
        let weight = (0..<features.count).map { j -> Double in
            let distance = min(abs(z[j]), 20) / 20
            return hasCredit ? credit[j] * (0.1 + distance) : distance
        }
        let first = leading.compactMap { name in features.firstIndex { $0.name == name } }.filter { abs(z[$0]) >= 1 }
        let ranked = first + (0..<features.count)
            .filter { weight[$0] > 0 && abs(z[$0]) >= 1 && !first.contains($0) }
            .sorted { weight[$0] > weight[$1] }
        return ranked.prefix(count).map { j in
            let info = features[j]
            let above = vector[j] >= baseline[j].median
            let reference = above ? baseline[j].p99 : baseline[j].p01
            let value = info.display(vector[j])
            let base = info.display(reference)
            let text = "\(info.words) \(format(value)) (baseline \(above ? "p99" : "p1"): \(format(base)))"
            return ExplanationItem(feature: info.name, value: value, baseline: base, direction: above ? "above" : "below", text: text)
        }
    }

    /// Whole numbers without decimals, small values with two significant places.
    static func format(_ x: Double) -> String {
        guard x.isFinite else { return "\(x)" }
        if abs(x) >= 100 || x == x.rounded() { return String(Int64(x.rounded())) }
        if abs(x) >= 10 { return String(Double(Int64(x * 10)) / 10) }
        return String(Double(Int64((x * 100).rounded())) / 100)
    }
}
