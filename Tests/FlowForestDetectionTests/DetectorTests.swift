import FlowForestCore
import Foundation
import Testing
@testable import FlowForestDetection

/// Attacks written as the packets real tools send, mixed into normal traffic.
enum Attacks {
    static let attacker = TrafficSimulator.ip("198.18.0.66")

    static func portScan(_ s: inout TrafficSimulator, _ second: Int) {
        guard second <= 2 else { return }
        for i in 0..<500 {
            let port = UInt16((second - 1) * 500 + i + 1)
            let t = s.nowNs + UInt64(i) * 1_800_000
            s.packet(at: t, attacker, TrafficSimulator.web, sport: 40000, dport: port, proto: 6, length: 44, flags: .syn)
            if port == 80 || port == 443 {
                s.packet(at: t + 100_000, TrafficSimulator.web, attacker, sport: port, dport: 40000, proto: 6, length: 44, flags: [.syn, .ack])
                s.packet(at: t + 200_000, attacker, TrafficSimulator.web, sport: 40000, dport: port, proto: 6, length: 40, flags: .rst)
            } else {
                s.packet(at: t + 100_000, TrafficSimulator.web, attacker, sport: port, dport: 40000, proto: 6, length: 40, flags: [.rst, .ack])
            }
        }
    }

    static func hostSweep(_ s: inout TrafficSimulator, _ second: Int) {
        guard second <= 3 else { return }
        for i in 0..<80 {
            let target = TrafficSimulator.ip("198.18.\(2 + second).\(i + 1)")
            s.packet(at: s.nowNs + UInt64(i) * 10_000_000, attacker, target, sport: 8, dport: 0, proto: 1, length: 28, icmpType: 8)
        }
    }

    static func synFlood(_ s: inout TrafficSimulator, _ second: Int) {
        for i in 0..<2000 {
            let source = TrafficSimulator.ip("198.19.\(s.rng.below(256)).\(s.rng.below(256))")
            let sport = UInt16(1024 + s.rng.below(60000))
            let t = s.nowNs + UInt64(i) * 450_000
            s.packet(at: t, source, TrafficSimulator.web, sport: sport, dport: 80, proto: 6, length: 40, flags: .syn)
            s.packet(at: t + 50_000, TrafficSimulator.web, source, sport: 80, dport: sport, proto: 6, length: 44, flags: [.syn, .ack])
        }
    }

    /// SYNs at 1500 a second from forged sources in a /20, so each forged
    /// address sends a handful; the victim answers with SYN-ACKs or not.
    static func spoofedSynFlood(answered: Bool) -> @Sendable (inout TrafficSimulator, Int) -> Void {
        { s, _ in
            for i in 0..<1500 {
                let source = TrafficSimulator.ip("198.19.\(s.rng.below(16)).\(1 + s.rng.below(254))")
                let sport = UInt16(1024 + s.rng.below(60000))
                let t = s.nowNs + UInt64(i) * 600_000
                s.packet(at: t, source, TrafficSimulator.web, sport: sport, dport: 80, proto: 6, length: 40, flags: .syn)
                if answered {
                    s.packet(at: t + 50_000, TrafficSimulator.web, source, sport: 80, dport: sport, proto: 6, length: 44, flags: [.syn, .ack])
                }
            }
        }
    }

    static func udpFlood(_ s: inout TrafficSimulator, _ second: Int) {
        for i in 0..<3000 {
            s.packet(at: s.nowNs + UInt64(i) * 300_000, attacker, TrafficSimulator.dns, sport: 5555, dport: 9, proto: 17, length: 1028)
        }
    }

    static func icmpFlood(_ s: inout TrafficSimulator, _ second: Int) {
        for i in 0..<3000 {
            let t = s.nowNs + UInt64(i) * 300_000
            s.packet(at: t, attacker, TrafficSimulator.web, sport: 8, dport: 0, proto: 1, length: 1028, icmpType: 8)
            s.packet(at: t + 20_000, TrafficSimulator.web, attacker, sport: 0, dport: 8, proto: 1, length: 1028, icmpType: 0)
        }
    }

