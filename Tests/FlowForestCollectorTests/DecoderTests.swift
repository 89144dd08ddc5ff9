import FlowForestCollector
import FlowForestCore
import Testing

/// The decoder's rules, each on a hand-made datagram.
@Suite("NetFlow and IPFIX decoding rules")
struct DecoderTests {
    let exporter = IPAddress("198.18.0.1")!
    let now = Corpus.receivedNs
    static let templateSet: (UInt16, [UInt8]) = (2, Bytes.template(300, Bytes.simpleFields))
    static func dataSet(_ n: Int = 1, packets: UInt64 = 10) -> (UInt16, [UInt8]) {
        (300, (0..<n).flatMap { Bytes.record(0xC612_0001, 0xC612_0100 + UInt32($0), packets: packets, bytes: packets * 100) })
    }

    @Test("data before its template is held, then decoded when the template arrives")
    func heldThenDecoded() {
        var d = FlowDecoder()
        let early = d.decode(Bytes.ipfix(sets: [Self.dataSet(2)]), from: exporter, receivedNs: now)
        #expect(early.flows.isEmpty && early.setsHeld == 1)
        #expect(d.heldSets(from: exporter) == 1)
        let late = d.decode(Bytes.ipfix(sequence: 2, sets: [Self.templateSet]), from: exporter, receivedNs: now + 1_000_000)
        #expect(late.flows.count == 2)
        #expect(d.heldSets(from: exporter) == 0)
    }

    @Test("held data expires by the collector's clock and is counted")
    func heldExpires() {
        var d = FlowDecoder()
        _ = d.decode(Bytes.ipfix(sets: [Self.dataSet()]), from: exporter, receivedNs: now)
        #expect(d.expireHeld(now: now + 1_000_000_000).isEmpty)
        #expect(d.expireHeld(now: now + 10_000_000_000)[exporter] == 1)
        #expect(d.heldSets(from: exporter) == 0)
    }

    @Test("the hold is bounded: further sets are dropped as hold_full")
    func holdBounded() {
        var limits = CollectorLimits()
        limits.maxHeldSets = 4
        var d = FlowDecoder(limits: limits)
        var dropped = 0
        for i in 0..<10 {
            dropped += d.decode(Bytes.ipfix(sequence: UInt32(i), sets: [Self.dataSet()]), from: exporter, receivedNs: now).dropped[.holdFull, default: 0]
        }
        #expect(d.heldSets(from: exporter) == 4 && dropped == 6)
    }

    @Test("a withdrawn template no longer decodes; withdraw-all too")
    func withdrawal() {
        var d = FlowDecoder()
        #expect(d.decode(Bytes.ipfix(sets: [Self.templateSet, Self.dataSet()]), from: exporter, receivedNs: now).flows.count == 1)
        var withdraw = Bytes(); withdraw.u16(300); withdraw.u16(0)
        _ = d.decode(Bytes.ipfix(sequence: 1, sets: [(2, withdraw.bytes)]), from: exporter, receivedNs: now)
        #expect(d.decode(Bytes.ipfix(sequence: 1, sets: [Self.dataSet()]), from: exporter, receivedNs: now).setsHeld == 1)
        var all = Bytes(); all.u16(2); all.u16(0)
        _ = d.decode(Bytes.ipfix(sets: [Self.templateSet]), from: exporter, receivedNs: now)
        _ = d.decode(Bytes.ipfix(sets: [(2, all.bytes)]), from: exporter, receivedNs: now)
        #expect(d.decode(Bytes.ipfix(sets: [Self.dataSet()]), from: exporter, receivedNs: now).flows.isEmpty)
    }

    @Test("templates are per observation domain and exporter")
    func domains() {
        var d = FlowDecoder()
        _ = d.decode(Bytes.ipfix(domain: 1, sets: [Self.templateSet]), from: exporter, receivedNs: now)
        #expect(d.decode(Bytes.ipfix(domain: 2, sets: [Self.dataSet()]), from: exporter, receivedNs: now).flows.isEmpty)
        #expect(d.decode(Bytes.ipfix(domain: 1, sets: [Self.dataSet()]), from: IPAddress("198.18.0.2")!, receivedNs: now).flows.isEmpty)
        #expect(d.decode(Bytes.ipfix(domain: 1, sets: [Self.dataSet()]), from: exporter, receivedNs: now).flows.count == 1)
    }

