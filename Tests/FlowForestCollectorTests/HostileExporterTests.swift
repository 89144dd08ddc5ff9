import FlowForestCollector
import FlowForestCore
import Logging
import Metrics
import MetricsTestKit
import Testing

/// What an exporter (or whoever spoofs one) controls, and what the collector
/// must still get right: counts, sequence numbers, which templates a message
/// reads, the exporter's clock, the order records arrive in.
@Suite("Hostile and careless exporters")
struct HostileExporterTests {
    let exporter = IPAddress("198.18.0.1")!
    let now = Corpus.receivedNs

    /// A decoder whose domains count as silent after 10 s, with `limits` set as the test needs.
    static func decoder(_ configure: (inout CollectorLimits) -> Void) -> FlowDecoder {
        var limits = CollectorLimits()
        limits.domainIdleNs = 10_000_000_000
        configure(&limits)
        return FlowDecoder(limits: limits)
    }

    static func dataSet(packets: UInt64) -> (UInt16, [UInt8]) {
        (300, Bytes.record(0xC612_0001, 0xC612_0100, packets: packets, bytes: packets))
    }

    @Test("a record claiming more than 2^48 packets or bytes, sampling applied, is refused and counted; 2^48 is taken")
    func implausibleCounts() {
        var d = FlowDecoder()
        let top = d.decode(Bytes.ipfix(sets: [DecoderTests.templateSet, Self.dataSet(packets: 1 << 48)]), from: exporter, receivedNs: now)
        #expect(top.malformed.isEmpty && top.flows.map(\.packets) == [1 << 48])
        let huge = d.decode(Bytes.ipfix(sequence: 1, sets: [Self.dataSet(packets: .max)]), from: exporter, receivedNs: now)
        #expect(huge.malformed == [.implausibleCount] && huge.flows.isEmpty && huge.records == 1)
        // 2^40 packets are plausible until an options record says each stands for 1,024.
        var options = Bytes()
        options.u16(400); options.u16(2); options.u16(1); options.u16(149); options.u16(4); options.u16(34); options.u16(4)
        var value = Bytes(); value.u32(1); value.u32(1024)
        let sampled = d.decode(Bytes.ipfix(sequence: 2, sets: [(3, options.bytes), (400, value.bytes), Self.dataSet(packets: 1 << 40)]),
                               from: exporter, receivedNs: now)
        #expect(sampled.malformed == [.implausibleCount] && sampled.flows.isEmpty)
    }

    @Test("a record whose source and destination are of two address families is a bad record")
    func mixedFamilies() {
        var d = FlowDecoder()
        // sourceIPv4Address (8), destinationIPv6Address (28), packets (2).
        var record = Bytes()
        record.u32(0xC612_0001)
        record.bytes += [0x20, 0x01, 0x0D, 0xB8] + [UInt8](repeating: 0, count: 11) + [1]
        record.u64(5)
        let r = d.decode(Bytes.ipfix(sets: [(2, Bytes.template(301, [(8, 4), (28, 16), (2, 8)])), (301, record.bytes)]),
                         from: exporter, receivedNs: now)
        #expect(r.malformed == [.badRecord] && r.flows.isEmpty)
    }

    @Test("counts merged past 2^64 stop at the top; a pipeline fed them does not trap")
    func mergedCountsSaturate() {
        var table = FlowTable()
        let half = UInt64(1) << 63 + 1
        for _ in 0..<3 {
            table.add(UniflowSummary(firstSeenNs: now, lastSeenNs: now, source: exporter, destination: IPAddress("198.18.0.2")!,
                                     sourcePort: 40000, destinationPort: 53, ipProtocol: 17, packets: half, bytes: half), arrivedNs: now)
        }
        let record = table.advance(to: now).first
        #expect(record?.forward.packets == .max && record?.forward.bytes == .max)
        #expect(record?.packets == .max && record.map { FlowDelta($0, since: nil).packets } == .max)
        #expect(table.statistics.packetsAccounted == .max)
    }

