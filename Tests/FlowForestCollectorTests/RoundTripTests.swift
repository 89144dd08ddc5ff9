import CoreMetrics
import FlowForestCollector
import FlowForestCore
import FlowForestIPFIX
import Foundation
import Logging
import Testing

/// FlowForest → FlowForest over loopback UDP: the IPFIX exporter a sensor
/// runs sends to the collector source `run --collect` opens, and the
/// collector's flows equal the sensor's, long flows' interim deltas included.
@Suite("IPFIX export into the collector over UDP", .serialized)
struct RoundTripTests {
    /// Flows near now (so none is already idle at the collector): short TCP
    /// flows, long ones with an interim export, IPv6 UDP and pings.
    static func traffic(nowNs: UInt64) -> [FlowRecord] {
        func flow(_ id: UInt64, _ src: String, _ dst: String, _ sport: UInt16, _ dport: UInt16, _ proto: UInt8,
                  fwd: (UInt64, UInt64), rev: (UInt64, UInt64), state: FlowState = .ended) -> FlowRecord {
            var f = DirectionStats(), r = DirectionStats()
            (f.packets, f.bytes, f.firstSeenNs, f.lastSeenNs) = (fwd.0, fwd.1, nowNs - 3_000_000_000, nowNs - 1_000_000_000)
            (r.packets, r.bytes) = rev
            if rev.0 > 0 { (r.firstSeenNs, r.lastSeenNs) = (f.firstSeenNs + 1_000_000, f.lastSeenNs) }
            if proto == IPProtocol.tcp { f.flags = [.syn, .ack]; r.flags = [.syn, .ack] }
            if proto == IPProtocol.icmp { (f.icmpType, r.icmpType) = (8, 0) }
            return FlowRecord(id: id, sourceAddress: IPAddress(src)!, destinationAddress: IPAddress(dst)!, sourcePort: sport,
                              destinationPort: dport, ipProtocol: proto, forward: f, reverse: r, state: state,
                              endReason: state == .ended ? .idle : nil)
        }
        var out: [FlowRecord] = []
        for i in 0..<100 {
            out.append(flow(UInt64(i), "198.18.0.\(1 + i % 50)", "198.18.1.1", UInt16(30000 + i), 443, IPProtocol.tcp,
                            fwd: (UInt64(3 + i % 5), UInt64(300 + i)), rev: (UInt64(2 + i % 3), UInt64(900 + i))))
        }
        for i in 0..<20 {
            out.append(flow(UInt64(500 + i), "198.18.2.\(i + 1)", "198.18.1.2", 40000, 22, IPProtocol.tcp,
                            fwd: (1000, 100_000), rev: (800, 900_000), state: .interim))
            out.append(flow(UInt64(500 + i), "198.18.2.\(i + 1)", "198.18.1.2", 40000, 22, IPProtocol.tcp,
                            fwd: (1500, 150_000), rev: (1100, 1_300_000)))
        }
        for i in 0..<10 {
            out.append(flow(UInt64(700 + i), "2001:2::1", "2001:2::\(i + 2)", 5353, 53, IPProtocol.udp, fwd: (2, 180), rev: (2, 500)))
            out.append(flow(UInt64(800 + i), "198.18.3.\(i + 1)", "198.18.1.3", 8, 0, IPProtocol.icmp, fwd: (4, 336), rev: (4, 336)))
        }
        return out
    }

    /// Final totals per flow, keyed "proto src sport dst dport".
    static func totals(_ records: [FlowRecord]) -> [String: [UInt64]] {
        var out: [String: [UInt64]] = [:]
        for r in records where r.state == .ended {
            let key = "\(r.ipProtocol) \(r.sourceAddress) \(r.sourcePort) \(r.destinationAddress) \(r.destinationPort)"
            let t = out[key] ?? [0, 0, 0, 0]
            out[key] = [t[0] + r.forward.packets, t[1] + r.forward.bytes, t[2] + r.reverse.packets, t[3] + r.reverse.bytes]
        }
        return out
    }

    static func freeUDPPort() -> UInt16 {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        return UInt16(bigEndian: address.sin_port)
    }

    @Test("template refreshes between data carry the exporter's sequence number: no gap, no restart, however many records went before")
    func templateRefreshKeepsSequence() throws {
        var encoder = IPFIXEncoder(observationDomain: 7)
        var decoder = FlowDecoder()
        let exporter = IPAddress("198.18.0.1")!, now = Corpus.receivedNs
        var deltas = DeltaTracker()
        let records = Self.traffic(nowNs: now).compactMap { deltas.export($0) }
        var messages = [encoder.templateMessage(exportTime: 1_764_526_199)]
        // Past 1,024 records before a refresh (a template message numbered 0 read as a restart there), then more data.
        while encoder.sequence < 3000 {
            messages += encoder.dataMessages(records, exportTime: 1_764_526_199).map(\.bytes)
            messages.append(encoder.templateMessage(exportTime: 1_764_526_199))
        }
        var gaps: UInt64 = 0, resets = 0, flows = 0
        for m in messages {
            let r = decoder.decode(m, from: exporter, port: 4739, receivedNs: now)
            #expect(r.malformed.isEmpty)
            gaps += r.sequenceGap
            resets += r.sequenceReset ? 1 : 0
            flows += r.flows.count
        }
        #expect(gaps == 0 && resets == 0 && decoder.lostAfterReorder(now: now) == 0)
        #expect(UInt32(flows) == encoder.sequence)
    }

    @Test("every flow arrives with the sensor's totals, uniflow and biflow", arguments: [false, true])
    func roundTrip(biflow: Bool) async throws {
        var logger = Logger(label: "collect-test")
        logger.logLevel = .warning
        let port = Self.freeUDPPort()
        let source = try CollectorSource(endpoints: [CollectorEndpoint("udp://127.0.0.1:\(port)")], pollIntervalNs: 50_000_000,
                                         metricsFactory: NOOPMetricsHandler.instance, logger: logger)
        let now = UInt64(Date().timeIntervalSince1970 * 1e9)
        let sent = Self.traffic(nowNs: now)
        let expectedPackets = sent.filter { $0.state == .ended }.reduce(0) { $0 + $1.packets }
        let collected = Task { () throws -> [FlowRecord] in
            var records: [FlowRecord] = []
            for try await batch in source.batches() {
                // An exporter's records come after its timeouts: the detector spreads their traffic by packet times.
                #expect(batch.reporting == .delayed)
                records += batch.records
                if batch.statistics.packetsAccounted >= expectedPackets { source.stop() }
            }
            return records
        }
        let exporter = try IPFIXExporter(destination: ExportDestination("udp://127.0.0.1:\(port)"), biflow: biflow,
                                         metricsFactory: NOOPMetricsHandler.instance, logger: logger)
        exporter.export(sent, wait: true)
        exporter.finish()
        // A deadline in case a datagram is lost: stop anyway, and the comparison says what is missing.
        let deadline = Task { try await Task.sleep(for: .seconds(20)); source.stop() }
        let received = try await collected.value
        deadline.cancel()

        let want = Self.totals(sent), got = Self.totals(received)
        #expect(got.count == want.count, "flows: collector \(got.count), sensor \(want.count)")
        for (key, totals) in want {
            #expect(got[key] == totals, "\(key): collector \(got[key] ?? []), sensor \(totals)")
        }
        #expect(received.filter { $0.state == .ended }.allSatisfy { $0.interfaceName == "127.0.0.1" })
    }
}
