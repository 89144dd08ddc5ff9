import EBPFCapture
import FlowForestCore
import FlowForestLab
import Foundation
import Logging
import PcapCapture
import Testing

/// The same traffic seen by `--mode tc`, by `--mode pcap` (libpcap live) and
/// by the file path (a tcpdump capture of the same interface, read back)
/// gives the same flows; and libpcap, when it does drop, counts every drop.
@Suite("eBPF and pcap agree (root, namespace lab)", .serialized, .enabled(if: Command.isRoot))
struct PcapAgreementTests {
    /// What both paths must agree on for one flow (times aside).
    struct Summary: Hashable, CustomStringConvertible {
        var key: String
        var forward: [UInt64]
        var reverse: [UInt64]

        init(_ r: FlowRecord) {
            key = "\(IPProtocol.name(r.ipProtocol)) \(r.sourceAddress):\(r.sourcePort) > \(r.destinationAddress):\(r.destinationPort) vlan \(r.vlan)"
            func counts(_ d: DirectionStats) -> [UInt64] {
                [d.packets, d.bytes, UInt64(d.flags.rawValue), UInt64(d.synCount), UInt64(d.synAckCount), UInt64(d.finCount),
                 UInt64(d.rstCount), UInt64(d.pshCount), UInt64(d.ackCount), UInt64(d.payloadPackets),
                 UInt64(d.minLength), UInt64(d.maxLength), d.sumSquaredLength, UInt64(d.initialWindow)]
            }
            forward = counts(r.forward)
            reverse = counts(r.reverse)
        }

        var description: String { "\(key) fwd \(forward) rev \(reverse)" }
    }

    static var logger: Logger {
        var logger = Logger(label: "pcap-agree")
        logger.logLevel = .warning
        return logger
    }

    /// A live libpcap source on the lab's sensor interface.
    static func livePcap(_ lab: SensorLab, bufferBytes: Int32 = PcapLiveSource.defaultBufferBytes) throws -> PcapLiveSource {
        // The handle is opened inside the lab namespace and stays bound there.
        try NetworkNamespace.run(lab.sensor) {
            try PcapLiveSource(interfaces: [lab.sensorInterface], pollIntervalNs: 250_000_000, bufferBytes: bufferBytes, logger: logger)
        }
    }

    @Test("tc, live pcap and a capture file give the same flow records")
    func sameRecords() async throws {
        let lab = try SensorLab()
        defer { lab.lab.teardown() }
        let pcap = FileManager.default.temporaryDirectory.appendingPathComponent("ff-agree-\(getpid()).pcap")
        defer {
            try? FileManager.default.removeItem(at: pcap)
            try? FileManager.default.removeItem(at: pcap.appendingPathExtension("log"))
        }

        let source = try lab.source(.tc)
        let live = try Self.livePcap(lab)
        let liveRecords = LiveCollector(live)
        let server = try lab.lab.spawn(in: lab.sensor, ["nc", "-l", "-k", "198.18.0.2", "5001"])
        let dump = try PacketDump(lab: lab.lab, namespace: lab.sensor, interface: lab.sensorInterface, file: pcap)
        let before = try lab.interfacePackets()
        let result = try await capture(source, in: lab) {
            try lab.lab.check(in: lab.gen, ["ping", "-c", "4", "-i", "0.05", "198.18.0.2"])
            for size in [1000, 200_000] {
                try lab.lab.check(in: lab.gen, ["sh", "-c", "head -c \(size) /dev/zero | nc -N -w 5 198.18.0.2 5001"])
            }
            try lab.trafgen(
                "{ eth(da=02:00:00:00:00:02, sa=02:00:00:00:00:01), ipv4(sa=198.18.0.1, da=198.18.0.2), udp(sp=dinc(2000, 2009), dp=7), fill(0, 100) }",
                packets: 1000, gap: "300us")  // slow enough that tcpdump drops nothing
            // Each path stops only once it holds every packet the interface counted.
            try dump.finish(expecting: { Int(try lab.interfacePackets() - before) })
        }
        try await lab.waitUntilSeen(liveRecords, since: before, by: "live pcap")
        live.stop()
        lab.lab.stop(server, signal: SIGKILL)

        var fromPcap: [UInt64: FlowRecord] = [:]
        for try await batch in PcapFileSource(path: pcap.path, logger: Self.logger).batches() {
            for r in batch.records { fromPcap[r.id] = r }
        }
        let tcFlows = Set(result.records.values.map(Summary.init))
        let fileFlows = Set(fromPcap.values.map(Summary.init))
        let liveResult = try await liveRecords.value
        let liveFlows = Set(liveResult.records.values.map(Summary.init))
        #expect(liveResult.statistics.captureDrops == 0, "live pcap dropped packets, so it cannot agree")
        #expect(tcFlows.count >= 13)  // ping, two TCP connections, ten UDP ports
        #expect(tcFlows.subtracting(fileFlows).isEmpty, "only via tc: \(tcFlows.subtracting(fileFlows))")
        #expect(fileFlows.subtracting(tcFlows).isEmpty, "only in the file: \(fileFlows.subtracting(tcFlows))")
        #expect(liveFlows == tcFlows, "live pcap differs: only live \(liveFlows.subtracting(tcFlows)), only tc \(tcFlows.subtracting(liveFlows))")
    }

    @Test("libpcap under two-core load: every packet is in a flow or counted as dropped")
    func pcapDropsCounted() async throws {
        let lab = try SensorLab()
        defer { lab.lab.teardown() }
        let before = try lab.interfacePackets()
        // A small buffer, so the two generators overrun the capture thread.
        let live = try Self.livePcap(lab, bufferBytes: 256 << 10)
        let result = try await capture(live, in: lab) {
            try lab.trafgen(Trafgen.udp(flows: 100, frameBytes: 64), packets: 400_000, cpus: 2)
        }
        let seen = try lab.interfacePackets() - before
        let s = result.statistics
        #expect(s.captureDrops > 0, "no drop happened, so none was counted; \(seen) packets seen")
        #expect(result.explainedPackets + s.captureDrops == seen,
                "\(result.explainedPackets) explained + \(s.captureDrops) dropped of \(seen)")
    }
}