    static func slowConnections(_ s: inout TrafficSimulator, _ second: Int) {
        for i in 0..<40 {
            let sport = UInt16(20000 + i)
            let t = s.nowNs + UInt64(i) * 5_000_000
            if second == 1 {
                s.packet(at: t, attacker, TrafficSimulator.web, sport: sport, dport: 80, proto: 6, length: 60, flags: .syn)
                s.packet(at: t + 100_000, TrafficSimulator.web, attacker, sport: 80, dport: sport, proto: 6, length: 60, flags: [.syn, .ack])
                s.packet(at: t + 200_000, attacker, TrafficSimulator.web, sport: sport, dport: 80, proto: 6, length: 52, flags: .ack)
                s.packet(at: t + 300_000, attacker, TrafficSimulator.web, sport: sport, dport: 80, proto: 6, length: 80, flags: [.psh, .ack])
            } else if second % 5 == 0 {
                s.packet(at: t, attacker, TrafficSimulator.web, sport: sport, dport: 80, proto: 6, length: 60, flags: [.psh, .ack])
                s.packet(at: t + 100_000, TrafficSimulator.web, attacker, sport: 80, dport: sport, proto: 6, length: 52, flags: .ack)
            }
        }
    }

    static let outside = TrafficSimulator.ip("198.18.9.9")

    static func exfiltration(_ s: inout TrafficSimulator, _ second: Int) {
        let client = TrafficSimulator.clients[0]
        if second == 1 {
            s.packet(at: s.nowNs, client, outside, sport: 45000, dport: 443, proto: 6, length: 60, flags: .syn)
            s.packet(at: s.nowNs + 100_000, outside, client, sport: 443, dport: 45000, proto: 6, length: 60, flags: [.syn, .ack])
            s.packet(at: s.nowNs + 200_000, client, outside, sport: 45000, dport: 443, proto: 6, length: 52, flags: .ack)
        }
        for i in 0..<3000 {
            let t = s.nowNs + 1_000_000 + UInt64(i) * 300_000
            s.packet(at: t, client, outside, sport: 45000, dport: 443, proto: 6, length: 1452, flags: .ack)
            if i % 2 == 0 { s.packet(at: t + 50_000, outside, client, sport: 443, dport: 45000, proto: 6, length: 52, flags: .ack) }
        }
    }

    static func beaconing(_ s: inout TrafficSimulator, _ second: Int) {
        guard second % 2 == 1 else { return }
        s.tcpSession(at: s.nowNs + 300_000_000, TrafficSimulator.clients[1], TrafficSimulator.ip("198.18.9.8"), dport: 8443, requestBytes: 120, responseSegments: 0)
    }
}

@Suite("Detector")
struct DetectorTests {
    @Test("no anomalies while learning; a model per kind once the window ends")
    func learningWindow() {
        var sim = TrafficSimulator()
        var config = DetectorConfiguration()
        config.learningSeconds = 60
        config.learningVectors = 1_000_000
        config.minimumLearningVectors = 50
        var detector = Detector(configuration: config, sensor: "t")
        // Attack traffic inside the learning window must not raise alerts.
        let during = sim.runAttack(seconds: 30, into: &detector, Attacks.portScan)
        #expect(during.isEmpty)
        #expect(detector.status.phase == .learning)
        _ = sim.runNormal(seconds: 40, into: &detector)
        #expect(detector.status.phase == .scoring)
        #expect(detector.model?.models.count == 3)
        #expect(detector.status.kinds.allSatisfy { $0.thresholds != nil })
    }

    @Test("a sample that fills in seconds still learns the whole window, and says when it ends")
    func learningRunsItsWindow() throws {
        var sim = TrafficSimulator()
        var config = DetectorConfiguration()
        config.learningSeconds = 60
        config.learningVectors = 40
        config.minimumLearningVectors = 20
        var detector = Detector(configuration: config, sensor: "t")
        _ = sim.runNormal(seconds: 20, into: &detector)
        let flows = try #require(detector.status.kinds.first { $0.kind == .flow })
        #expect(flows.vectorsSeen > 80, "the sample (40) is long full: \(flows.vectorsSeen) seen")
        #expect(detector.status.phase == .learning && detector.model == nil)
        let until = try #require(detector.status.learningUntilMs)
        _ = sim.runNormal(seconds: 45, into: &detector)
        #expect(detector.status.phase == .scoring && detector.status.learningUntilMs == nil)
        let model = try #require(detector.model?[.flow])
        #expect(model.trainingVectors + model.heldOutVectors == 40)
        #expect(abs(model.trainedAtMs - until) <= 1_000, "trained when the window ended: \(model.trainedAtMs) vs \(until)")
    }

