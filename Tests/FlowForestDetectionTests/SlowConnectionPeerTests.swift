import FlowForestCore
import Testing
@testable import FlowForestDetection

/// Slow connections are reported in polls in which they send nothing (they
/// became slow by the clock): the anomaly still names the one host they are
/// held to, so the holder's anomaly shares the target's address and both
/// file into one incident.
@Suite("Slow connections: peer")
struct SlowConnectionPeerTests {
    @Test("the holder's slow-connection anomaly names the one host its connections are held to")
    func anomaliesNameTheirPeer() throws {
        var sim = TrafficSimulator()
        var detector = trainedDetector(&sim)
        let found = sim.runAttack(seconds: 6, into: &detector, Attacks.slowConnections).map(\.anomaly)
        let summary = found.map { "\($0.kind) \($0.label) \($0.sourceAddress?.description ?? "-") -> \($0.destinationAddress?.description ?? "-")" }
        let host = try #require(found.first { $0.kind == .host && $0.label == .slowConnections }, "\(summary)")
        let target = try #require(found.first { $0.kind == .destination && $0.label == .slowConnections }, "\(summary)")
        #expect(host.sourceAddress == Attacks.attacker && host.destinationAddress == TrafficSimulator.web, "\(summary)")
        // The target also serves normal clients: it has no one peer, but the holder's anomaly shares its address.
        #expect(target.destinationAddress == host.destinationAddress, "\(summary)")
    }
}
