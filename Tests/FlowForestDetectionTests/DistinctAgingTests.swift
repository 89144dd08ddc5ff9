import FlowForestCore
import Foundation
import Testing
@testable import FlowForestDetection

/// Distinct counts stay true on a server that is never idle: the clients it
/// saw long ago leave its sets, so the ones it sees now count once each.
@Suite("Distinct counts over hours of a busy server")
struct DistinctAgingTests {
    @Test("after 4,096 clients and 20 busy minutes, ten clients returning every second count as about ten distinct sources")
    func oldClientsLeave() throws {
        var ledger = FlowLedger()
        var tracker = HostTracker()
        var now = TrackerLimitsTests.t0
        var id: UInt64 = 0
        func poll(_ clients: [IPAddress]) -> [EntityVector] {
            now += 1_000_000_000
            let records = clients.map { client in
                id += 1
                return TrackerLimitsTests.session(id: id, from: client, port: 443, at: now - 500_000_000)
            }
            return tracker.update(ledger.apply(records, origin: "tc", nowNs: now), flows: ledger, nowNs: now)
        }
        // An hour-old crowd: as many clients as a set remembers.
        let crowd = (0..<UInt32(WindowedStatistics.maxDistinct)).map { IPAddress(ipv4: 0xC614_0000 | $0) }  // 198.20.0.0/16
        for start in stride(from: 0, to: crowd.count, by: 512) { _ = poll(Array(crowd[start..<min(start + 512, crowd.count)])) }
        // Twenty minutes of one client a second: the server is never idle,
        // and what the crowd added has decayed to nothing (2^-12 each).
        let keeper = TrafficSimulator.ip("198.19.1.1")
        for _ in 0..<1200 { _ = poll([keeper]) }
        // Then ten clients, every second for 100 s.
        let regulars = (1...10).map { TrafficSimulator.ip("198.19.2.\($0)") }
        var sources = 0.0, other: [Double] = []
        for _ in 0..<100 {
            let vectors = poll(regulars + [keeper])
            let server = try #require(vectors.first { $0.kind == .destination && $0.address == TrackerLimitsTests.server })
            sources = TrackerLimitsTests.value("distinct_src_addrs_100s", of: server)
            other = [1, 10].map { TrackerLimitsTests.value("distinct_src_addrs_\($0)s", of: server) }
        }
        // Eleven sources, each refreshed every second, and what is left of
        // the crowd (4,096 × 2^-13) and of the keeper's first ten minutes,
        // when the full set could not hold it and each visit counted anew
        // (about 1.1): about 12.6. With the crowd never forgotten, every
        // visit of the eleven counts anew: some 870.
        #expect(sources > 11 && sources < 13, "distinct sources in the 100 s window: \(sources), \(other)")
    }
}