    @Test("ordinary traffic after learning raises no alerts")
    func quietOnNormalTraffic() {
        var sim = TrafficSimulator()
        var detector = trainedDetector(&sim)
        let alerts = sim.runNormal(seconds: 600, into: &detector)
        let serious = alerts.filter { $0.severity >= .medium }
        print("normal: \(alerts.count) anomalies in 600 s, \(serious.count) medium or worse: \(alerts.map { "\($0.kind) \($0.label) \($0.severity)" })")
        #expect(serious.isEmpty)
        #expect(alerts.count <= 2)
    }

    struct Scenario: Sendable, CustomStringConvertible {
        var name: String
        var label: AnomalyLabel
        var seconds: Int
        var within: Int
        var attack: @Sendable (inout TrafficSimulator, Int) -> Void
        var description: String { name }
    }

    static let scenarios: [Scenario] = [
        Scenario(name: "port scan", label: .portScan, seconds: 4, within: 3, attack: Attacks.portScan),
        Scenario(name: "host sweep", label: .hostSweep, seconds: 4, within: 3, attack: Attacks.hostSweep),
        Scenario(name: "syn flood", label: .synFlood, seconds: 4, within: 3, attack: Attacks.synFlood),
        Scenario(name: "udp flood", label: .udpFlood, seconds: 4, within: 3, attack: Attacks.udpFlood),
        Scenario(name: "icmp flood", label: .icmpFlood, seconds: 4, within: 3, attack: Attacks.icmpFlood),
        Scenario(name: "slow connections", label: .slowConnections, seconds: 6, within: 4, attack: Attacks.slowConnections),
        Scenario(name: "exfiltration", label: .exfiltration, seconds: 6, within: 3, attack: Attacks.exfiltration),
        Scenario(name: "beaconing", label: .beaconing, seconds: 20, within: 12, attack: Attacks.beaconing),
    ]

    @Test("each attack is found, labelled and explained", arguments: scenarios)
    func attackIsDetected(_ scenario: Scenario) throws {
        var sim = TrafficSimulator()
        var detector = trainedDetector(&sim)
        let found = sim.runAttack(seconds: scenario.seconds, into: &detector, scenario.attack)
        print("\(scenario.name): \(found.map { "s\($0.second) \($0.anomaly.kind) \($0.anomaly.label) \($0.anomaly.severity) \($0.anomaly.explanation.map(\.text))" })")
        let labelled = try #require(found.first { $0.anomaly.label == scenario.label }, "no \(scenario.label.rawValue) alert")
        #expect(labelled.second <= scenario.within)
        #expect(!labelled.anomaly.explanation.isEmpty)
        #expect(labelled.anomaly.explanation.allSatisfy { !$0.text.isEmpty && ($0.direction == "above" || $0.direction == "below") })
    }

    @Test("a flood from forged sources is one story about its victim, not one per forged address", arguments: [false, true])
    func spoofedSources(answered: Bool) {
        var sim = TrafficSimulator()
        var detector = trainedDetector(&sim)
        let found = sim.runAttack(seconds: 20, into: &detector, Attacks.spoofedSynFlood(answered: answered)).map(\.anomaly)
        let forged = found.filter { $0.kind != .destination && $0.sourceAddress?.description.hasPrefix("198.19.") == true }
        #expect(found.contains { $0.kind == .destination && $0.label == .synFlood })
        #expect(forged.count == 0, "\(forged.prefix(3).map { "\($0.sourceAddress!) \($0.label) \($0.explanation.map(\.text))" })")
    }