    @Test("an options record's samplingInterval multiplies later counts")
    func ipfixSampling() {
        var d = FlowDecoder()
        var options = Bytes()
        // Options template 400: scope observationDomainId (149), then samplingInterval (34).
        options.u16(400); options.u16(2); options.u16(1); options.u16(149); options.u16(4); options.u16(34); options.u16(4)
        var value = Bytes(); value.u32(1); value.u32(100)
        let r = d.decode(Bytes.ipfix(sets: [(3, options.bytes), (400, value.bytes), Self.templateSet, Self.dataSet(packets: 3)]),
                         from: exporter, receivedNs: now)
        #expect(r.samplingInterval == 100)
        #expect(r.flows.first?.packets == 300 && r.flows.first?.bytes == 30_000)
    }

    @Test("RFC 5477 count-based sampling: 1 packet taken, 99 skipped is 1 in 100; an interval past 2^24 is refused and counted, not applied")
    func packetIntervalSampling() {
        func options(_ fields: [(UInt16, UInt16)], _ values: [UInt32]) -> [(UInt16, [UInt8])] {
            var t = Bytes()
            // Options template 400: scope observationDomainId (149), then the fields.
            t.u16(400); t.u16(UInt16(1 + fields.count)); t.u16(1); t.u16(149); t.u16(4)
            for (id, length) in fields { t.u16(id); t.u16(length) }
            var v = Bytes(); v.u32(1)
            for x in values { v.u32(x) }
            return [(3, t.bytes), (400, v.bytes)]
        }
        var d = FlowDecoder()
        let r = d.decode(Bytes.ipfix(sets: options([(305, 4), (306, 4)], [1, 99]) + [Self.templateSet, Self.dataSet(packets: 3)]),
                         from: exporter, receivedNs: now)
        #expect(r.samplingInterval == 100 && r.flows.first?.packets == 300)
        // An interval with no space takes every packet.
        var alone = FlowDecoder()
        let all = alone.decode(Bytes.ipfix(sets: options([(305, 4)], [64]) + [Self.templateSet, Self.dataSet(packets: 3)]),
                               from: exporter, receivedNs: now)
        #expect(all.flows.first?.packets == 3)
        // 2^30: one packet would count as a billion.
        var huge = FlowDecoder()
        let refused = huge.decode(Bytes.ipfix(sets: options([(34, 4)], [1 << 30]) + [Self.templateSet, Self.dataSet(packets: 3)]),
                                  from: exporter, receivedNs: now)
        #expect(refused.malformed == [.implausibleSampling] && refused.flows.first?.packets == 3)
    }

    @Test("a data record with no address, or no packet in either direction, is counted as unusable, not dropped unseen")
    func unusableRecords() {
        var d = FlowDecoder()
        // Template 301: ports and counts, no address.
        var noAddress = Bytes()
        noAddress.u16(40000); noAddress.u16(80); noAddress.u64(5)
        let a = d.decode(Bytes.ipfix(sets: [(2, Bytes.template(301, [(7, 2), (11, 2), (2, 8)])), (301, noAddress.bytes)]),
                         from: exporter, receivedNs: now)
        #expect(a.malformed == [.unusableRecord] && a.flows.isEmpty && a.records == 1)
        // NSEL-style: octets only (initiatorOctets 231), no packet count FlowForest reads.
        var octetsOnly = Bytes()
        octetsOnly.u32(0xC612_0001); octetsOnly.u32(0xC612_0002); octetsOnly.u64(1500)
        let b = d.decode(Bytes.ipfix(sequence: 1, sets: [(2, Bytes.template(302, [(8, 4), (12, 4), (231, 8)])), (302, octetsOnly.bytes)]),
                         from: exporter, receivedNs: now)
        #expect(b.malformed == [.unusableRecord] && b.flows.isEmpty)
    }

