import FlowForestCore
import Testing

/// The kernel's distinct-peer sketch, built with the kernel's own hashing:
/// its estimate is what an overflow aggregate reports as its sources.
@Suite("Peer sketch")
struct PeerSketchTests {
    static func sketch(peers: Int, offset: UInt32 = 0) -> PeerSketch {
        var s = PeerSketch()
        for i in 0..<peers { s.insert(IPAddress(ipv4: 0xC612_0000 &+ offset &+ UInt32(i))) }
        return s
    }

    @Test("an empty sketch estimates no peers")
    func empty() {
        #expect(PeerSketch().estimate == 0)
    }

    @Test("estimates stay within 40 % from one peer to a million", arguments: [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000])
    func accuracy(peers: Int) {
        let estimate = Double(Self.sketch(peers: peers).estimate)
        // 64 registers: about ±13 % standard error; 40 % is three of them.
        #expect(abs(estimate - Double(peers)) <= max(1, 0.4 * Double(peers)), "\(peers) peers estimated as \(estimate)")
    }

    @Test("the same peers again add nothing; a union is the OR of the registers")
    func repeatsAndUnion() {
        var a = Self.sketch(peers: 5000)
        let once = a.estimate
        for i in 0..<5000 { a.insert(IPAddress(ipv4: 0xC612_0000 &+ UInt32(i))) }
        #expect(a.estimate == once)
        let b = Self.sketch(peers: 5000, offset: 5000)
        let union = PeerSketch(registers: zip(a.registers, b.registers).map { $0 | $1 })!
        #expect(abs(Double(union.estimate) - 10_000) <= 4000, "union of two 5000-peer sets estimated as \(union.estimate)")
    }

    @Test("registers from the kernel must be 64")
    func registerCount() {
        #expect(PeerSketch(registers: [1, 2, 3]) == nil)
        #expect(PeerSketch(registers: Array(repeating: 0, count: 64)) != nil)
    }
}