    @Test("a repeated datagram is counted once (its records as duplicates); a late one and a restarted exporter's are taken")
    func duplicates() throws {
        var d = FlowDecoder()
        let first = Bytes.ipfix(sequence: 0, sets: [DecoderTests.templateSet, DecoderTests.dataSet(3)])
        #expect(d.decode(first, from: exporter, receivedNs: now).flows.count == 3)
        let again = d.decode(first, from: exporter, receivedNs: now)
        #expect(again.flows.isEmpty && again.duplicateRecords == 3 && again.records == 3)
        // 3...4 go missing for a moment: 5 arrives first, then 3 (late, not a copy), then 3 again (a copy).
        #expect(d.decode(Bytes.ipfix(sequence: 5, sets: [DecoderTests.dataSet(1)]), from: exporter, receivedNs: now).sequenceGap == 0)
        let late = Bytes.ipfix(sequence: 3, sets: [DecoderTests.dataSet(2)])
        let lateResult = d.decode(late, from: exporter, receivedNs: now)
        #expect(lateResult.flows.count == 2 && lateResult.duplicateRecords == 0 && lateResult.sequenceGap == 0)
        #expect(d.decode(late, from: exporter, receivedNs: now).duplicateRecords == 2)
        #expect(d.lostAfterReorder(now: now) == 0, "the late datagram filled the gap: nothing was lost")
        // The exporter restarts: numbers from 0 again, with other contents. Not copies.
        let restarted = Bytes.ipfix(sequence: 0, exportTime: 1_764_526_299, sets: [DecoderTests.templateSet, DecoderTests.dataSet(3)])
        let r = d.decode(restarted, from: exporter, receivedNs: now)
        #expect(r.flows.count == 3 && r.duplicateRecords == 0)
        // NetFlow v5, the same datagram three times: its flows once.
        var v5 = FlowDecoder()
        let bytes = try Corpus.load("nfreplay-v5-000")
        let once = v5.decode(bytes, from: exporter, receivedNs: now)
        let copies = (0..<2).map { _ in v5.decode(bytes, from: exporter, receivedNs: now) }
        #expect(!once.flows.isEmpty && copies.allSatisfy { $0.flows.isEmpty && $0.duplicateRecords == once.records })
    }

    @Test("a sequence number jumping 2^24 or more is a restart, not millions of lost records")
    func implausibleJump() {
        var d = FlowDecoder()
        _ = d.decode(Bytes.ipfix(sequence: 0, sets: [DecoderTests.templateSet, DecoderTests.dataSet(3)]), from: exporter, receivedNs: now)
        let jump = d.decode(Bytes.ipfix(sequence: 3 + (1 << 24), sets: [DecoderTests.dataSet(1)]), from: exporter, receivedNs: now)
        #expect(jump.sequenceGap == 0 && jump.sequenceReset)
        let next = d.decode(Bytes.ipfix(sequence: 5 + (1 << 24), sets: [DecoderTests.dataSet(1)]), from: exporter, receivedNs: now)
        #expect(!next.sequenceReset && d.lostAfterReorder(now: now) == 1)
    }

    @Test("a datagram reordered behind later ones fills its gap, even one carrying more than a thousand records")
    func reorderedFillsGap() {
        var d = FlowDecoder()
        _ = d.decode(Bytes.ipfix(sequence: 0, sets: [DecoderTests.templateSet, DecoderTests.dataSet(3)]), from: exporter, receivedNs: now)
        // 3 (1,200 records) is overtaken by 1203 and 1205; 1204 never comes.
        _ = d.decode(Bytes.ipfix(sequence: 1203, sets: [DecoderTests.dataSet(1)]), from: exporter, receivedNs: now)
        _ = d.decode(Bytes.ipfix(sequence: 1205, sets: [DecoderTests.dataSet(1)]), from: exporter, receivedNs: now)
        let late = d.decode(Bytes.ipfix(sequence: 3, sets: [DecoderTests.dataSet(1200)]), from: exporter, receivedNs: now + 1)
        #expect(!late.sequenceReset && late.sequenceGap == 0 && late.flows.count == 1200)
        #expect(d.lostAfterReorder(now: now) == 1, "only 1204 is lost")
        // The expectation stayed with the newest: 1206 follows without a gap.
        #expect(d.decode(Bytes.ipfix(sequence: 1206, sets: [DecoderTests.dataSet(1)]), from: exporter, receivedNs: now).sequenceGap == 0)
        #expect(d.lostAfterReorder(now: now) == 0)
    }