    @Test("NetFlow v9 options template with SAMPLING_INTERVAL, and FIRST/LAST_SWITCHED uptimes")
    func v9() {
        var d = FlowDecoder()
        var options = Bytes()
        // Options template 260: scope system (type 1, 4 bytes); option SAMPLING_INTERVAL (34, 4 bytes).
        options.u16(260); options.u16(4); options.u16(4); options.u16(1); options.u16(4); options.u16(34); options.u16(4)
        var value = Bytes(); value.u32(0); value.u32(10)
        let fields: [(UInt16, UInt16)] = [(8, 4), (12, 4), (4, 1), (2, 4), (1, 4), (22, 4), (21, 4)]
        var record = Bytes()
        record.u32(0xC612_0001); record.u32(0xC612_0002); record.u8(17); record.u32(2); record.u32(200); record.u32(90_000); record.u32(95_000)
        let r = d.decode(Bytes.v9(sets: [(1, options.bytes), (260, value.bytes), (0, Bytes.template(256, fields)), (256, record.bytes)]),
                         from: exporter, receivedNs: now)
        #expect(r.malformed.isEmpty)
        #expect(r.flows.count == 1)
        let f = r.flows.first
        #expect(f?.packets == 20 && f?.bytes == 2000)
        // Uptime 100 s at export 1764526199: the flow ended 5 s before it.
        #expect(f?.lastSeenNs == 1_764_526_194_000_000_000)
        #expect(f?.firstSeenNs == 1_764_526_189_000_000_000)
    }

    @Test("variable-length fields, short and long form, are skipped over correctly")
    func variableLength() {
        var d = FlowDecoder()
        // interfaceName (82) variable, then the simple fields.
        let fields: [(UInt16, UInt16)] = [(82, 0xFFFF)] + Bytes.simpleFields
        var data = Bytes()
        data.u8(3); data.bytes += Array("eth".utf8)
        data.bytes += Bytes.record(0xC612_0001, 0xC612_0002, packets: 1, bytes: 60)
        data.u8(255); data.u16(300); data.bytes += [UInt8](repeating: 0x41, count: 300)
        data.bytes += Bytes.record(0xC612_0001, 0xC612_0003, packets: 2, bytes: 120)
        let r = d.decode(Bytes.ipfix(sets: [(2, Bytes.template(300, fields)), (300, data.bytes)]), from: exporter, receivedNs: now)
        #expect(r.malformed.isEmpty && r.flows.map(\.packets) == [1, 2])
    }

    @Test("zero-length fields, short templates and unknown versions are counted, not trusted")
    func malformed() {
        var d = FlowDecoder()
        let zero = d.decode(Bytes.ipfix(sets: [(2, Bytes.template(300, [(8, 0)]))]), from: exporter, receivedNs: now)
        #expect(zero.malformed == [.zeroFieldLength])
        #expect(d.decode([0, 7, 1, 2], from: exporter, receivedNs: now).malformed == [.unknownVersion])
        #expect(d.decode([0], from: exporter, receivedNs: now).malformed == [.truncated])
        var cut = Bytes.ipfix(sets: [Self.templateSet])
        cut.removeLast(3)
        #expect(d.decode(cut, from: exporter, receivedNs: now).malformed == [.truncated])
        #expect(d.decode(Bytes.ipfix(sets: [(2, Bytes.template(12, [(8, 4)]))]), from: exporter, receivedNs: now).malformed == [.badTemplate])
    }

    @Test("a template flood stops at the per-exporter cap and counts refusals")
    func templateFlood() {
        var limits = CollectorLimits()
        limits.maxTemplatesPerExporter = 50
        var d = FlowDecoder(limits: limits)
        var refused = 0
        for batch in 0..<20 {
            let body = (0..<20).flatMap { Bytes.template(UInt16(256 + batch * 20 + $0), [(8, 4), (2, 4)]) }
            refused += d.decode(Bytes.ipfix(sets: [(2, body)]), from: exporter, receivedNs: now).templateRefusals
        }
        #expect(refused == 400 - 50)
    }