    @Test("which hosts are too thin to score: lone SYNs or unanswered packets to one service, without a beacon's rhythm")
    func thinHosts() {
        func host(_ set: [String: Double]) -> EntityVector {
            var vector = [Double](repeating: 0, count: FeatureSchema.host.count)
            let base = ["flows_initiated_100s": 6.0, "packets_sent_100s": 6, "packets_sent_10s": 5, "distinct_dst_pairs_100s": 1]
            for (name, value) in base.merging(set, uniquingKeysWith: { $1 }) {
                let i = FeatureSchema.index(name, in: .host)
                vector[i] = FeatureSchema.host[i].logScaled ? log1p(value) : value
            }
            return EntityVector(kind: .host, address: TrafficSimulator.ip("198.19.0.1"), peer: nil, ipProtocol: 6, port: 80,
                                vector: vector, recentFlowIDs: [])
        }
        #expect(host(["syn_sent_100s": 6, "packets_received_100s": 6]).isThin)  // forged SYNs the victim answers
        #expect(host([:]).isThin)  // lone datagrams nobody answers
        #expect(!host(["packets_received_100s": 6]).isThin)  // answered datagrams to one resolver
        #expect(!host(["syn_sent_100s": 6, "beacon_regularity": 0.9]).isThin)  // a beacon to a refusing server
        #expect(!host(["syn_sent_100s": 6, "distinct_dst_pairs_100s": 3]).isThin)  // several services
        #expect(!host(["syn_sent_100s": 6, "packets_sent_100s": 18]).isThin)  // more than lone packets
        #expect(host(["flows_initiated_100s": 3, "packets_sent_100s": 30]).isThin)  // three small flows
    }

    @Test("a port scan's host alert names distinct destination ports in its explanation")
    func portScanExplanation() throws {
        var sim = TrafficSimulator()
        var detector = trainedDetector(&sim)
        let found = sim.runAttack(seconds: 3, into: &detector, Attacks.portScan).map(\.anomaly)
        let scan = try #require(found.first { $0.kind == .host && $0.label == .portScan })
        #expect(scan.sourceAddress == Attacks.attacker)
        #expect(scan.destinationAddress == TrafficSimulator.web)
        #expect(scan.explanation.contains { $0.feature.hasPrefix("distinct_dst_ports") && $0.direction == "above" && $0.value > $0.baseline })
        #expect(scan.explanation.contains { $0.text.contains("distinct destination ports") })
    }

    @Test("a saved model scores from the first poll, with no learning")
    func loadedModelScoresAtOnce() throws {
        var sim = TrafficSimulator()
        let trained = trainedDetector(&sim)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("ff-detector-\(getpid()).json").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try trained.model!.save(to: path)
        var fresh = Detector(model: try DetectionModel.load(from: path), sensor: "t")
        #expect(fresh.status.phase == .scoring)
        let found = sim.runAttack(seconds: 3, into: &fresh, Attacks.portScan)
        #expect(found.contains { $0.anomaly.label == .portScan })
    }

    @Test("a model trained offline from normal polls (flowforest train) finds the attack live")
    func offlineTraining() throws {
        var sim = TrafficSimulator()
        var trainer = ModelTrainer()
        for _ in 0..<240 {
            sim.normalSecond()
            trainer.add(sim.tick())
        }
        let model = try trainer.model(nowMs: 0)
        #expect(Set(model.models.map(\.kind)) == Set(AnomalyKind.allCases))
        var detector = Detector(model: model, sensor: "t")
        #expect(sim.runNormal(seconds: 120, into: &detector).isEmpty)
        let found = sim.runAttack(seconds: 3, into: &detector, Attacks.hostSweep)
        #expect(found.contains { $0.anomaly.label == .hostSweep && $0.second <= 3 })
    }

    /// A detector started with a trained model (as `--model` gives it), retraining every minute.
    static func givenModel(_ sim: inout TrafficSimulator) throws -> (detector: Detector, model: DetectionModel) {
        let model = try #require(trainedDetector(&sim).model)
        var config = DetectorConfiguration()
        config.retrainIntervalSeconds = 60
        return (Detector(configuration: config, model: model, sensor: "t"), model)
    }

    @Test("a model given at start is retrained on the schedule too, not only a learned one")
    func givenModelRetrains() throws {
        var sim = TrafficSimulator()
        var (detector, trained) = try Self.givenModel(&sim)
        _ = sim.runNormal(seconds: 70, into: &detector)
        #expect(detector.status.retrainings == 1)
        #expect(detector.model?.version == trained.version + 1)
    }

    @Test("batches on two clocks two hours apart (capture, and collection after a clock step) keep one retraining schedule")
    func twoClocksOneSchedule() throws {
        var sim = TrafficSimulator()
        var (detector, _) = try Self.givenModel(&sim)
        for _ in 0..<70 {
            sim.normalSecond()
            _ = detector.process(sim.tick())
            // The collector's empty poll, on a wall clock two hours ahead.
            _ = detector.process(FlowBatch(timeNs: sim.nowNs + 7_200_000_000_000, records: [], statistics: CaptureStatistics(),
                                           activeFlows: 0, reporting: .delayed))
        }
        #expect(detector.status.retrainings == 1, "one retraining in 70 s of the capture's clock, not one every other poll")
    }

