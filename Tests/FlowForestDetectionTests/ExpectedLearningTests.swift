import FlowForestCore
import Testing
@testable import FlowForestDetection

@Suite("Anomalies marked expected train the next model")
struct ExpectedLearningTests {
    /// The host scores of the attacker's flood in `seconds` seconds, as reported.
    static func floodScores(_ sim: inout TrafficSimulator, _ detector: inout Detector, seconds: Int) -> [Double] {
        sim.runAttack(seconds: seconds, into: &detector, Attacks.udpFlood)
            .filter { $0.anomaly.kind == .host && $0.anomaly.sourceAddress == Attacks.attacker }
            .map(\.anomaly.score)
    }

    @Test("a flood a rule calls expected is learned at retraining: it scores lower than in the same run without the rule")
    func expectedVectorsLowerTheScore() throws {
        let rule = Suppression(actor: AddressBlock("\(Attacks.attacker)"), label: .udpFlood, createdBy: "alice",
                               reason: "the nightly backup", createdMs: 0)
        func run(expecting rules: [Suppression]) throws -> (before: [Double], after: [Double], expected: Int, reservoir: Int) {
            var sim = TrafficSimulator()
            var detector = trainedDetector(&sim) {
                $0.retrainIntervalSeconds = 0
                $0.repeatSuppressionSeconds = 0
                $0.retrainShare = 1
            }
            detector.setExpected(rules)
            let before = Self.floodScores(&sim, &detector, seconds: 60)
            let host = try #require(detector.status.kinds.first { $0.kind == .host })
            detector.retrain(nowNs: sim.nowNs)
            #expect(detector.status.kinds.first { $0.kind == .host }?.expectedVectors == 0, "retraining used the sample up")
            return (before, Self.floodScores(&sim, &detector, seconds: 5), host.expectedVectors, host.reservoirVectors)
        }
        let learned = try run(expecting: [rule])
        let control = try run(expecting: [])
        // Both runs saw the same traffic and flagged the flood before retraining.
        #expect(!learned.before.isEmpty && !control.before.isEmpty)
        #expect(learned.expected > 0 && learned.expected <= 60 && control.expected == 0)
        #expect(learned.reservoir == control.reservoir, "the flood's vectors never enter the reservoir of normal ones")
        print("expected-learning: before \(learned.before.suffix(3)) after \(learned.after); control before \(control.before.suffix(3)) after \(control.after)")
        // Without the rule the retrained model still flags the flood as before.
        let controlAfter = try #require(control.after.max(), "the control stopped flagging the flood")
        let learnedAfter = learned.after.max() ?? 0
        #expect(learnedAfter < controlAfter, "expected \(learned.after) below the control's \(control.after)")
        #expect(learnedAfter < (learned.before.min() ?? 0), "expected \(learned.after) below the scores before retraining \(learned.before)")
    }

    @Test("the expected sample is bounded: the oldest vectors give way")
    func expectedSampleIsBounded() {
        var sim = TrafficSimulator()
        var detector = trainedDetector(&sim) {
            $0.retrainIntervalSeconds = 0
            $0.repeatSuppressionSeconds = 0
            $0.expectedSampleSize = 5
        }
        detector.setExpected([Suppression(actor: AddressBlock("\(Attacks.attacker)"), createdBy: "alice", reason: "backup", createdMs: 0)])
        _ = sim.runAttack(seconds: 30, into: &detector, Attacks.udpFlood)
        #expect(detector.status.kinds.first { $0.kind == .host }?.expectedVectors == 5)
    }
}
