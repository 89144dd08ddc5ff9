import Foundation
import FlowForestCore
import Testing
@testable import FlowForestDetection

/// A label's count must be beyond what the learned baseline holds, not only
/// above an absolute floor: a server with many clients receives more SYNs a
/// second than the floor in normal traffic, and a flood of another kind
/// that makes it anomalous must not have its normal SYNs called a SYN flood.
@Suite("Labels relative to the baseline")
struct RelativeLabelTests {
    /// A destination vector with the given counts (as people read them), the rest 0.
    static func destination(_ counts: [String: Double]) -> [Double] {
        var v = [Double](repeating: 0, count: FeatureSchema.destination.count)
        for (name, value) in counts { v[FeatureSchema.index(name, in: .destination)] = log1p(value) }
        return v
    }

    /// A baseline whose p99 (and maximum) of each named count is given, the rest 0.
    static func baseline(_ p99: [String: Double]) -> [FeatureBaseline] {
        FeatureSchema.destination.map { f in
            let p = log1p(p99[f.name] ?? 0)
            return FeatureBaseline(median: p / 2, mad: 0, p01: 0, p99: p, max: p * 1.05)
        }
    }

    /// A busy server: 61 SYNs a second at p99, every one becoming a connection.
    static let busyServer = baseline(["syn_received_1s": 61, "synack_sent_1s": 61, "established_flows_1s": 61, "flows_received_1s": 72])

    @Test("a busy server's normal SYNs beside a PSH+ACK flood are a tcp flood, not a syn flood")
    func normalSynsAreNotAFlood() {
        // 63 SYNs, all answered, none established yet this second (their ACKs
        // are in the next poll), and 4000 packets outside any connection.
        let v = Self.destination(["syn_received_1s": 63, "synack_sent_1s": 63, "flows_received_1s": 4000,
                                  "unsolicited_tcp_received_1s": 4000, "distinct_dst_ports_10s": 2])
        #expect(Labeler.label(kind: .destination, vector: v, baseline: Self.busyServer) == .tcpFlood)
    }

    @Test("SYNs at twice the baseline's p99, unanswered, are a syn flood on the same server")
    func floodAboveTheBaseline() {
        let v = Self.destination(["syn_received_1s": 300, "synack_sent_1s": 60, "flows_received_1s": 300, "distinct_dst_ports_10s": 2])
        #expect(Labeler.label(kind: .destination, vector: v, baseline: Self.busyServer) == .synFlood)
        // Just above p99 but under twice it: not a behaviour by itself.
        let near = Self.destination(["syn_received_1s": 100, "synack_sent_1s": 20, "flows_received_1s": 100, "distinct_dst_ports_10s": 2])
        #expect(Labeler.label(kind: .destination, vector: near, baseline: Self.busyServer) == .unusualDestination)
    }

    @Test("with a quiet baseline the absolute floor still decides")
    func quietBaseline() {
        let quiet = Self.baseline(["syn_received_1s": 3, "synack_sent_1s": 3, "established_flows_1s": 3])
        let v = Self.destination(["syn_received_1s": 60, "synack_sent_1s": 5, "flows_received_1s": 60, "distinct_dst_ports_10s": 1])
        #expect(Labeler.label(kind: .destination, vector: v, baseline: quiet) == .synFlood)
        let below = Self.destination(["syn_received_1s": 40, "synack_sent_1s": 5, "flows_received_1s": 40, "distinct_dst_ports_10s": 1])
        #expect(Labeler.label(kind: .destination, vector: below, baseline: quiet) == .unusualDestination)
    }
}
