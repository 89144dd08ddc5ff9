import FlowForestCore
import Foundation

/// One record of `POST /api/traffic`: a packet seen by a remote agent.
struct IngestRecord: Decodable {
    var packet: PacketSummary

    enum Key: String, CodingKey, CaseIterable {
        case srcIP = "src_ip", dstIP = "dst_ip", srcPort = "src_port", dstPort = "dst_port"
        case `protocol`, length, timestamp
        case tcpFlags = "tcp_flags"
    }

    /// Any key, to name unknown fields.
    struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    init(from decoder: any Decoder) throws {
        let all = try decoder.container(keyedBy: AnyKey.self)
        if let unknown = all.allKeys.first(where: { !Self.knownKeys.contains($0.stringValue) }) {
            throw DecodingError.dataCorruptedError(forKey: unknown, in: all, debugDescription: "unknown field")
        }
        let c = try decoder.container(keyedBy: Key.self)
        func address(_ key: Key) throws -> IPAddress {
            let text = try c.decode(String.self, forKey: key)
            guard let a = IPAddress(text) else {
                throw DecodingError.dataCorruptedError(forKey: key, in: c, debugDescription: "not an IPv4 or IPv6 address: \"\(API.quoted(text))\"")
            }
            return a
        }
        let src = try address(.srcIP)
        let dst = try address(.dstIP)
        guard src.isIPv4 == dst.isIPv4 else {
            throw DecodingError.dataCorruptedError(forKey: .dstIP, in: c, debugDescription: "address family differs from src_ip")
        }
        func port(_ key: Key) throws -> UInt16 {
            guard let value = try c.decodeIfPresent(Int.self, forKey: key) else { return 0 }
            guard (0...65535).contains(value) else {
                throw DecodingError.dataCorruptedError(forKey: key, in: c, debugDescription: "port \(value) outside 0...65535")
            }
            return UInt16(value)
        }
        for key in [Key.protocol, .timestamp] where !c.contains(key) {
            throw DecodingError.keyNotFound(key, .init(codingPath: c.codingPath, debugDescription: "missing"))
        }
        let protocolNumber = try Self.protocolNumber(c)
        let length = try c.decode(Int.self, forKey: .length)
        guard (20...65575).contains(length) else {
            throw DecodingError.dataCorruptedError(forKey: .length, in: c, debugDescription: "IP length \(length) outside 20...65575")
        }
        let timestampNs = try Self.timestamp(c)
        let flags = try Self.tcpFlags(c)
        packet = PacketSummary(
            timestampNs: timestampNs, source: src, destination: dst,
            sourcePort: try port(.srcPort), destinationPort: try port(.dstPort), ipProtocol: protocolNumber,
            ipLength: UInt32(length), tcpFlags: flags)
    }

    private typealias Fields = KeyedDecodingContainer<Key>

    private static let knownKeys = Set(Key.allCases.map(\.rawValue))

    /// `protocol`: a number, or a name such as "tcp".
    private static func protocolNumber(_ c: Fields) throws -> UInt8 {
        if let number = try? c.decode(Int.self, forKey: .protocol) {
            guard (0...255).contains(number) else {
                throw DecodingError.dataCorruptedError(forKey: .protocol, in: c, debugDescription: "protocol number \(number) outside 0...255")
            }
            return UInt8(number)
        }
        if let name = try? c.decode(String.self, forKey: .protocol) {
            guard let n = IPProtocol.number(name) else {
                throw DecodingError.dataCorruptedError(forKey: .protocol, in: c, debugDescription: "unknown protocol \"\(API.quoted(name))\"")
            }
            return n
        }
        throw DecodingError.dataCorruptedError(forKey: .protocol, in: c, debugDescription: "expected a protocol name or number")
    }

    /// `timestamp`: epoch seconds or RFC 3339 text, within the range FlowForest's times hold.
    private static func timestamp(_ c: Fields) throws -> UInt64 {
        if let seconds = try? c.decode(Double.self, forKey: .timestamp) {
            // The range check also catches a value sent in ms or ns.
            guard seconds > 0, let ns = Timestamp.nanoseconds(epochSeconds: seconds) else {
                throw DecodingError.dataCorruptedError(forKey: .timestamp, in: c, debugDescription: "epoch seconds \(seconds) outside \(Timestamp.rangeDescription)")
            }
            return ns
        }
        if let text = try? c.decode(String.self, forKey: .timestamp) {
            guard let ns = Timestamp.parseRFC3339(text) else {
                throw DecodingError.dataCorruptedError(forKey: .timestamp, in: c, debugDescription: "not an RFC 3339 time from \(Timestamp.rangeDescription): \"\(API.quoted(text))\"")
            }
            return ns
        }
        throw DecodingError.dataCorruptedError(forKey: .timestamp, in: c, debugDescription: "expected RFC 3339 text or epoch seconds")
    }

