import CoreMetrics
import FlowForestCore
import FlowForestIPFIX
import Foundation
import Logging
import FlowForestTestSupport
import Testing

/// FlowForest's IPFIX read by real collectors from Debian (nfdump's nfcapd,
/// pmacct's nfacctd) on loopback: every flow, packet and byte exported
/// arrives, with deltas of long flows summing to their totals.
@Suite("IPFIX export to real collectors", .serialized)
struct CollectorPeerTests {
    /// Flows with known totals: 200 short TCP flows, 50 long ones exported at
    /// an active timeout and again at their end, 20 IPv6 UDP flows, 10 pings.
    static func traffic() -> (records: [FlowRecord], expected: [String: (packets: UInt64, bytes: UInt64)]) {
        var records: [FlowRecord] = []
        var expected: [String: (packets: UInt64, bytes: UInt64)] = [:]
        func add(_ r: FlowRecord) {
            records.append(r)
            guard r.state == .ended else { return }
            let icmp = IPProtocol.isICMP(r.ipProtocol)
            let keys = [
                ("\(r.ipProtocol) \(r.sourceAddress) \(icmp ? 0 : r.sourcePort) \(r.destinationAddress) \(icmp ? 0 : r.destinationPort)", r.forward),
                ("\(r.ipProtocol) \(r.destinationAddress) \(icmp ? 0 : r.destinationPort) \(r.sourceAddress) \(icmp ? 0 : r.sourcePort)", r.reverse),
            ]
            for (key, d) in keys where d.packets > 0 {
                expected[key, default: (0, 0)].packets += d.packets
                expected[key, default: (0, 0)].bytes += d.bytes
            }
        }
        for i in 0..<200 {
            add(flow(id: UInt64(i), sport: UInt16(20000 + i), fwd: (UInt64(3 + i % 7), UInt64(200 + i * 3)), rev: (UInt64(2 + i % 5), UInt64(900 + i * 11))))
        }
        for i in 0..<50 {
            let id = UInt64(1000 + i), sport = UInt16(30000 + i)
            add(flow(id: id, src: "198.18.1.\(i + 1)", sport: sport, fwd: (1000, 1_400_000), rev: (400, 30_000), state: .interim))
            add(flow(id: id, src: "198.18.1.\(i + 1)", sport: sport, fwd: (1500 + UInt64(i), 2_100_000), rev: (700, 50_000), end: .tcpClose))
        }
        for i in 0..<20 {
            add(flow(id: UInt64(2000 + i), src: "2001:2::1", dst: "2001:2::\(i + 2)", sport: 5353, dport: 53, proto: IPProtocol.udp,
                     fwd: (4, 4 * 90), rev: (4, 4 * 250)))
        }
        for i in 0..<10 {
            add(flow(id: UInt64(3000 + i), src: "198.18.2.\(i + 1)", sport: 8, dport: 0, proto: IPProtocol.icmp, fwd: (5, 420), rev: (5, 420)))
        }
        return (records, expected)
    }

    @Test("nfcapd receives every flow, packet and byte, uniflow and biflow", arguments: [false, true])
    func nfcapd(biflow: Bool) throws {
        let dir = try PeerProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let port = try PeerProcess.freeUDPPort()
        let collector = try PeerProcess.start("/usr/bin/nfcapd", ["-b", "127.0.0.1", "-p", "\(port)", "-w", dir.path, "-B", "8388608"],
                                              log: dir.appendingPathComponent("nfcapd.log"))
        defer { collector.stop() }
        try collector.waitForUDPListener(port: port)

        let (records, expected) = Self.traffic()
        var logger = Logger(label: "ipfix-test")
        logger.logLevel = .warning
        let exporter = try IPFIXExporter(destination: ExportDestination("udp://127.0.0.1:\(port)"), biflow: biflow,
                                         metricsFactory: NOOPMetricsHandler.instance, logger: logger)
        exporter.export(records, wait: true)
        exporter.finish()
        // Everything sent has been read by nfcapd once its socket queue is empty; SIGTERM then writes the file.
        try collector.waitForEmptyReceiveQueue(port: port)
        collector.stop()

        let got = try Nfdump.totals(dir)
        #expect(got.count == expected.count, "flows: nfdump \(got.count), FlowForest \(expected.count)")
        for (key, want) in expected {
            let have = got[key]
            #expect(have?.packets == want.packets && have?.bytes == want.bytes, "\(key): nfdump \(String(describing: have)), FlowForest \(want)")
        }
    }

    /// pmacct reads no RFC 5103 reverse elements, so it gets the uniflow
    /// records (the default), one per direction.
    @Test("nfacctd receives every flow, packet and byte (uniflow records)")
    func nfacctd() throws {
        let dir = try PeerProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let collector = try Nfacctd(directory: dir)
        defer { collector.stop() }

        let (records, expected) = Self.traffic()
        var logger = Logger(label: "ipfix-test")
        logger.logLevel = .warning
        let exporter = try IPFIXExporter(destination: ExportDestination("udp://127.0.0.1:\(collector.port)"), biflow: false,
                                         metricsFactory: NOOPMetricsHandler.instance, logger: logger)
        exporter.export(records, wait: true)
        exporter.finish()
        let got = try (collector.finish(expectingPackets: expected.values.reduce(0) { $0 + $1.packets }))

        #expect(got.count == expected.count, "flows: nfacctd \(got.count), FlowForest \(expected.count)")
        for (key, want) in expected {
            let have = got[key]
            #expect(have?.packets == want.packets && have?.bytes == want.bytes, "\(key): nfacctd \(String(describing: have)), FlowForest \(want)")
        }
    }
}
