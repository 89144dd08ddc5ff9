import FlowForestCore
import Foundation
import Testing

@Suite("Addresses, times and record formats")
struct RecordFormatTests {
    @Test("IPv4 is stored mapped and prints back", arguments: ["198.18.0.1", "0.0.0.0", "255.255.255.255"])
    func ipv4(text: String) throws {
        let a = try #require(IPAddress(text))
        #expect(a.isIPv4 && a.description == text)
        #expect(a.bytes[10] == 0xFF && a.bytes[11] == 0xFF)
    }

    @Test("IPv6 prints in compressed form", arguments: [("2001:2::1", "2001:2::1"), ("2001:0002:0:0:0:0:0:00ff", "2001:2::ff"), ("::1", "::1")])
    func ipv6(pair: (String, String)) throws {
        #expect(try #require(IPAddress(pair.0)).description == pair.1)
    }

    @Test("Bad addresses are rejected", arguments: ["", "1.2.3", "256.1.1.1", "1.2.3.4.5", "::g", "hello"])
    func badAddress(text: String) {
        #expect(IPAddress(text) == nil)
    }

    @Test("RFC 3339 round trip with milliseconds")
    func timestamps() throws {
        #expect(Timestamp.rfc3339(milliseconds: 0) == "1970-01-01T00:00:00.000Z")
        #expect(Timestamp.rfc3339(milliseconds: 1_795_599_255_123) == "2026-11-25T09:34:15.123Z")
        #expect(Timestamp.parseRFC3339("2026-11-25T09:34:15.123Z") == 1_795_599_255_123_000_000)
        #expect(Timestamp.parseRFC3339("2026-11-25T10:34:15+01:00") == 1_795_599_255_000_000_000)
        #expect(Timestamp.parseRFC3339("2026-13-25T09:34:15Z") == nil)
        #expect(Timestamp.parseRFC3339("yesterday") == nil)
    }

    @Test("Flow JSON has every field, null where it does not apply")
    func flowJSON() throws {
        var forward = DirectionStats()
        forward.add(PacketSummary(timestampNs: 1_000_000_000, source: IPAddress("198.18.0.1")!, destination: IPAddress("198.18.0.2")!,
                                  ipProtocol: IPProtocol.icmp, ipLength: 84, icmpType: 8))
        let flow = FlowRecord(id: 9, sourceAddress: IPAddress("198.18.0.1")!, destinationAddress: IPAddress("198.18.0.2")!,
                              sourcePort: 8, destinationPort: 0, ipProtocol: IPProtocol.icmp, forward: forward, state: .ended)
        let object = try #require(JSONSerialization.jsonObject(with: JSONEncoder().encode(flow.json())) as? [String: Any])
        for key in ["id", "sensor", "first_seen", "last_seen", "protocol", "src_ip", "src_port", "dst_ip", "dst_port", "vlan", "interface", "fwd", "rev", "state"] {
            #expect(object.keys.contains(key), "missing \(key)")
        }
        #expect(object["src_port"] is NSNull && object["vlan"] is NSNull)
        #expect(object["protocol"] as? String == "icmp" && object["icmp_type"] as? Int == 8)
        #expect(object["first_seen"] as? String == "1970-01-01T00:00:01.000Z")
    }

    @Test("CSV quotes fields that need it and leaves nulls empty")
    func csv() {
        let flow = FlowRecord(id: 1, sourceAddress: IPAddress("198.18.0.1")!, destinationAddress: IPAddress("198.18.0.2")!,
                              sourcePort: 1, destinationPort: 2, ipProtocol: 47, interfaceName: "a,b")
        let row = FlowText.csvRow(flow)
        #expect(row.contains("\"a,b\""))
        #expect(row.split(separator: ",", omittingEmptySubsequences: false).count == FlowText.csvHeader.split(separator: ",").count + 1)
        #expect(row.contains(",gre,"))
    }
}