    private static let flagNames: [String: TCPFlags] = [
        "FIN": .fin, "SYN": .syn, "RST": .rst, "PSH": .psh, "ACK": .ack, "URG": .urg, "ECE": .ece, "CWR": .cwr,
    ]

    /// `tcp_flags`: names, any ASCII case; absent is none.
    private static func tcpFlags(_ c: Fields) throws -> TCPFlags {
        var flags: TCPFlags = []
        for name in try c.decodeIfPresent([String].self, forKey: .tcpFlags) ?? [] {
            // ASCII case only: Unicode upper-casing would read "ſyn" as SYN.
            let upper = String(decoding: name.utf8.map { $0 >= 0x61 && $0 <= 0x7A ? $0 - 0x20 : $0 }, as: UTF8.self)
            guard let f = flagNames[upper] else {
                throw DecodingError.dataCorruptedError(forKey: .tcpFlags, in: c, debugDescription: "unknown TCP flag \"\(API.quoted(name))\"")
            }
            flags.insert(f)
        }
        return flags
    }

    /// Decodes a whole request; any error names the record index and field.
    /// - Parameter window: packet times accepted (see
    ///   ``ServerConfiguration/ingestWindow(nowNs:)``).
    static func decodeAll(_ data: Data, maxRecords: Int, window: Range<UInt64> = 0..<Timestamp.endNs) throws(IngestError) -> [PacketSummary] {
        do {
            let records = try JSONDecoder().decode([IngestRecord].self, from: data)
            guard records.count <= maxRecords else { throw IngestError.tooMany(records.count, maxRecords) }
            if let index = records.firstIndex(where: { !window.contains($0.packet.timestampNs) }) {
                let t = records[index].packet.timestampNs
                throw IngestError.invalid("record \(index), field timestamp: \(Timestamp.rfc3339(nanoseconds: t)) is outside the accepted window "
                    + "\(Timestamp.rfc3339(nanoseconds: window.lowerBound)) to \(Timestamp.rfc3339(nanoseconds: window.upperBound - 1)) "
                    + "around the server clock (--ingest-max-age, --ingest-max-skew)")
            }
            return records.map(\.packet)
        } catch let error as IngestError {
            throw error
        } catch let error as DecodingError {
            throw IngestError.invalid(describe(error))
        } catch {
            throw IngestError.invalid("invalid JSON: \(error)")
        }
    }

    static func describe(_ error: DecodingError) -> String {
        func place(_ path: [any CodingKey]) -> String {
            var parts: [String] = []
            for key in path {
                if let index = key.intValue { parts.append("record \(index)") } else { parts.append("field \(API.quoted(key.stringValue))") }
            }
            return parts.isEmpty ? "body" : parts.joined(separator: ", ")
        }
        switch error {
        case .typeMismatch(let type, let context):
            if context.codingPath.isEmpty { return "body: expected a JSON array of records" }
            return "\(place(context.codingPath)): expected \(typeName(type))"
        case .valueNotFound(let type, let context):
            return "\(place(context.codingPath)): null where \(typeName(type)) is required"
        case .keyNotFound(let key, let context):
            return "\(place(context.codingPath + [key])): missing"
        case .dataCorrupted(let context):
            if context.codingPath.isEmpty { return "body: not valid JSON" }
            return "\(place(context.codingPath)): \(context.debugDescription)"
        @unknown default:
            return "invalid request: \(error)"
        }
    }

    static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: return "a string"
        case is Int.Type, is Double.Type: return "a number"
        case is [String].Type: return "an array of strings"
        case is [IngestRecord].Type: return "a JSON array of records"
        default: return type is any Collection.Type ? "an array" : "an object"
        }
    }
}

/// Why an ingest request was refused.
enum IngestError: Error, CustomStringConvertible {
    case invalid(String)
    case tooMany(Int, Int)

    var description: String {
        switch self {
        case .invalid(let s): return s
        case .tooMany(let n, let max): return "\(n) records in one request; at most \(max) are accepted"
        }
    }
}
