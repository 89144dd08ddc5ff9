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

    @Test("Bad addresses are rejected",
          arguments: ["", "1.2.3", "256.1.1.1", "1.2.3.4.5", "::g", "hello",
                      // inet_pton stops at a NUL, so these parsed as the bare address before.
                      "198.18.0.1\u{0}", "198.18.0.1\u{0}junk", "2001:2::1\u{0}.evil", "198.18.0.1 ", " 198.18.0.1",
                      "fe80::1%eth0", String(repeating: "1", count: 5000)])
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

    @Test("RFC 3339 times past the accepted range are refused, not trapped on",
          arguments: ["2600-01-01T00:00:00Z", "2555-01-01T00:00:00Z", "2554-07-21T23:34:34Z", "9999-12-31T23:59:59.999999999Z",
                      "2500-01-01T00:00:00Z", "2499-12-31T23:00:00-01:00", "1969-12-31T23:59:59Z", "1970-01-01T00:30:00+01:00",
                      "0000-01-01T00:00:00Z"])
    func timestampOutOfRange(text: String) {
        #expect(Timestamp.parseRFC3339(text) == nil)
    }

    @Test("a query bound an offset moves past either end of the range is clamped there; a date outside it is still refused")
    func clampedQueryBounds() {
        #expect(Timestamp.parseRFC3339Clamped("1970-01-01T00:10:30+15:22") == 0)
        #expect(Timestamp.parseRFC3339Clamped("1970-01-01T00:30:00+01:00") == 0)
        #expect(Timestamp.parseRFC3339Clamped("2499-12-31T23:00:00-01:00") == Timestamp.endNs - 1)
        #expect(Timestamp.parseRFC3339Clamped("1970-01-01T00:30:00-01:00") == 5_400_000_000_000)
        #expect(Timestamp.parseRFC3339Clamped("2026-11-25T10:34:15+01:00") == 1_795_599_255_000_000_000)
        for text in ["1969-12-31T23:59:59Z", "2500-01-01T00:00:00Z", "0000-01-01T00:00:00Z", "2026-02-31T00:00:00Z", "yesterday"] {
            #expect(Timestamp.parseRFC3339Clamped(text) == nil, "\(text)")
        }
    }

    @Test("RFC 3339 refuses days a month does not have and impossible offsets",
          arguments: ["2026-02-31T00:00:00Z", "2026-02-29T00:00:00Z", "2100-02-29T00:00:00Z", "2026-04-31T00:00:00Z",
                      "2026-00-10T00:00:00Z", "2026-01-00T00:00:00Z", "2026-01-32T00:00:00Z",
                      "2026-11-25T10:00:00+99:99", "2026-11-25T10:00:00+24:00", "2026-11-25T10:00:00-00:60",
                      "2026-11-25T24:00:00Z", "2026-11-25T10:60:00Z", "2026-11-25T10:00:61Z",
                      "2026-11-25T10:00:00.Z", "2026-11-25T10:00:00Z\u{0}", "2026-11-25T10:00:00+01:00junk"])
    func impossibleTimes(text: String) {
        #expect(Timestamp.parseRFC3339(text) == nil)
    }

    @Test("the edges of the accepted range and real leap days parse")
    func timestampEdges() {
        #expect(Timestamp.parseRFC3339("2499-12-31T23:59:59.999999999Z") == Timestamp.endNs - 1)
        #expect(Timestamp.parseRFC3339("1970-01-01T00:00:00Z") == 0)
        #expect(Timestamp.parseRFC3339("1970-01-01T00:30:00-01:00") == 5_400_000_000_000)
        #expect(Timestamp.parseRFC3339("2024-02-29T00:00:00Z") == 1_709_164_800_000_000_000)
        #expect(Timestamp.parseRFC3339("2000-02-29T00:00:00Z") == 951_782_400_000_000_000)
        #expect(Timestamp.rfc3339(nanoseconds: Timestamp.endNs - 1) == "2499-12-31T23:59:59.999Z")
    }

    @Test("epoch seconds: plain decimals inside the range only")
    func epochSeconds() {
        #expect(Timestamp.parseEpochSeconds("1764063455") == 1_764_063_455_000_000_000)
        #expect(Timestamp.parseEpochSeconds("1764063455.5") == 1_764_063_455_500_000_000)
        for text in ["2e10", "20000000000", "1e9", "+5", "-5", " 5", "5 ", "0x10", "nan", "inf", "1.", ".5", "1..2", "", "5\u{0}"] {
            #expect(Timestamp.parseEpochSeconds(text) == nil, "\(text.debugDescription)")
        }
        #expect(Timestamp.nanoseconds(epochSeconds: 2e10) == nil)
        #expect(Timestamp.nanoseconds(epochSeconds: .infinity) == nil)
        #expect(Timestamp.nanoseconds(epochSeconds: -1) == nil)
    }

    @Test("times before the epoch format rather than trap")
    func negativeMilliseconds() {
        #expect(Timestamp.rfc3339(milliseconds: -1) == "1969-12-31T23:59:59.999Z")
        #expect(Timestamp.rfc3339(milliseconds: -1000) == "1969-12-31T23:59:59.000Z")
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
