import CoreMetrics
import FlowForestCollector
import FlowForestCore
import FlowForestTestSupport
import Logging
import Testing

/// Seeded fuzzing of the decoder and collector: mutated corpus datagrams and
/// generated ones with plausible headers and random sets, from many
/// exporters, through one long-lived decoder. Nothing may trap, and every
/// bound must hold after every datagram. `make fuzz` scales the loops.
@Suite("Collector fuzzing")
struct CollectorFuzzTests {
    static let seed = FuzzSeed.current()

    static func corpus() throws -> [[UInt8]] { try Corpus.names.map(Corpus.load) }

    /// A random datagram: a corpus datagram mutated, or a generated one.
    static func datagram(_ g: inout SplitMix64, corpus: [[UInt8]]) -> [UInt8] {
        switch g.next() % 4 {
        case 0: return mutate(corpus[Int(g.next() % UInt64(corpus.count))], &g)
        case 1: return generated(&g)
        case 2: return mutate(generated(&g), &g)
        default: return (0..<Int(g.next() % 128)).map { _ in UInt8(truncatingIfNeeded: g.next()) }
        }
    }

    static func mutate(_ input: [UInt8], _ g: inout SplitMix64) -> [UInt8] {
        var b = input
        for _ in 0..<(1 + g.next() % 8) where !b.isEmpty {
            let i = Int(g.next() % UInt64(b.count))
            switch g.next() % 5 {
            case 0: b[i] ^= UInt8(1 << (g.next() % 8))
            case 1: b[i] = [0, 0xFF, 0x7F, 0x80, 1][Int(g.next() % 5)]
            case 2: b.removeLast(Int(g.next() % UInt64(b.count)))
            case 3: b.insert(contentsOf: (0..<Int(g.next() % 16)).map { _ in UInt8(truncatingIfNeeded: g.next()) }, at: i)
            default: if i + 1 < b.count { b[i] = 0xFF; b[i + 1] = 0xFF }
            }
        }
        return b
    }

    /// A v9 or IPFIX datagram with a valid header and random template,
    /// options and data sets over a small id space, so templates and data meet.
    static func generated(_ g: inout SplitMix64) -> [UInt8] {
        var sets: [(UInt16, [UInt8])] = []
        let ipfix = g.next() % 2 == 0
        for _ in 0..<(g.next() % 4) {
            let id = UInt16(256 + g.next() % 8)
            switch g.next() % 3 {
            case 0:
                let count = Int(g.next() % 12)
                let fields = (0..<count).map { _ in
                    (UInt16([1, 2, 4, 6, 7, 8, 11, 12, 21, 22, 27, 28, 34, 82, 152, 153, 160, 0x8001][Int(g.next() % 18)]),
                     UInt16([0, 1, 2, 4, 8, 16, 0xFFFF, 3][Int(g.next() % 8)]))
                }
                sets.append((ipfix ? 2 : 0, Bytes.template(id, fields)))
            case 1:
                var o = Bytes()
                o.u16(id); o.u16(UInt16(g.next() % 4)); o.u16(UInt16(g.next() % 3)); o.u16(34); o.u16(4); o.u16(149); o.u16(4)
                sets.append((ipfix ? 3 : 1, o.bytes))
            default:
                sets.append((id, (0..<Int(g.next() % 200)).map { _ in UInt8(truncatingIfNeeded: g.next()) }))
            }
        }
        let sequence = UInt32(truncatingIfNeeded: g.next() % 64)
        return ipfix ? Bytes.ipfix(domain: UInt32(g.next() % 3), sequence: sequence, exportTime: UInt32(truncatingIfNeeded: g.next()), sets: sets)
            : Bytes.v9(sourceID: UInt32(g.next() % 3), sequence: sequence, uptimeMs: UInt32(truncatingIfNeeded: g.next()),
                       seconds: UInt32(truncatingIfNeeded: g.next()), sets: sets)
    }

    @Test("the decoder survives hostile datagrams and keeps every bound")
    func decoder() throws {
        var g = Self.seed.generator()
        let corpus = try Self.corpus()
        var limits = CollectorLimits()
        limits.maxExporters = 8
        limits.maxTemplatesPerExporter = 16
        limits.maxHeldSets = 8
        limits.holdNs = 2_000_000_000
        var decoder = FlowDecoder(limits: limits)
        var now = Corpus.receivedNs
        for i in 0..<FuzzSeed.iterations(4000) {
            let exporter = IPAddress(ipv4: 0xC612_0000 + UInt32(g.next() % 12))
            let datagram = Self.datagram(&g, corpus: corpus)
            let r = decoder.decode(datagram, from: exporter, receivedNs: now)
            for f in r.flows {
                #expect(f.lastSeenNs <= now && f.firstSeenNs <= f.lastSeenNs, "\(Self.seed), iteration \(i)")
            }
            #expect(decoder.exporterCount <= 8, "\(Self.seed), iteration \(i)")
            #expect(decoder.heldSets(from: exporter) <= 8, "\(Self.seed), iteration \(i)")
            now += g.next() % 200_000_000
            if i % 50 == 0 { _ = decoder.expireHeld(now: now) }
        }
    }

    @Test("the collector merges whatever decodes, within its flow limit")
    func collector() throws {
        var g = Self.seed.generator()
        let corpus = try Self.corpus()
        var configuration = FlowTableConfiguration()
        configuration.maxFlows = 50
        let collector = FlowCollector(configuration: configuration, metricsFactory: NOOPMetricsHandler.instance, logger: Logger(label: "fuzz"))
        var now = Corpus.receivedNs
        for i in 0..<FuzzSeed.iterations(2000) {
            collector.receive(Self.datagram(&g, corpus: corpus), from: IPAddress(ipv4: 0xC612_0000 + UInt32(g.next() % 4)), at: now)
            now += g.next() % 500_000_000
            if i % 20 == 0 {
                for r in collector.advance(to: now) {
                    #expect(r.lastSeenNs <= now, "\(Self.seed), iteration \(i)")
                }
            }
            #expect(collector.activeFlows <= 50, "\(Self.seed), iteration \(i)")
        }
        _ = collector.flush()
        #expect(collector.activeFlows == 0)
    }
}
