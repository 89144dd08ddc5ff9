import EBPFCapture
import FlowForestCore
import FlowForestLab
import FlowForestPipeline
import Foundation
import Testing

/// A forged-source SYN flood through a gateway whose sensor has a small
/// flow map: the flood is folded into one aggregate of its victim, the
/// normal clients' flows stay exact, every packet is accounted within two
/// polls after the traffic stops, and the flood is reported on its victim.
@Suite("eBPF under a forged flood (root, namespace lab)", .serialized, .enabled(if: Command.isRoot))
struct FloodTests {
    static let floodPackets = 100_000
    static let mapEntries = 1024
    static let pollInterval = 0.5
    static let pings = 150

    @Test("a forged SYN flood is folded, detected and exactly accounted; normal flows stay exact")
    func forgedSynFlood() async throws {
        let lab = try GatewayLab()
        defer { lab.lab.teardown() }
        // The victim's service, and a client connection that lives through the flood.
        _ = try lab.lab.spawn(in: lab.server, ["python3", "-c", FloodTests.sink(lab.serverAddress)])
        try Wait.blockingUntil("the lab's TCP sink to listen", timeout: 15, every: 0.1) {
            (try? lab.lab.run(in: lab.client, ["nc", "-z", "-w", "1", lab.serverAddress, "9000"], timeout: 3))?.status == 0
        }
        let before = try lab.gatewayPackets()
        let source = try lab.source(.tc, mapEntries: Self.mapEntries, pollInterval: Self.pollInterval)
        let collector = LiveCollector(source)
        let rssBefore = FloodTests.residentBytes()
        var peakRSS = rssBefore
        var floodCrossed: UInt64 = 0
        let pingOutput = FileManager.default.temporaryDirectory.appendingPathComponent("ff-flood-ping-\(getpid()).txt")
        defer { try? FileManager.default.removeItem(at: pingOutput) }
        do {
            let ping = try lab.lab.spawn(in: lab.client, ["ping", "-c", "\(Self.pings)", "-i", "0.02", "-q", lab.serverAddress],
                                         stdout: pingOutput)
            let talker = try lab.lab.spawn(in: lab.client, ["python3", "-c", FloodTests.talker(lab.serverAddress)])
            try await collector.wait(for: "the normal client flows to be in the map before the flood") { r in
                r.records.values.contains { $0.ipProtocol == IPProtocol.icmp }
                    && r.records.values.contains { $0.destinationPort == 9000 && $0.ipProtocol == IPProtocol.tcp }
            }
            let floodBefore = try lab.lab.counter("rx_packets", interface: lab.clientSide, in: lab.gateway)
            try await onThread {
                // Forged sources, SYN to the victim's port 80, bounded in packets and
                // seconds (hping3 waits for replies after its count, so it is cut off).
                _ = try lab.lab.run(in: lab.client, ["timeout", "-k", "2", "30", "hping3", "-q", "-S", "-p", "80", "--rand-source",
                                                     "-i", "u10", "-c", "\(Self.floodPackets)", lab.serverAddress], timeout: 40)
            }
            floodCrossed = try lab.lab.counter("rx_packets", interface: lab.clientSide, in: lab.gateway) - floodBefore
            peakRSS = max(peakRSS, FloodTests.residentBytes())
            #expect(lab.lab.wait(ping, timeout: 30) == 0, "every ping answered")
            #expect(lab.lab.wait(talker, timeout: 30) == 0, "the client connection completed")
            try await FloodTests.waitForExactAccounting(lab, collector, since: before)
            peakRSS = max(peakRSS, FloodTests.residentBytes())
        } catch {
            source.stop()
            _ = try? await collector.value
            throw error
        }
        source.stop()
        let result = try await collector.value
        let seen = try lab.gatewayPackets() - before
        let s = result.statistics
        #expect(s.packetsSeen == seen)
        #expect(result.explainedPackets == seen)
        #expect(floodCrossed >= UInt64(Self.floodPackets) / 2, "the flood reached the gateway: \(floodCrossed) packets")
        #expect(s.packetsAggregated >= floodCrossed / 2, "most of the flood folded: \(s)")
        // User space never held a flow per forged source: at most a map's
        // worth open at once, a small share of the flood started at all.
        let peakOpen = collector.batches.map(\.activeFlows).max() ?? 0
        #expect(peakOpen <= Self.mapEntries, "open flows peaked at \(peakOpen)")
        #expect(s.flowsStarted < floodCrossed / 4, "flows started: \(s.flowsStarted) of \(floodCrossed) packets")
        #expect(peakRSS &- rssBefore < 64 << 20, "test process grew \((peakRSS &- rssBefore) >> 20) MiB")

        // The normal flows were admitted before the flood and nothing of
        // theirs was folded: every echo the gateway passed is in the one ping
        // flow (a packet a loaded veth drops before or after the gateway is
        // the only gap between it and ping's own count).
        let received = FloodTests.pingsReceived(pingOutput)
        // The ping is the ICMP flow between client and server; the gateway's
        // own ICMP errors (no route back to forged sources) are flows of their own.
        let pings = result.records.values.filter {
            $0.ipProtocol == IPProtocol.icmp && $0.sourceAddress == IPAddress(lab.clientAddress)
                && $0.destinationAddress == IPAddress(lab.serverAddress)
        }
        let ping = try #require(pings.first, "a ping flow")
        #expect(pings.count == 1)
        #expect(ping.forward.packets <= UInt64(Self.pings) && ping.forward.packets == ping.reverse.packets
                && ping.reverse.packets >= received && received >= UInt64(Self.pings) * 9 / 10,
                "ping flow \(ping.forward.packets)/\(ping.reverse.packets), ping received \(received)")
        let talk = result.records.values.filter { $0.destinationPort == 9000 && $0.ipProtocol == IPProtocol.tcp }
        #expect(talk.count == 1 && talk.first?.forward.synCount == 1 && talk.first?.forward.finCount == 1
                && talk.first?.reverse.finCount == 1, "the client connection is one flow from SYN to FIN: \(talk)")
        let clientSide = [try #require(IPAddress(lab.clientAddress)), try #require(IPAddress(lab.serverAddress))]
        let foldedNormal = collector.batches.flatMap(\.aggregates).filter {
            ($0.key.ipProtocol == IPProtocol.icmp && clientSide.contains($0.key.address)) || $0.key.port == 9000
        }
        #expect(foldedNormal.isEmpty, "normal traffic folded: \(foldedNormal)")

        let victim = try #require(IPAddress(lab.serverAddress))
        var rule = OverflowFloodRule()
        let reports = collector.batches.flatMap { rule.evaluate($0.aggregates, nowNs: $0.timeNs) }
        let flood = reports.filter { $0.destinationAddress == victim && $0.destinationPort == 80 }
        #expect(flood.count == 1 && flood.first?.label == .synFlood, "one SYN flood on the victim: \(reports)")
        // Random forged sources hardly repeat: the estimate is close to the SYNs folded.
        let folded = collector.batches.flatMap(\.aggregates)
            .filter { $0.key.address == victim && $0.key.port == 80 && $0.key.flowClass == .tcpSyn }
            .reduce(UInt64(0)) { $0 + $1.packets }
        let estimate = collector.batches.flatMap(\.aggregates)
            .last { $0.key.address == victim && $0.key.port == 80 && $0.key.flowClass == .tcpSyn }?.peerEstimate ?? 0
        #expect(folded > 0 && abs(Double(estimate) - Double(folded)) <= 0.4 * Double(folded),
                "\(folded) forged SYNs folded, sources estimated at \(estimate)")
    }

    /// Frames to a MAC that is not the sensor's, from random IPv4 sources to
    /// 198.18.0.2 (the lab's sensor address), with the bytes after the
    /// source address given.
    static func forged(protocol proto: Int, fragment: Int = 0, ipLength: Int, rest: String) -> String {
        "{ 0x02,0,0,0,0,0x02, 0x02,0,0,0,0,0x01, const16(0x0800), 0x45,0, const16(\(ipLength)), drnd(2), const16(\(fragment)), "
            + "64,\(proto),0,0, drnd(4), 198,18,0,2, \(rest) }"
    }

    /// Forged echo replies (type 0) and later ICMP fragments (offset 512,
    /// no ICMP header) from random sources to one victim.
    static let echoReplies = forged(protocol: 1, ipLength: 36, rest: "0,0, 0,0, drnd(4), fill(0x47, 8)")
    static let laterICMPFragments = forged(protocol: 1, fragment: 0x2000 | 64, ipLength: 46, rest: "fill(0x43, 26)")

    @Test("forged replies and later ICMP fragments from many sources fold under their victim and are reported there")
    func repliesFoldUnderVictim() async throws {
        let lab = try SensorLab()
        defer { lab.lab.teardown() }
        let before = try lab.interfacePackets()
        let (result, batches) = try await Self.flood(lab) {
            try lab.trafgen(Self.echoReplies, packets: 20_000, cpus: 1)
            try lab.trafgen(Self.laterICMPFragments, packets: 20_000, cpus: 1)
        }
        let seen = try lab.interfacePackets() - before
        let s = result.statistics
        #expect(result.explainedPackets == seen && s.tableFull == 0, "\(s)")
        let victim = try #require(IPAddress("198.18.0.2"))
        let aggregates = batches.flatMap(\.aggregates)
        // Replies keyed by their sender stop at the data plane's share of
        // the map; the rest fold under the victim.
        let senderKeyed = Set(aggregates.filter { $0.key.side == .source }.map(\.key))
        #expect(senderKeyed.count <= 2048, "\(senderKeyed.count) sender-keyed aggregates")
        // The victim's "port" is the echo reply's counterpart type, 8.
        let replies = aggregates.filter { $0.key == .init(address: victim, port: 8, ipProtocol: 1, vlan: 0, flowClass: .icmpReply, side: .destination) }
        #expect(replies.reduce(0) { $0 + $1.packets } >= 10_000, "echo replies folded under the victim: \(replies)")
        // A later fragment has no ICMP type: a request-class aggregate of the victim, never a reply.
        let fragments = aggregates.filter { $0.key == .init(address: victim, port: 0, ipProtocol: 1, vlan: 0, flowClass: .icmp, side: .destination) }
        #expect(fragments.reduce(0) { $0 + $1.packets } >= 15_000, "later fragments folded under the victim: \(fragments)")
        var rule = OverflowFloodRule()
        let reports = batches.flatMap { rule.evaluate($0.aggregates, nowNs: $0.timeNs) }
        #expect(reports.contains { $0.destinationAddress == victim && $0.label == .icmpFlood }, "\(reports)")
    }

    /// Forged UDP datagrams from random sources and ports to random ports of the victim.
    static let randomPorts = forged(protocol: 17, ipLength: 48, rest: "drnd(2), drnd(2), const16(28), 0,0, fill(0x55, 20)")

    @Test("a forged flood over random ports folds into the victim's any-port aggregate past half the aggregate map, and is one flood there")
    func randomPortsFoldUnderVictim() async throws {
        let lab = try SensorLab()
        defer { lab.lab.teardown() }
        let before = try lab.interfacePackets()
        let (result, batches) = try await Self.flood(lab) {
            try lab.trafgen(Self.randomPorts, packets: 60_000, cpus: 1)
        }
        let seen = try lab.interfacePackets() - before
        let s = result.statistics
        // About 40,000 distinct ports: keyed by port they would fill the
        // 8,192-entry aggregate map and send the rest through the ring buffer.
        #expect(result.explainedPackets == seen && s.tableFull == 0 && s.ringBufferPackets == 0, "\(s)")
        let victim = try #require(IPAddress("198.18.0.2"))
        let aggregates = batches.flatMap(\.aggregates).filter { $0.key.address == victim && $0.key.flowClass == .udp }
        let portKeyed = Set(aggregates.filter { !$0.key.anyPort }.map(\.key.port))
        #expect(portKeyed.count <= 4096 + 16, "\(portKeyed.count) port-keyed aggregates of the victim")
        let folded = aggregates.filter(\.key.anyPort).reduce(UInt64(0)) { $0 + $1.packets }
        #expect(folded >= 20_000, "\(folded) packets in the victim's any-port aggregate")
        var rule = OverflowFloodRule()
        let reports = batches.flatMap { rule.evaluate($0.aggregates, nowNs: $0.timeNs) }
        let floods = reports.filter { $0.destinationAddress == victim && $0.label == .udpFlood }
        #expect(floods.count == 1 && floods.first?.destinationPort == nil, "\(reports)")
    }

    @Test("past the admission limit the map holds no more forged flows, however inserts and drains interleave")
    func admissionIsExact() async throws {
        let lab = try SensorLab()
        defer { lab.lab.teardown() }
        let before = try lab.interfacePackets()
        // A map large enough that a poll's walk takes a while, filled over
        // several polls: inserts made while the drainer walks must still count.
        let mapEntries = 65_536
        let (result, batches) = try await Self.flood(lab, mapEntries: mapEntries) {
            try lab.trafgen(Trafgen.churn(frameBytes: 64), packets: 100_000, cpus: 1, gap: "10us")
        }
        // 7/8 of the map, and a few more inserts from CPUs that passed the check at once.
        let admit = mapEntries * 7 / 8
        let peak = batches.map(\.activeFlows).max() ?? 0
        #expect(peak >= admit && peak <= admit + 16, "the map held up to \(peak) forged flows; the limit is \(admit)")
        // The map's own count (flowforest_map_entries), read after each poll's walk, agrees.
        let counted = batches.compactMap(\.mapEntries).max() ?? 0
        #expect(counted >= admit && counted <= admit + 16, "the map counted up to \(counted) entries; the limit is \(admit)")
        #expect(result.statistics.ringBufferPackets == 0 && result.statistics.tableFull == 0, "\(result.statistics)")
        #expect(result.explainedPackets == (try lab.interfacePackets()) - before)
    }

    @Test("a table kept full by packets that look answered hands out no fresh slot past its size")
    func fullTableSlotsBounded() async throws {
        let lab = try SensorLab()
        defer { lab.lab.teardown() }
        let before = try lab.interfacePackets()
        // Bare ACKs pass admission (only answered connections send them), so
        // each new tuple tries an insert into the full 64-slot table; were
        // every try to take a fresh slot number, the count would pass the
        // table by thousands here, and wrap onto slots in use in a long flood.
        let acks = "{ eth(da=02:00:00:00:00:02, sa=02:00:00:00:00:01), ipv4(sa=198.18.0.1, da=198.18.0.2), "
            + "tcp(sp=drnd(), dp=80, ack), fill(0, 6) }"
        let source = try lab.source(.tc, mapEntries: 64, pollInterval: 0.25)
        let collector = LiveCollector(source)
        let result = try await collector.stop(source) {
            try await onThread { _ = try lab.trafgen(acks, packets: 20_000) }
            try await lab.waitUntilSeen(collector, since: before, by: "tc")
        }
        let used = source.kernelCounters.slotsUsed
        #expect(used >= 64 && used <= 64 + UInt64(ProcessInfo.processInfo.activeProcessorCount), "\(used) fresh slots handed out")
        #expect(result.statistics.packetsAggregated > 0, "\(result.statistics)")
        #expect(result.explainedPackets == (try lab.interfacePackets()) - before)
    }

    /// Runs `traffic` at a tc sensor with a small map in `lab` until every
    /// packet its interface counted is reported; returns what came and every batch.
    static func flood(_ lab: SensorLab, mapEntries: Int = mapEntries,
                      traffic: @escaping @Sendable () throws -> Void) async throws -> (CaptureResult, [FlowBatch]) {
        let source = try lab.source(.tc, mapEntries: mapEntries, pollInterval: 0.25)
        let collector = LiveCollector(source)
        let before = try lab.interfacePackets()
        do {
            try await onThread(traffic)
            try await lab.waitUntilSeen(collector, since: before, by: "tc")
        } catch {
            source.stop()
            _ = try? await collector.value
            throw error
        }
        source.stop()
        return (try await collector.value, collector.batches)
    }

    /// Waits until every packet the gateway's interfaces counted is in a
    /// flow, an aggregate or a counter: at most two polls (plus the
    /// drain's own time) after the traffic stopped.
    static func waitForExactAccounting(_ lab: GatewayLab, _ collector: LiveCollector, since before: UInt64) async throws {
        var seen: UInt64 = 0
        try await Wait.until("flows + aggregates + counters to equal the interfaces' packets within two polls",
                             timeout: 2 * pollInterval + 0.5,
                             detail: { "\(collector.snapshot.explainedPackets) explained, \(collector.snapshot.statistics.packetsSeen) seen of \(seen)" }) {
            seen = try lab.gatewayPackets() - before
            let r = collector.snapshot
            return r.statistics.packetsSeen == seen && r.explainedPackets == seen
        }
    }

    /// "N received" from ping's summary.
    static func pingsReceived(_ output: URL) -> UInt64 {
        let text = (try? String(contentsOf: output, encoding: .utf8)) ?? ""
        guard let line = text.split(separator: "\n").first(where: { $0.contains("received") }) else { return 0 }
        let words = line.split(separator: " ")
        guard let i = words.firstIndex(where: { $0.hasPrefix("received") }), i > 0 else { return 0 }
        return UInt64(words[i - 1]) ?? 0
    }

    /// Resident memory of this process, from /proc/self/statm.
    static func residentBytes() -> UInt64 {
        let text = (try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8)) ?? ""
        let pages = text.split(separator: " ").dropFirst().first.flatMap { UInt64($0) } ?? 0
        return pages * UInt64(sysconf(Int32(_SC_PAGESIZE)))
    }

    static func sink(_ address: String) -> String {
        """
        import socket, threading
        l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); l.bind(("\(address)", 9000)); l.listen(16)
        def serve(c):
            while c.recv(65536): pass
            c.close()
        while True:
            c, _ = l.accept(); threading.Thread(target=serve, args=(c,), daemon=True).start()
        """
    }

    /// One connection sending a message every 20 ms for about 4 s.
    static func talker(_ address: String) -> String {
        """
        import socket, time
        s = socket.create_connection(("\(address)", 9000), timeout=5)
        for i in range(200):
            s.sendall(b"x" * 100); time.sleep(0.02)
        s.shutdown(socket.SHUT_WR)
        while s.recv(65536): pass
        s.close()
        """
    }
}
