import CoreMetrics
import FlowForestCollector
import FlowForestCore
import Logging
import Testing

/// Real exporters' datagrams (Fixtures/README.md) decode to the traffic they
/// describe: 28 packets in 7 bidirectional flows.
@Suite("Exporters' datagrams from the corpus")
struct CorpusTests {
    static func decode(_ names: [String]) throws -> (flows: [UniflowSummary], results: [DecodeResult]) {
        var decoder = FlowDecoder()
        var flows: [UniflowSummary] = []
        var results: [DecodeResult] = []
        for name in names {
            let r = decoder.decode(try Corpus.load(name), from: Corpus.loopback, receivedNs: Corpus.receivedNs)
            flows += r.flows
            results.append(r)
        }
        return (flows, results)
    }

    @Test("every datagram decodes cleanly", arguments: Corpus.names)
    func clean(name: String) throws {
        var decoder = FlowDecoder()
        let r = decoder.decode(try Corpus.load(name), from: Corpus.loopback, receivedNs: Corpus.receivedNs)
        #expect(r.malformed.isEmpty, "\(name): \(r.malformed)")
        #expect(r.version != nil)
    }

    @Test("each exporter's records carry all 28 packets", arguments: [
        (["flowforest-ipfix-000", "flowforest-ipfix-001"], ExportVersion.ipfix, 10),
        (["flowforest-ipfix-biflow-000", "flowforest-ipfix-biflow-001"], .ipfix, 7),
        (["nfreplay-v5-000"], .netflowV5, 10),
        (["nfreplay-v9-000"], .netflowV9, 10),
    ])
    func packets(names: [String], version: ExportVersion, records: Int) throws {
        let (flows, results) = try Self.decode(names)
        #expect(results.allSatisfy { $0.version == version })
        #expect(results.reduce(0) { $0 + $1.records } == records)
        #expect(flows.reduce(0) { $0 + $1.packets } == 28)
        #expect(flows.allSatisfy { $0.lastSeenNs <= Corpus.receivedNs && $0.firstSeenNs <= $0.lastSeenNs })
        #expect(flows.allSatisfy { $0.interfaceName?.hasPrefix("127.0.0.1") == true })
        #expect(results.allSatisfy { $0.sequenceGap == 0 })
    }

    @Test("FlowForest's own export merges back into its 7 flows", arguments: [
        ["flowforest-ipfix-000", "flowforest-ipfix-001"], ["flowforest-ipfix-biflow-000", "flowforest-ipfix-biflow-001"],
        ["nfreplay-v5-000"], ["nfreplay-v9-000"],
    ])
    func merged(names: [String]) throws {
        let collector = FlowCollector(metricsFactory: NOOPMetricsHandler.instance, logger: Logger(label: "test"))
        for name in names { collector.receive(try Corpus.load(name), from: Corpus.loopback, at: Corpus.receivedNs) }
        let records = collector.flush()
        #expect(records.count == 7, "\(records.map { "\($0.sourceAddress):\($0.sourcePort)>\($0.destinationPort) \($0.packets)" })")
        #expect(records.reduce(0) { $0 + $1.packets } == 28)
        let tcp = records.filter { $0.ipProtocol == IPProtocol.tcp }
        #expect(tcp.count == 2)
        // The client that sent the SYN, whichever direction's record came first.
        #expect(tcp.allSatisfy { $0.destinationPort == 18080 || $0.destinationPort == 18081 })
        #expect(tcp.allSatisfy { $0.forward.packets == 5 && $0.reverse.packets == 3 })
        let ping = records.filter { $0.ipProtocol == IPProtocol.icmp && $0.reverse.packets > 0 }
        #expect(ping.count == 1 && ping.first?.forward.packets == 3 && ping.first?.reverse.packets == 3)
    }

    static let pmacct: [ExportVersion: [String]] = [
        .netflowV5: (0...1).map { "pmacct-v5-00\($0)" },
        .netflowV9: (0...5).map { "pmacct-v9-00\($0)" },
        .ipfix: (0...5).map { "pmacct-v10-00\($0)" },
    ]

    @Test("pmacct's nfprobe, live on one veth, says the same in v5, v9 and IPFIX")
    func pmacct() throws {
        var totals: [ExportVersion: [UInt64]] = [:]
        for (version, names) in Self.pmacct {
            let (flows, results) = try Self.decode(names)
            #expect(results.allSatisfy { $0.version == version && $0.malformed.isEmpty && $0.dropped.isEmpty }, "\(version)")
            #expect(results.allSatisfy { $0.sequenceGap == 0 }, "\(version): \(results.map(\.sequenceGap))")
            let collector = FlowCollector(metricsFactory: NOOPMetricsHandler.instance, logger: Logger(label: "test"))
            for name in names { collector.receive(try Corpus.load(name), from: Corpus.loopback, at: Corpus.receivedNs) }
            let merged = collector.flush()
            let v4 = merged.filter(\.sourceAddress.isIPv4)
            totals[version] = [UInt64(merged.count), merged.reduce(0) { $0 + $1.packets }, merged.reduce(0) { $0 + $1.bytes },
                               UInt64(v4.count), v4.reduce(0) { $0 + $1.packets }, v4.reduce(0) { $0 + $1.bytes }]
            #expect(flows.reduce(0) { $0 + $1.packets } == totals[version]?[1])
        }
        // v5 carries IPv4 only (the lab's IPv6 neighbour discovery is in v9 and IPFIX).
        #expect(totals[.netflowV9] == totals[.ipfix], "\(totals)")
        #expect(totals[.netflowV5]?.suffix(3) == totals[.ipfix]?.suffix(3), "\(totals)")
        #expect((totals[.ipfix]?[4] ?? 0) >= 20, "the 10 pings and their replies at least")
    }
}
