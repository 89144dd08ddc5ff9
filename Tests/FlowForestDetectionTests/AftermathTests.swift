import FlowForestCore
import Testing
@testable import FlowForestDetection

/// After a flood stops, its 10 s and 100 s windows still hold it while the
/// 1 s window that named it has emptied: the victim and the flooder stay
/// anomalous for a while, but only "unusual". That is the same attack, not
/// news, and is folded into its report.
@Suite("Attack aftermath")
struct AftermathTests {
    /// A flood for the first `seconds`, then nothing.
    static func floodFor(_ seconds: Int, _ flood: @escaping @Sendable (inout TrafficSimulator, Int) -> Void)
        -> @Sendable (inout TrafficSimulator, Int) -> Void {
        { s, second in if second <= seconds { flood(&s, second) } }
    }

    @Test("a flood's victim and flooder are not reported as unusual once the flood stops", arguments: [false, true])
    func aftermathIsFolded(ipFlood: Bool) throws {
        var sim = TrafficSimulator()
        var detector = trainedDetector(&sim)
        let flood = ipFlood ? IPFloodTests.flood(proto: 47, rate: 2000) : Attacks.udpFlood
        let found = sim.runAttack(seconds: 40, into: &detector, Self.floodFor(4, flood)).map(\.anomaly)
        let summary = found.map { "\($0.kind) \($0.label) \($0.sourceAddress?.description ?? "-") -> \($0.destinationAddress?.description ?? "-")" }
        let named = found.filter(\.label.isSpecific)
        #expect(!named.isEmpty, "the flood is named: \(summary)")
        // Every unusual report names neither end of the flood.
        let ends = Set(named.flatMap { [$0.sourceAddress, $0.destinationAddress].compactMap { $0 } })
        let aftermath = found.filter { a in
            !a.label.isSpecific && a.kind != .flow && [a.sourceAddress, a.destinationAddress].compactMap { $0 }.contains { ends.contains($0) }
        }
        #expect(aftermath.isEmpty, "\(summary)")
    }
}
