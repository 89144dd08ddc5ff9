import FlowForestCore
import FlowForestPipeline
import Foundation
import Testing

/// `analyze --format json` writes its flow list without `JSONEncoder`, for
/// speed; what users read must still be the encoder's text, byte for byte,
/// whatever the flow holds, and a field added to `FlowJSON` must not be
/// silently left out.
@Suite("analyze's direct flow JSON")
struct FlowJSONTextTests {
    static func encoder() -> JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        return e
    }

    /// A flow from its JSON text: every field named, as a client would send it.
    static func flow(_ fields: [String: Any]) throws -> FlowJSON {
        var all: [String: Any] = [
            "id": 7, "sensor": NSNull(), "first_seen": "2026-12-01T05:00:00.125Z", "last_seen": "2026-12-01T05:00:01.5Z",
            "duration_ms": 1375, "protocol": "tcp", "src_ip": "198.18.0.1", "src_port": 40000,
            "dst_ip": "198.18.0.2", "dst_port": 80, "icmp_type": NSNull(), "icmp_code": NSNull(), "vlan": NSNull(),
            "interface": "eth0", "state": "ended", "end_reason": "tcp_close",
            "fwd": ["packets": 5, "bytes": 420, "tcp_flags": ["SYN", "ACK", "FIN"]],
            "rev": ["packets": 4, "bytes": 6000, "tcp_flags": [String]()],
        ]
        all.merge(fields) { $1 }
        return try JSONDecoder().decode(FlowJSON.self, from: JSONSerialization.data(withJSONObject: all))
    }

    static var cases: [[String: Any]] { [
        [:],
        ["sensor": "edge-1", "vlan": 4094, "icmp_type": 3, "icmp_code": 1, "src_port": NSNull(), "dst_port": NSNull(), "protocol": "icmp"],
        ["interface": NSNull(), "end_reason": NSNull(), "state": "active", "duration_ms": 0],
        ["id": Int64.max, "duration_ms": 0.001, "src_port": 65535],
        ["duration_ms": 1e-7],          // exponent notation: the encoder's job
        ["duration_ms": 123456789012.5],
        ["sensor": "edge \"1\"/a\\b"],  // characters the encoder escapes
        ["interface": "eth0\u{7}"],      // a control character
        ["sensor": "capteur-é"],         // beyond ASCII
        ["src_ip": "2001:db8::1", "dst_ip": "2001:db8::2"],
    ] }

    @Test("each flow, and all of them as one array, is written exactly as JSONEncoder writes it", arguments: 0..<10)
    func sameBytes(index: Int) throws {
        let flows = [try Self.flow(Self.cases[index]), try Self.flow([:])]
        var text = FlowJSONText(encoder: Self.encoder())
        try text.appendArray(flows)
        let expected = try Self.encoder().encode(flows)
        #expect(String(decoding: text.bytes, as: UTF8.self) == String(decoding: expected, as: UTF8.self))
    }
}
