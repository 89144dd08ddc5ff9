import FlowForestLab
import Testing

/// The bench's concurrent-flow scenarios: every count it accepts is made of
/// exactly that many distinct (source address, source port) pairs.
@Suite("trafgen flow shapes")
struct TrafgenShapeTests {
    /// Walks trafgen's two counters as it steps them, one per packet, over one
    /// cycle and counts the distinct pairs.
    static func distinctPairs(_ shape: (addresses: Int, ports: Int), packets: Int) -> Int {
        var seen = Set<Int>()
        for n in 0..<packets { seen.insert((n % shape.addresses) * 100_000 + n % shape.ports) }
        return seen.count
    }

    @Test("up to 60,000 flows are source ports of one address", arguments: [1, 1_000, 10_000, 60_000])
    func portsAlone(flows: Int) throws {
        let shape = try #require(Trafgen.shape(flows: flows))
        #expect(shape.addresses == 1 && shape.ports == flows)
        #expect(Trafgen.udp(flows: flows, frameBytes: 64).contains("sa=198.18.0.1,"))
    }

    @Test("100,000 and 1,000,000 flows are that many distinct pairs in one cycle", arguments: [100_000, 1_000_000, 131_072])
    func addressesAndPorts(flows: Int) throws {
        let shape = try #require(Trafgen.shape(flows: flows))
        #expect(shape.addresses * shape.ports == flows)
        #expect(shape.addresses <= 131_072 && shape.ports <= Trafgen.portFlows)
        #expect(Self.distinctPairs(shape, packets: flows) == flows)
        let config = Trafgen.udp(flows: flows, frameBytes: 64)
        #expect(config.contains("sa=dinc(3323068416, \(3_323_068_416 + shape.addresses - 1))"))
    }

    @Test("counts that cannot be split are refused", arguments: [0, -5, 60_001, 3 * 60_007, 262_144 * 3])
    func refused(flows: Int) {
        #expect(Trafgen.shape(flows: flows) == nil)
    }
}