    @Test("gaps held open are bounded: past 16 the oldest counts at once; a restart counts those still open")
    func heldGapsBounded() {
        var d = FlowDecoder()
        _ = d.decode(Bytes.ipfix(sequence: 5000, sets: [DecoderTests.templateSet, DecoderTests.dataSet(1)]), from: exporter, receivedNs: now)
        var confirmed: UInt64 = 0
        // Every other record missing: 17 gaps of one.
        for i in 1...17 {
            confirmed += d.decode(Bytes.ipfix(sequence: UInt32(5000 + 2 * i), sets: [DecoderTests.dataSet(1)]), from: exporter,
                                  receivedNs: now).sequenceGap
        }
        #expect(confirmed == 1, "the first gap, pushed out by the 17th")
        let restart = d.decode(Bytes.ipfix(sequence: 0, exportTime: 1_764_526_299, sets: [DecoderTests.dataSet(2)]), from: exporter, receivedNs: now)
        #expect(restart.sequenceReset && restart.sequenceGap == 16 && restart.sequenceGaps == 16)
        #expect(d.lostAfterReorder(now: now) == 0)
    }

    @Test("a late datagram that splits a gap with 16 held confirms the oldest at once; one with no records splits none")
    func splitKeepsBound() {
        var d = FlowDecoder()
        _ = d.decode(Bytes.ipfix(sequence: 5000, sets: [DecoderTests.templateSet, DecoderTests.dataSet(1)]), from: exporter, receivedNs: now)
        // Every fourth record arrives: 16 gaps of three.
        for i in 1...16 {
            #expect(d.decode(Bytes.ipfix(sequence: UInt32(5000 + 4 * i), sets: [DecoderTests.dataSet(1)]), from: exporter,
                             receivedNs: now).sequenceGap == 0)
        }
        // A message of templates alone, late, inside the first gap: it carries no record and fills nothing.
        #expect(d.decode(Bytes.ipfix(sequence: 5002, sets: [DecoderTests.templateSet]), from: exporter, receivedNs: now).sequenceGap == 0)
        // 5002 with a record: the first gap splits in two, 17 held, so the oldest part (5001) counts now.
        let late = d.decode(Bytes.ipfix(sequence: 5002, sets: [DecoderTests.dataSet(1)]), from: exporter, receivedNs: now)
        #expect(late.sequenceGap == 1 && late.sequenceGaps == 1 && late.flows.count == 1)
        #expect(d.lostAfterReorder(now: now) == 1 + 15 * 3, "5003 and the 15 other gaps")
    }

    @Test("one host exporting NetFlow v5 and v9 with engine 0 and source id 0 keeps two sequences")
    func v5AndV9OneHost() throws {
        var d = FlowDecoder()
        let v5 = try Corpus.load("nfreplay-v5-000")
        let v5Count = UInt32(v5[2]) << 8 | UInt32(v5[3])
        var gaps: UInt64 = 0, resets = 0
        for i in 0..<4 {
            // v5 numbers flows, v9 datagrams; engine 0 and source id 0 are both domain 0.
            var copy = v5
            let seq = UInt32(i) * v5Count
            for k in 0..<4 { copy[16 + k] = UInt8(truncatingIfNeeded: seq >> UInt32(24 - 8 * k)) }
            copy[20] = 0  // engine type
            copy[21] = 0  // engine id
            for r in [d.decode(copy, from: exporter, receivedNs: now),
                      d.decode(Bytes.v9(sequence: 100_000 + UInt32(i), sets: []), from: exporter, receivedNs: now)] {
                gaps += r.sequenceGap
                resets += r.sequenceReset ? 1 : 0
            }
        }
        #expect(gaps == 0 && resets == 0 && d.lostAfterReorder(now: now) == 0)
    }

    @Test("a domain last heard before the clock stepped back a long way counts as silent: its place is not held until the clock catches up")
    func domainHeardBeforeStepBack() {
        var d = Self.decoder { $0.maxDomainsPerExporter = 1 }
        let later = now + 3_600_000_000_000
        // Heard on a clock an hour ahead (before NTP stepped it back), then never again.
        _ = d.decode(Bytes.ipfix(domain: 1, sets: [DecoderTests.templateSet]), from: exporter, receivedNs: later)
        let newcomer = d.decode(Bytes.ipfix(domain: 2, sets: [DecoderTests.templateSet]), from: exporter, receivedNs: now)
        #expect(newcomer.domainsReplaced == 1 && !newcomer.malformed.contains(.tooManyDomains))
        // A domain still sending is heard on the new clock and keeps its place.
        _ = d.decode(Bytes.ipfix(domain: 2, sets: [DecoderTests.templateSet]), from: exporter, receivedNs: now + 1)
        let third = d.decode(Bytes.ipfix(domain: 3, sets: [DecoderTests.templateSet]), from: exporter, receivedNs: now + 2)
        #expect(third.malformed.contains(.tooManyDomains) && third.domainsReplaced == 0)
    }

    @Test("data held for a template is counted as dropped when its silent domain gives its place to a new one")
    func heldDroppedWithDomain() {
        var d = Self.decoder { $0.maxDomainsPerExporter = 1; $0.holdNs = 3_600_000_000_000 }
        #expect(d.decode(Bytes.ipfix(domain: 1, sets: [DecoderTests.dataSet(2)]), from: exporter, receivedNs: now).setsHeld == 1)
        let newcomer = d.decode(Bytes.ipfix(domain: 2, sets: [DecoderTests.templateSet]), from: exporter, receivedNs: now + 11_000_000_000)
        #expect(newcomer.domainsReplaced == 1 && newcomer.dropped[.noTemplate] == 1)
        #expect(d.heldSets(from: exporter) == 0)
    }

    @Test("records a late template releases do not move the releasing message's sequence number on")
    func releasedRecordsAndSequence() {
        var d = FlowDecoder()
        // Three records before their template: held, so the next number is unknown.
        #expect(d.decode(Bytes.ipfix(sequence: 0, sets: [DecoderTests.dataSet(3)]), from: exporter, receivedNs: now).setsHeld == 1)
        let release = d.decode(Bytes.ipfix(sequence: 3, sets: [DecoderTests.templateSet, DecoderTests.dataSet(2)]),
                               from: exporter, receivedNs: now)
        #expect(release.flows.count == 5)
        // Its own two records: 5 is next, so 10 says five went missing.
        _ = d.decode(Bytes.ipfix(sequence: 10, sets: [DecoderTests.dataSet(1)]), from: exporter, receivedNs: now)
        #expect(d.lostAfterReorder(now: now) == 5)
    }

    @Test("two IPFIX exporting processes on one address, same domain and template id, each read with their own template")
    func sessionsPerPort() {
        var d = FlowDecoder()
        let reversed: [(UInt16, UInt16)] = [(12, 4), (8, 4), (11, 2), (7, 2), (4, 1), (1, 8), (2, 8), (152, 8), (153, 8)]
        _ = d.decode(Bytes.ipfix(sets: [DecoderTests.templateSet]), from: exporter, port: 40001, receivedNs: now)
        _ = d.decode(Bytes.ipfix(sets: [(2, Bytes.template(300, reversed))]), from: exporter, port: 40002, receivedNs: now)
        let a = d.decode(Bytes.ipfix(sequence: 0, sets: [DecoderTests.dataSet(1, packets: 10)]), from: exporter, port: 40001, receivedNs: now)
        #expect(a.flows.first?.source == IPAddress("198.18.0.1") && a.flows.first?.packets == 10 && a.flows.first?.bytes == 1000)
        // The second process's record, written in its own field order, reads the same.
        var b = Bytes()
        b.u32(0xC612_0100); b.u32(0xC612_0001); b.u16(80); b.u16(40000); b.u8(17); b.u64(1000); b.u64(10)
        b.u64(1_764_526_198_000); b.u64(1_764_526_198_500)
        let other = d.decode(Bytes.ipfix(sequence: 0, sets: [(300, b.bytes)]), from: exporter, port: 40002, receivedNs: now)
        #expect(other.flows.first?.source == IPAddress("198.18.0.1") && other.flows.first?.packets == 10)
        #expect(other.sequenceGap == 0 && a.sequenceGap == 0)
        // NetFlow v9 scopes by address and source id (RFC 3954): a new port reads the same templates.
        _ = d.decode(Bytes.v9(sets: [(0, Bytes.template(300, Bytes.simpleFields))]), from: exporter, port: 50001, receivedNs: now)
        let v9 = d.decode(Bytes.v9(sequence: 1, sets: [DecoderTests.dataSet(1)]), from: exporter, port: 50002, receivedNs: now)
        #expect(v9.flows.count == 1)
    }

    @Test("at its domain limit an exporter's new session takes the place of one silent long enough, never of an active one")
    func sessionsReplaced() {
        var d = Self.decoder { $0.maxDomainsPerExporter = 2 }
        for port: UInt16 in [1, 2] {
            _ = d.decode(Bytes.ipfix(sets: [DecoderTests.templateSet, DecoderTests.dataSet()]), from: exporter, port: port, receivedNs: now)
        }
        let early = d.decode(Bytes.ipfix(sets: [DecoderTests.templateSet]), from: exporter, port: 3, receivedNs: now + 1_000_000_000)
        #expect(early.malformed == [.tooManyDomains])
        // Port 2 keeps talking; port 1 falls silent.
        _ = d.decode(Bytes.ipfix(sequence: 1, sets: [DecoderTests.dataSet()]), from: exporter, port: 2, receivedNs: now + 9_000_000_000)
        let later = d.decode(Bytes.ipfix(sets: [DecoderTests.templateSet, DecoderTests.dataSet()]), from: exporter, port: 3,
                             receivedNs: now + 11_000_000_000)
        #expect(later.malformed.isEmpty && later.domainsReplaced == 1 && later.flows.count == 1)
        // Port 2 still has its template; port 1's went with its place.
        #expect(d.decode(Bytes.ipfix(sequence: 2, sets: [DecoderTests.dataSet()]), from: exporter, port: 2,
                         receivedNs: now + 12_000_000_000).flows.count == 1)
        let gone = d.decode(Bytes.ipfix(sequence: 1, sets: [DecoderTests.dataSet()]), from: exporter, port: 1, receivedNs: now + 12_000_000_000)
        #expect(gone.flows.isEmpty && gone.malformed == [.tooManyDomains])
    }

    @Test("a restarted exporter's new session gets template room from its silent old sessions, at once or when refused")
    func templatesFromSilentSessions() {
        var d = Self.decoder { $0.maxTemplatesPerExporter = 2 }
        let two = (0..<2).flatMap { Bytes.template(UInt16(300 + $0), Bytes.simpleFields) }
        _ = d.decode(Bytes.ipfix(sets: [(2, two)]), from: exporter, port: 1, receivedNs: now)
        // A second session a second later: port 1 is not silent yet, so no room.
        let early = d.decode(Bytes.ipfix(sets: [DecoderTests.templateSet]), from: exporter, port: 2, receivedNs: now + 1_000_000_000)
        #expect(early.templateRefusals == 1)
        // Once port 1 has been silent 10 s, port 2's template takes its place ...
        let refused = d.decode(Bytes.ipfix(sets: [DecoderTests.templateSet, DecoderTests.dataSet()]), from: exporter, port: 2,
                               receivedNs: now + 11_000_000_000)
        #expect(refused.templateRefusals == 0 && refused.domainsReplaced == 1 && refused.flows.count == 1)
        // A third session takes the last place; its next template finds none and nothing silent; a later new
        // session gives up both silent ones at once.
        #expect(d.decode(Bytes.ipfix(sets: [DecoderTests.templateSet]), from: exporter, port: 3, receivedNs: now + 12_000_000_000)
            .templateRefusals == 0)
        let third = d.decode(Bytes.ipfix(sets: [(2, Bytes.template(301, Bytes.simpleFields))]), from: exporter, port: 3,
                             receivedNs: now + 13_000_000_000)
        #expect(third.templateRefusals == 1)
        let later = d.decode(Bytes.ipfix(sets: [(2, Bytes.template(301, Bytes.simpleFields))]), from: exporter, port: 4,
                             receivedNs: now + 30_000_000_000)
        #expect(later.domainsReplaced == 2 && later.templateRefusals == 0)
    }

    @Test("a quiet session keeps its templates while its exporter has room for a new one")
    func quietSessionKeepsTemplates() {
        var d = FlowDecoder()
        _ = d.decode(Bytes.ipfix(sets: [DecoderTests.templateSet, DecoderTests.dataSet()]), from: exporter, port: 1, receivedNs: now)
        // Eleven minutes later a second session starts; the first, quiet all along, is not in its way.
        let later = now + 660_000_000_000
        let second = d.decode(Bytes.ipfix(sets: [DecoderTests.templateSet]), from: exporter, port: 2, receivedNs: later)
        #expect(second.domainsReplaced == 0)
        #expect(d.decode(Bytes.ipfix(sequence: 1, sets: [DecoderTests.dataSet()]), from: exporter, port: 1, receivedNs: later).flows.count == 1)
    }

    @Test("a collected flow ends one idle timeout after the wall clock stepped back, not when the clock catches up")
    func clockSteppedBack() {
        var table = FlowTable()
        let u = UniflowSummary(firstSeenNs: now - 1_000_000_000, lastSeenNs: now, source: exporter, destination: IPAddress("198.18.0.2")!,
                               sourcePort: 40000, destinationPort: 53, ipProtocol: 17, packets: 1, bytes: 60)
        table.add(u, arrivedNs: now)
        let stepped = now - 120_000_000_000
        #expect(table.advance(to: stepped).allSatisfy { $0.state != .ended })
        let ended = table.advance(to: stepped + 16_000_000_000).filter { $0.state == .ended }
        #expect(ended.count == 1)
    }

    @Test("a copy of a datagram waiting for its template is not held twice")
    func duplicateWhileHeld() {
        var d = FlowDecoder()
        let early = Bytes.ipfix(sequence: 0, sets: [DecoderTests.dataSet(2)])
        #expect(d.decode(early, from: exporter, receivedNs: now).setsHeld == 1)
        let copy = d.decode(early, from: exporter, receivedNs: now)
        #expect(copy.setsHeld == 0 && d.heldSets(from: exporter) == 1)
        let released = d.decode(Bytes.ipfix(sequence: 2, sets: [DecoderTests.templateSet]), from: exporter, receivedNs: now)
        #expect(released.flows.count == 2)
    }

    @Test("an exporter a minute behind: request and reply two seconds apart are one flow, ended by the collector's clock")
    func exporterClockBehind() {
        let collector = FlowCollector(metricsFactory: NOOPMetricsHandler.instance, logger: Logger(label: "test"))
        let behindMs = (now - 60_000_000_000) / 1_000_000
        let request = Bytes.record(0xC612_0001, 0xC612_0100, sport: 40000, dport: 443, proto: 6, packets: 3, bytes: 300, startMs: behindMs)
        let reply = Bytes.record(0xC612_0100, 0xC612_0001, sport: 443, dport: 40000, proto: 6, packets: 2, bytes: 3000,
                                 startMs: behindMs + 100)
        collector.receive(Bytes.ipfix(sets: [DecoderTests.templateSet, (300, request)]), from: exporter, at: now)
        #expect(collector.advance(to: now + 1_000_000_000).allSatisfy { $0.state != .ended })
        collector.receive(Bytes.ipfix(sequence: 1, sets: [(300, reply)]), from: exporter, at: now + 2_000_000_000)
        #expect(collector.advance(to: now + 3_000_000_000).allSatisfy { $0.state != .ended })
        let ended = collector.advance(to: now + 18_000_000_000).filter { $0.state == .ended }
        #expect(ended.count == 1)
        #expect(ended.first?.sourcePort == 40000 && ended.first?.forward.packets == 3 && ended.first?.reverse.packets == 2)
    }

    @Test("a flow shows the initiator's ingress interface whichever direction's record came first")
    func interfaceByInitiator() {
        func flow(requestFirst: Bool) -> FlowRecord? {
            var table = FlowTable()
            let a = IPAddress("198.18.0.1")!, b = IPAddress("198.18.0.2")!
            let request = UniflowSummary(firstSeenNs: now - 2_000_000_000, lastSeenNs: now - 1_000_000_000, source: a, destination: b,
                                         sourcePort: 40000, destinationPort: 80, ipProtocol: 6, packets: 10, bytes: 1000,
                                         interfaceIndex: 1, interface: InterfaceName(exporter: IPAddress("198.18.0.9")!))
            let reply = UniflowSummary(firstSeenNs: now - 1_900_000_000, lastSeenNs: now - 1_000_000_000, source: b, destination: a,
                                       sourcePort: 80, destinationPort: 40000, ipProtocol: 6, packets: 8, bytes: 9000,
                                       interfaceIndex: 2, interface: InterfaceName(exporter: IPAddress("198.18.0.9")!))
            for u in requestFirst ? [request, reply] : [reply, request] { table.add(u, arrivedNs: now) }
            return table.advance(to: now).first
        }
        for order in [true, false] {
            let r = flow(requestFirst: order)
            #expect(r?.sourcePort == 40000 && r?.interfaceIndex == 1 && r?.interfaceName == "198.18.0.9%1")
        }
    }

    @Test("a reply record that starts earlier but arrives after the flow was reported leaves its directions as reported")
    func noSwapAfterReport() {
        var table = FlowTable()
        let a = IPAddress("198.18.0.1")!, b = IPAddress("198.18.0.2")!
        table.add(UniflowSummary(firstSeenNs: now - 2_000_000_000, lastSeenNs: now - 1_000_000_000, source: a, destination: b,
                                 sourcePort: 40000, destinationPort: 80, ipProtocol: 6, packets: 100, bytes: 10_000), arrivedNs: now)
        let first = table.advance(to: now)
        #expect(first.map(\.forward.packets) == [100])
        table.add(UniflowSummary(firstSeenNs: now - 3_000_000_000, lastSeenNs: now - 1_000_000_000, source: b, destination: a,
                                 sourcePort: 80, destinationPort: 40000, ipProtocol: 6, packets: 5, bytes: 500), arrivedNs: now + 1_000_000_000)
        // Swapped now, the forward count would fall from 100 to 5: a restart to whoever holds the first record.
        let second = table.advance(to: now + 1_000_000_000)
        #expect(second.map(\.forward.packets) == [100] && second.map(\.reverse.packets) == [5])
        #expect(second.first?.sourceAddress == a)
    }

    @Test("with every exporter place taken, exporters silent 10 s with no open flow give theirs up; their flows stay counted")
    func silentExportersReleased() throws {
        let metrics = TestMetrics()
        var limits = CollectorLimits()
        limits.maxExporters = 2
        limits.domainIdleNs = 10_000_000_000
        let collector = FlowCollector(limits: limits, metricsFactory: metrics, logger: Logger(label: "test"))
        let (a, b, c) = (IPAddress("198.18.0.1")!, IPAddress("198.18.0.2")!, IPAddress("198.18.0.3")!)
        let datagram = Bytes.ipfix(sets: [DecoderTests.templateSet, Self.dataSet(packets: 7)])
        collector.receive(datagram, from: a, at: now)
        collector.receive(datagram, from: b, at: now)
        collector.receive(datagram, from: c, at: now + 5_000_000_000)
        #expect(try metrics.expectCounter("flowforest_collector_refused_datagrams_total").totalValue == 1)
        // b stays in touch; a falls silent. Its flow ends by the idle timeout (15 s).
        collector.receive(Bytes.ipfix(sequence: 1, sets: []), from: b, at: now + 20_000_000_000)
        let ended = collector.advance(to: now + 20_000_000_000)
        #expect(ended.reduce(0) { $0 + $1.packets } == 14)
        let packets = collector.statistics.packetsAccounted
        collector.receive(datagram, from: c, at: now + 21_000_000_000)
        #expect(try metrics.expectCounter("flowforest_collector_refused_datagrams_total").totalValue == 1, "c took a's place")
        #expect(try metrics.expectGauge("flowforest_collector_exporters").lastValue == 2)
        #expect(collector.statistics.packetsAccounted == packets + 7, "a's flows stay in the statistics")
        #expect(throws: (any Error).self) { try metrics.expectCounter("flowforest_collector_records_total", [("exporter", "\(a)")]) }
        #expect(try metrics.expectCounter("flowforest_collector_records_total", [("exporter", "\(c)")]).totalValue == 1)
        // b was heard from 1 s ago: still holds its place, and a newcomer is refused.
        collector.receive(datagram, from: a, at: now + 22_000_000_000)
        #expect(try metrics.expectCounter("flowforest_collector_refused_datagrams_total").totalValue == 2)
    }
}