    @Test("a kind missing from a model in use learns its own window from its first vector, then joins the model as a new version")
    func lateKindNewVersion() throws {
        var sim = TrafficSimulator()
        var model = try #require(trainedDetector(&sim).model)
        model[.destination] = nil
        var config = DetectorConfiguration()
        config.learningSeconds = 20
        config.minimumLearningVectors = 10
        config.retrainIntervalSeconds = 0
        var detector = Detector(configuration: config, model: model, sensor: "t")
        #expect(detector.status.learningUntilMs == nil, "no destination vector yet: no window")
        _ = sim.runNormal(seconds: 5, into: &detector)
        let until = try #require(detector.status.learningUntilMs)
        #expect(detector.model?[.destination] == nil)
        _ = sim.runNormal(seconds: 25, into: &detector)
        let joined = try #require(detector.model?[.destination])
        #expect(abs(joined.trainedAtMs - until) <= 1_000, "trained when its window ended: \(joined.trainedAtMs) vs \(until)")
        #expect(detector.model?.version == model.version + 1, "a new version, which the pipeline stores")
        #expect(detector.status.learningUntilMs == nil)
    }

    @Test("a kind learned from few vectors and retrained from many keeps its sample size and depth: retrained trees are scored as the rest")
    func retrainKeepsSampleSize() throws {
        var sim = TrafficSimulator()
        var model = try #require(trainedDetector(&sim).model)
        model[.destination] = nil
        var config = DetectorConfiguration()
        config.learningSeconds = 4
        config.minimumLearningVectors = 10
        config.retrainIntervalSeconds = 60
        var detector = Detector(configuration: config, model: model, sensor: "t")
        _ = sim.runNormal(seconds: 8, into: &detector)
        let learned = try #require(detector.model?[.destination]).forest
        try #require(learned.effectiveSampleSize < 64, "learned from \(learned.effectiveSampleSize) vectors: the case needs few")
        let retrainings = detector.status.retrainings
        _ = sim.runNormal(seconds: 130, into: &detector)
        #expect(detector.status.retrainings > retrainings)
        let retrained = try #require(detector.model?[.destination]).forest
        #expect(retrained != learned, "the destination forest was retrained")
        #expect(retrained.effectiveSampleSize == learned.effectiveSampleSize && retrained.maxDepth == learned.maxDepth,
                "sample \(learned.effectiveSampleSize) → \(retrained.effectiveSampleSize), depth \(learned.maxDepth) → \(retrained.maxDepth)")
        let x = [Double](repeating: 1, count: retrained.featureCount)
        #expect(abs(retrained.scoreWithCredit(x).score - retrained.scores(rows: x)[0]) < 1e-12)
    }

    @Test("a late kind whose training fails keeps learning, and the model in use keeps its version")
    func failedTrainingNoVersion() throws {
        var sim = TrafficSimulator()
        var model = try #require(trainedDetector(&sim).model)
        model[.destination] = nil
        var config = DetectorConfiguration()
        config.learningSeconds = 10
        config.minimumLearningVectors = 10
        config.retrainIntervalSeconds = 0
        config.forest.trees = 0  // every training fails: no forest of no trees
        var detector = Detector(configuration: config, model: model, sensor: "t")
        _ = sim.runNormal(seconds: 30, into: &detector)
        let destination = try #require(detector.status.kinds.first { $0.kind == .destination })
        #expect(destination.learningVectors >= 10, "its window ended with enough vectors: \(destination.learningVectors)")
        #expect(detector.model?[.destination] == nil && destination.phase == .learning)
        #expect(detector.model?.version == model.version, "nothing joined the model, so no new version to store")
        #expect(detector.status.retrainings == 0)
    }

    @Test("the hourly schedule retrains the kinds in use and leaves a late kind's learning window alone")
    func scheduleLeavesLateKindLearning() throws {
        var sim = TrafficSimulator()
        var model = try #require(trainedDetector(&sim).model)
        model[.destination] = nil
        var config = DetectorConfiguration()
        config.learningSeconds = 40
        config.minimumLearningVectors = 10
        config.retrainIntervalSeconds = 15
        var detector = Detector(configuration: config, model: model, sensor: "t")
        _ = sim.runNormal(seconds: 20, into: &detector)
        #expect(detector.status.retrainings >= 1, "the kinds in use were retrained on the schedule")
        let learning = try #require(detector.status.kinds.first { $0.kind == .destination })
        #expect(learning.learningVectors >= 10, "enough vectors to train, had the schedule ended the window")
        #expect(detector.model?[.destination] == nil, "still inside its 40 s window")
        let until = try #require(detector.status.learningUntilMs)
        // Second by second: a scheduled retraining after it joins would restamp its trainedAtMs.
        var joinedAtMs: Int64?
        for _ in 0..<30 where joinedAtMs == nil {
            _ = sim.runNormal(seconds: 1, into: &detector)
            if detector.model?[.destination] != nil { joinedAtMs = Int64(sim.nowNs / 1_000_000) }
        }
        let joined = try #require(joinedAtMs, "the late kind never joined the model")
        #expect(abs(joined - until) <= 1_000, "trained when its own window ended: \(joined) vs \(until)")
    }

    @Test("too little traffic to train on is a clear error")
    func trainingNeedsTraffic() {
        #expect(throws: ForestTrainingError.noVectors) { try ModelTrainer().model(nowMs: 0) }
    }

    @Test("retraining regrows a share of trees from vectors that scored normal only")
    func retraining() throws {
        var sim = TrafficSimulator()
        // No repeat suppression: the flood after retraining must be reported
        // again in its own right, not hidden behind the first report.
        var detector = trainedDetector(&sim) {
            $0.retrainIntervalSeconds = 0
            $0.repeatSuppressionSeconds = 0
        }
        let before = try #require(detector.model)
        _ = sim.runAttack(seconds: 60, into: &detector, Attacks.udpFlood)
        let reservoirBefore = detector.status.kinds.first { $0.kind == .host }!.reservoirVectors
        detector.retrain(nowNs: sim.nowNs)
        let after = try #require(detector.model)
        #expect(after.version == before.version + 1)
        #expect(after[.host]!.forest != before[.host]!.forest)
        #expect(detector.status.retrainings == 1)
        // The flood never entered the reservoir, so the retrained model still flags it.
        #expect(reservoirBefore > 0)
        let again = sim.runAttack(seconds: 3, into: &detector, Attacks.udpFlood)
        #expect(again.contains { $0.anomaly.label == .udpFlood }, "the retrained model missed the flood: \(again.map(\.anomaly.label))")
        #expect(detector.status.suppressedRepeats == 0)
    }

    @Test("a flagged vector waits for confirmation unless its label's own feature is far beyond the baseline")
    func persistence() throws {
        var sim = TrafficSimulator()
        let trained = trainedDetector(&sim) { $0.persistenceK = 3; $0.persistenceN = 3 }
        let model = try #require(trained.model)
        // The same model, except that the baseline once held ICMP bursts of
        // thousands of packets: the flood's tell-tale feature is then inside the envelope.
        var widened = model
        for m in widened.models.indices where widened.models[m].kind != .flow {
            let kind = widened.models[m].kind
            let name = kind == .host ? "icmp_packets_sent_1s" : "icmp_packets_received_1s"
            widened.models[m].baseline[FeatureSchema.index(name, in: kind)].max = log1p(20_000)
        }
        // A one-second ICMP burst of 3000 packets, after the same 30 s of normal traffic.
        func burst(_ model: DetectionModel) -> (found: [Anomaly], unconfirmed: UInt64) {
            var s = sim
            var detector = Detector(configuration: trained.configuration, model: model, sensor: "test")
            _ = s.runNormal(seconds: 30, into: &detector)
            let found = s.runAttack(seconds: 1, into: &detector) { s, _ in Attacks.icmpFlood(&s, 1) }.map(\.anomaly)
            return (found, detector.status.unconfirmed)
        }
        let offTheScale = burst(model)
        #expect(offTheScale.found.contains { $0.kind == .host && $0.label == .icmpFlood })
        #expect(offTheScale.found.contains { $0.kind == .destination && $0.label == .icmpFlood })
        let merelyUnusual = burst(widened)
        #expect(!merelyUnusual.found.contains { $0.kind != .flow })
        #expect(merelyUnusual.unconfirmed > offTheScale.unconfirmed)
    }
}
