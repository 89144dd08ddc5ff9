import EBPFCapture
import FlowForestCore
import FlowForestLab
import Foundation
import Logging
import PcapCapture
import Testing

/// The same traffic seen by `--mode tc` and by libpcap (a tcpdump capture of
/// the same interface read back by the pcap path) gives the same flows.
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

    @Test("tc and pcap give the same flow records")
    func sameRecords() async throws {
        let lab = try SensorLab()
        defer { lab.lab.teardown() }
        let pcap = FileManager.default.temporaryDirectory.appendingPathComponent("ff-agree-\(getpid()).pcap")
        defer { try? FileManager.default.removeItem(at: pcap) }

        let source = try lab.source(.tc)
        let server = try lab.lab.spawn(in: lab.sensor, ["nc", "-l", "-k", "198.18.0.2", "5001"])
        let result = try await capture(source, settle: 1.5) {
            let dump = try lab.lab.spawn(in: lab.sensor, [
                // A 32 MiB buffer, so a busy machine does not make tcpdump drop.
                "tcpdump", "-i", lab.sensorInterface, "-w", pcap.path, "-s", "0", "-U", "-B", "32768",
            ])
            Thread.sleep(forTimeInterval: 1.0)
            try lab.lab.check(in: lab.gen, ["ping", "-c", "4", "-i", "0.05", "198.18.0.2"])
            for size in [1000, 200_000] {
                try lab.lab.check(in: lab.gen, ["sh", "-c", "head -c \(size) /dev/zero | nc -N -w 5 198.18.0.2 5001"])
            }
            try lab.trafgen(
                "{ eth(da=02:00:00:00:00:02, sa=02:00:00:00:00:01), ipv4(sa=198.18.0.1, da=198.18.0.2), udp(sp=dinc(2000, 2009), dp=7), fill(0, 100) }",
                packets: 1000, gap: "300us")  // slow enough that tcpdump drops nothing
            // Closing handshakes end within the tc source's TCP-close timeout.
            Thread.sleep(forTimeInterval: 0.5)
            lab.lab.stop(dump, signal: SIGINT)
        }
        lab.lab.stop(server, signal: SIGKILL)

        var logger = Logger(label: "pcap-agree")
        logger.logLevel = .warning
        var fromPcap: [UInt64: FlowRecord] = [:]
        for try await batch in PcapFileSource(path: pcap.path, logger: logger).batches() {
            for r in batch.records { fromPcap[r.id] = r }
        }
        let tcFlows = Set(result.records.values.map(Summary.init))
        let pcapFlows = Set(fromPcap.values.map(Summary.init))
        #expect(tcFlows.count >= 13)  // ping, two TCP connections, ten UDP ports
        #expect(tcFlows.subtracting(pcapFlows).isEmpty, "only via tc: \(tcFlows.subtracting(pcapFlows))")
        #expect(pcapFlows.subtracting(tcFlows).isEmpty, "only via pcap: \(pcapFlows.subtracting(tcFlows))")
    }
}