    @Test("sequence gaps, counted once no late datagram filled them: IPFIX counts records, v9 datagrams, v5 flows")
    func sequenceGaps() {
        var d = FlowDecoder()
        _ = d.decode(Bytes.ipfix(sequence: 0, sets: [Self.templateSet, Self.dataSet(3)]), from: exporter, receivedNs: now)
        #expect(d.decode(Bytes.ipfix(sequence: 3, sets: [Self.dataSet(2)]), from: exporter, receivedNs: now).sequenceGap == 0)
        #expect(d.decode(Bytes.ipfix(sequence: 9, sets: [Self.dataSet(1)]), from: exporter, receivedNs: now).sequenceGap == 0)
        #expect(d.expireGaps(now: now + d.limits.reorderNs - 1).isEmpty, "held open for a late datagram until the wait is over")
        #expect(d.lostAfterReorder(now: now) == 4)
        _ = d.decode(Bytes.v9(sequence: 7, sets: []), from: exporter, receivedNs: now)
        #expect(d.decode(Bytes.v9(sequence: 8, sets: []), from: exporter, receivedNs: now).sequenceGap == 0)
        _ = d.decode(Bytes.v9(sequence: 11, sets: []), from: exporter, receivedNs: now)
        #expect(d.lostAfterReorder(now: now) == 2)
    }

    @Test("exporter times beyond FlowForest's range or in the future end up at arrival")
    func hostileTimes() {
        var d = FlowDecoder()
        let future = Bytes.record(0xC612_0001, 0xC612_0002, packets: 1, bytes: 60, startMs: UInt64.max - 1000)
        let later = Bytes.record(0xC612_0001, 0xC612_0003, packets: 1, bytes: 60, startMs: (now / 1_000_000) + 3_600_000)
        let r = d.decode(Bytes.ipfix(sets: [Self.templateSet, (300, future + later)]), from: exporter, receivedNs: now)
        #expect(r.flows.count == 2)
        #expect(r.flows.allSatisfy { $0.lastSeenNs <= now && $0.firstSeenNs <= $0.lastSeenNs })
    }

    @Test("NetFlow v5 header sampling and exporter naming with the ingress interface")
    func v5() throws {
        var bytes = try Corpus.load("nfreplay-v5-000")
        bytes[22] = 0x40; bytes[23] = 10  // mode 1, interval 10
        bytes[24 + 12] = 0; bytes[24 + 13] = 7  // first record's input interface 7
        var d = FlowDecoder()
        let r = d.decode(bytes, from: exporter, receivedNs: now)
        #expect(r.samplingInterval == 10)
        #expect(r.flows.reduce(0) { $0 + $1.packets } == 280)
        #expect(r.flows.first?.interfaceName == "198.18.0.1%7" && r.flows.first?.interfaceIndex == 7)
        #expect(r.flows.dropFirst().allSatisfy { $0.interfaceName == "198.18.0.1" })
    }

    @Test("exporters beyond the maximum are refused")
    func exporterCap() {
        var limits = CollectorLimits()
        limits.maxExporters = 3
        var d = FlowDecoder(limits: limits)
        let refused = (0..<10).filter { i in
            d.decode(Bytes.v9(sets: []), from: IPAddress(ipv4: 0xC612_0000 + UInt32(i)), receivedNs: now).refused
        }
        #expect(refused.count == 7 && d.exporterCount == 3)
    }

    @Test("junk from new addresses takes no exporter place: a scan or forged sources cannot lock out real exporters")
    func junkTakesNoPlace() {
        var limits = CollectorLimits()
        limits.maxExporters = 3
        var d = FlowDecoder(limits: limits)
        let junk: [[UInt8]] = [[0x00], [0x00, 0x0A, 0x00], Array(repeating: 0xFF, count: 40), Array(Bytes.v9(sets: []).prefix(12))]
        for i in 0..<300 {
            let r = d.decode(junk[i % junk.count], from: IPAddress(ipv4: 0xC613_0000 + UInt32(i)), receivedNs: now)
            #expect(!r.refused && !r.headerRead && !r.malformed.isEmpty, "\(r.malformed)")
        }
        #expect(d.exporterCount == 0)
        let admitted = (0..<4).filter { i in
            let r = d.decode(Bytes.ipfix(sets: [DecoderTests.templateSet]), from: IPAddress(ipv4: 0xC612_0000 + UInt32(i)), receivedNs: now)
            return !r.refused && r.headerRead
        }
        #expect(admitted.count == 3 && d.exporterCount == 3)
        // A record-level fault in a newcomer's first datagram still admits it: its header read.
        var e = FlowDecoder(limits: limits)
        let bad = e.decode(Bytes.ipfix(sets: [DecoderTests.templateSet, HostileExporterTests.dataSet(packets: .max)]), from: exporter, receivedNs: now)
        #expect(bad.malformed == [.implausibleCount] && e.exporterCount == 1)
    }
}
