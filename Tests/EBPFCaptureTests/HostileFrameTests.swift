import EBPFCapture
import FlowForestCore
import FlowForestLab
import FlowForestTestSupport
import Foundation
import PcapCapture
import Testing

/// The kernel program and the libpcap path parse the same frames the same
/// way, however broken: seeded hostile frames (``HostileFrames``) sent
/// through a real veth give, in every attach mode, exactly the flows and the
/// not-IP and malformed counts that ``PacketParser`` and ``FlowTable`` give
/// for the same bytes. Each packet ends in one place, and the same place.
@Suite("eBPF and PacketParser agree on hostile frames (root, namespace lab)", .serialized, .enabled(if: Command.isRoot))
struct HostileFrameTests {
    /// What the libpcap path makes of `frames`, read in order a microsecond apart.
    static func expected(_ frames: [[UInt8]]) -> (flows: [PcapAgreementTests.Summary], statistics: CaptureStatistics) {
        let parser = PacketParser(linkType: .ethernet)
        var table = FlowTable()
        for (i, frame) in frames.enumerated() {
            let result = frame.withUnsafeBytes {
                parser.parse($0, wireLength: frame.count, timestampNs: 1_000_000_000 + UInt64(i) * 1_000)
            }
            switch result {
            case .packet(let packet): table.add(packet)
            case .unparsed(.notIP): table.countNotIP()
            case .unparsed: table.countMalformed()
            }
        }
        let records = table.flush()
        return (records.map(PcapAgreementTests.Summary.init).sorted { $0.description < $1.description }, table.statistics)
    }

    /// trafgen's configuration for `frames`, each sent once, in order.
    static func trafgenConfiguration(_ frames: [[UInt8]]) -> String {
        frames.map { frame in "{ " + frame.map { "0x" + String($0, radix: 16) }.joined(separator: ", ") + " }" }
            .joined(separator: "\n")
    }

    @Test("seeded hostile frames: same flows, same not-IP and malformed counts", arguments: [EBPFAttachMode.tc, .xdp, .socket])
    func sameAsPacketParser(mode: EBPFAttachMode) async throws {
        let seed = FuzzSeed.current()
        var generator = seed.generator()
        let frames = HostileFrames.make(count: FuzzSeed.iterations(1_500), using: &generator)
        let want = Self.expected(frames)

        let lab = try SensorLab()
        defer { lab.lab.teardown() }
        let source = try lab.source(mode)
        let before = try lab.interfacePackets(rxOnly: true)
        let result = try await capture(source, in: lab, rxOnly: mode == .xdp) {
            // Paced, so no frame waits in a queue the veth could drop it from.
            try lab.trafgen(Self.trafgenConfiguration(frames), packets: frames.count, gap: "20us")
        }
        let received = try lab.interfacePackets(rxOnly: true) - before
        try #require(received == UInt64(frames.count), "the veth delivered \(received) of \(frames.count) frames, \(seed)")

        let got = result.records.values.map(PcapAgreementTests.Summary.init).sorted { $0.description < $1.description }
        let s = result.statistics
        #expect(s.packetsSeen == UInt64(frames.count), "\(seed)")
        #expect(s.notIP == want.statistics.notIP, "not IP: \(s.notIP) in \(mode), \(want.statistics.notIP) parsed; \(seed)")
        #expect(s.malformed == want.statistics.malformed, "malformed: \(s.malformed) in \(mode), \(want.statistics.malformed) parsed; \(seed)")
        #expect(s.packetsAggregated == 0 && s.tableFull == 0, "\(s)")
        let onlyKernel = Set(got).subtracting(want.flows).map(\.description).sorted()
        let onlyParser = Set(want.flows).subtracting(got).map(\.description).sorted()
        #expect(onlyKernel.isEmpty && onlyParser.isEmpty && got.count == want.flows.count,
                "\(got.count) flows in \(mode), \(want.flows.count) parsed; only in \(mode) (\(onlyKernel.count)): \(onlyKernel.prefix(8)); only parsed (\(onlyParser.count)): \(onlyParser.prefix(8)); \(seed)")
        #expect(want.flows.count > 100, "the frames should make many flows, not \(want.flows.count)")
        #expect(want.statistics.malformed > 50 && want.statistics.notIP > 5, "the frames should break parsers: \(want.statistics)")
    }
}
