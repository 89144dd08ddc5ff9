import FlowForestCollector
import FlowForestCore
import FlowForestLab
import Foundation
import Testing

/// The collector benchmark's datagrams (NetFlow v9 and IPFIX) are what they
/// claim: FlowForest's decoder reads every record, no set is malformed or
/// waits for a template, and the packets add up to the flows' own counts.
@Suite("Collector benchmark datagrams")
struct BenchDatagramsTests {
    @Test("4,000 flows: 8,000 records, every packet, clean")
    func decodes() throws {
        let now = Date()
        let set = CollectorBenchDatagrams(flows: 4000, now: now)
        let receivedNs = UInt64(now.timeIntervalSince1970 * 1e9)
        var decoder = FlowDecoder()
        var records = 0, packets: UInt64 = 0
        var versions: Set<ExportVersion> = []
        for datagram in set.datagrams {
            let r = decoder.decode(datagram, from: IPAddress("127.0.0.1")!, receivedNs: receivedNs)
            #expect(r.malformed.isEmpty && r.setsHeld == 0 && r.dropped.isEmpty, "\(r.malformed) \(r.setsHeld) \(r.dropped)")
            records += r.records
            packets += r.flows.reduce(0) { $0 + $1.packets }
            if let v = r.version { versions.insert(v) }
        }
        let expected = (0..<4000).reduce(UInt64(0)) { total, i in
            let p = CollectorBenchDatagrams.packets(i)
            return total + p.forward.0 + p.reverse.0
        }
        #expect(set.records == 8000 && records == 8000, "built \(set.records), decoded \(records)")
        #expect(packets == expected)
        #expect(versions == [.ipfix, .netflowV9])
        #expect(set.datagrams.allSatisfy { $0.count <= 1400 })
    }
}
