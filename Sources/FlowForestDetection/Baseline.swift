public import FlowForestCore

/// Where one feature sat in the training data (in vector units, i.e. after
/// log1p where the feature is log-scaled): the reference explanations quote.
public struct FeatureBaseline: Sendable, Hashable, Codable {
    public var median: Double
    /// Median absolute deviation from the median.
    public var mad: Double
    public var p01: Double
    public var p99: Double
    public var max: Double

    public init(median: Double, mad: Double, p01: Double, p99: Double, max: Double) {
        self.median = median
        self.mad = mad
        self.p01 = p01
        self.p99 = p99
        self.max = max
    }

    /// Robust z-score: distance from the median in units of 1.4826·MAD
    /// (the standard deviation for normal data); a floor keeps features that
    /// never varied in training from dividing by zero.
    public func robustZ(_ x: Double) -> Double {
        let scale = Swift.max(1.4826 * mad, 1e-3 * Swift.max(1, abs(median)), 0.05)
        return (x - median) / scale
    }

    /// Per-feature baselines of `rows` (`featureCount` values each).
    static func of(rows: [Double], featureCount d: Int) -> [FeatureBaseline] {
        let n = rows.count / d
        guard n > 0 else { return [] }
        var column = [Double](repeating: 0, count: n)
        var out: [FeatureBaseline] = []
        out.reserveCapacity(d)
        for j in 0..<d {
            for i in 0..<n { column[i] = rows[i * d + j] }
            column.sort()
            let median = Quantile.sorted(column, 0.5)
            var deviations = column.map { abs($0 - median) }
            deviations.sort()
            out.append(FeatureBaseline(
                median: median, mad: Quantile.sorted(deviations, 0.5),
                p01: Quantile.sorted(column, 0.01), p99: Quantile.sorted(column, 0.99), max: column[n - 1]))
        }
        return out
    }
}

/// Score thresholds of one forest, from scores of baseline vectors held out
/// of training: low at p99, medium at p99.9, high at p99.99, critical above
/// the baseline maximum.
public struct SeverityThresholds: Sendable, Hashable, Codable {
    public var low: Double
    public var medium: Double
    public var high: Double
    public var critical: Double

    public init(low: Double, medium: Double, high: Double, critical: Double) {
        self.low = low
        self.medium = medium
        self.high = high
        self.critical = critical
    }

    /// Thresholds from held-out scores. With `contamination` set, the share
    /// of baseline vectors expected to be anomalous moves the low threshold
    /// to the (1 − contamination) quantile instead of p99.
    public static func from(heldOutScores scores: [Double], contamination: Double? = nil) -> SeverityThresholds {
        let s = scores.sorted()
        guard let maximum = s.last else { return SeverityThresholds(low: 0.6, medium: 0.65, high: 0.7, critical: 0.75) }
        let lowQ = contamination.map { 1 - Swift.min(Swift.max($0, 0), 0.5) } ?? 0.99
        let low = Quantile.sorted(s, lowQ)
        let medium = Swift.max(low, Quantile.sorted(s, 0.999))
        let high = Swift.max(medium, Quantile.sorted(s, 0.9999))
        // Strictly above the largest baseline score: nothing normal was ever critical.
        let critical = Swift.max(high, maximum) + 1e-9
        return SeverityThresholds(low: low, medium: medium, high: high, critical: critical)
    }

    /// The severity of a score, nil below the low threshold.
    public func severity(of score: Double) -> Severity? {
        if score >= critical { return .critical }
        if score > high { return .high }
        if score > medium { return .medium }
        if score > low { return .low }
        return nil
    }
}

/// Linear-interpolated quantiles of sorted data (numpy's default method).
enum Quantile {
    static func sorted(_ s: [Double], _ q: Double) -> Double {
        guard !s.isEmpty else { return 0 }
        let position = q * Double(s.count - 1)
        let i = Int(position)
        guard i + 1 < s.count else { return s[s.count - 1] }
        let f = position - Double(i)
        return s[i] + (s[i + 1] - s[i]) * f
    }
}
