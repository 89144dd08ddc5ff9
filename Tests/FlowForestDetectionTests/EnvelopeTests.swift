import FlowForestCore
import Testing
@testable import FlowForestDetection

/// The baseline envelope: what an "unusual …" anomaly must lie outside of,
/// and what lets a specific behaviour through when the forest under-scores it.
@Suite("Baseline envelope")
struct EnvelopeTests {
    /// A host baseline where every feature sat at 1 (max 1), and a vector at it.
    static let baseline = FeatureSchema.host.map { _ in FeatureBaseline(median: 1, mad: 0, p01: 1, p99: 1, max: 1) }
    static let atBaseline = [Double](repeating: 1, count: FeatureSchema.host.count)

    static func vector(_ name: String, _ value: Double) -> [Double] {
        var v = atBaseline
        v[FeatureSchema.index(name, in: .host)] = value
        return v
    }

    @Test("a log ratio leaves the envelope at a factor of 4 past its maximum, as a count does; a share at 0.5")
    func logRatiosAreLogs() {
        #expect(!Labeler.outsideEnvelope(kind: .host, vector: Self.atBaseline, baseline: Self.baseline))
        // A server's ICMP unreachables: nothing received back, 2.4 times the
        // log ratio its training reached (0.86 above) — two small volumes, not news.
        #expect(!Labeler.outsideEnvelope(kind: .host, vector: Self.vector("sent_received_byte_ratio_100s", 1.86), baseline: Self.baseline))
        #expect(Labeler.outsideEnvelope(kind: .host, vector: Self.vector("sent_received_byte_ratio_100s", 2.4), baseline: Self.baseline))
        // The same steps on a log-scaled count.
        #expect(!Labeler.outsideEnvelope(kind: .host, vector: Self.vector("bytes_sent_10s", 1.86), baseline: Self.baseline))
        #expect(Labeler.outsideEnvelope(kind: .host, vector: Self.vector("bytes_sent_10s", 2.4), baseline: Self.baseline))
        // A share has no logs in it: 0.5 past its maximum is far.
        #expect(Labeler.outsideEnvelope(kind: .host, vector: Self.vector("failed_share_10s", 1.6), baseline: Self.baseline))
        #expect(!Labeler.outsideEnvelope(kind: .host, vector: Self.vector("failed_share_10s", 1.4), baseline: Self.baseline))
        // Every log ratio of the schema is marked so, and none is log-scaled too.
        let ratios = (FeatureSchema.flow + FeatureSchema.host + FeatureSchema.destination).filter(\.logRatio)
        #expect(Set(ratios.map(\.name)) == ["down_up_byte_ratio", "sent_received_byte_ratio_100s"])
        #expect(ratios.allSatisfy { !$0.logScaled })
    }
}
