import FlowForestCore
import Testing
@testable import FlowForestDetection

/// Anomalies name where their flows were observed: for collected flows, the
/// exporter (address and ingress interface index), so an operator of many
/// exporters knows which part of the network saw the attack.
@Suite("Anomalies name the interface or exporter of their flows")
struct ObservationPointTests {
    static let scanExporter = "192.0.2.1%3", otherExporter = "192.0.2.2%1"

    @Test("a port scan collected through one exporter: its host and flow anomalies name that exporter")
    func scanNamesItsExporter() throws {
        var sim = TrafficSimulator()
        var detector = trainedDetector(&sim)
        var found: [Anomaly] = []
        for second in 1...3 {
            sim.normalSecond()
            Attacks.portScan(&sim, second)
            var batch = sim.tick()
            // As the collector names them: the attacker's flows through one exporter, everyone else's through another.
            for i in batch.records.indices {
                batch.records[i].interfaceName = batch.records[i].sourceAddress == Attacks.attacker ? Self.scanExporter : Self.otherExporter
            }
            found += detector.process(batch)
        }
        let scan = try #require(found.first { $0.kind == .host && $0.label == .portScan }, "found: \(found.map(\.label))")
        #expect(scan.interfaceName == Self.scanExporter)
        let byAttacker = found.filter { $0.sourceAddress == Attacks.attacker }
        #expect(byAttacker.allSatisfy { $0.interfaceName == Self.scanExporter }, "\(byAttacker.map { "\($0.kind) \($0.interfaceName ?? "nil")" })")
    }

    @Test("flows that name no observation point (a capture file) give anomalies that name none")
    func noPointNoName() throws {
        var sim = TrafficSimulator()
        var detector = trainedDetector(&sim)
        let found = sim.runAttack(seconds: 3, into: &detector, Attacks.portScan).map(\.anomaly)
        #expect(found.contains { $0.label == .portScan })
        #expect(found.allSatisfy { $0.interfaceName == nil })
    }
}
