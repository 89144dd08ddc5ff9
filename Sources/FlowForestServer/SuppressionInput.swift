public import FlowForestCore
import Foundation

/// A suppression rule as people write it — the body of `POST` and `PUT
/// /api/suppressions` and each element of a `--suppress FILE` array:
/// `{"actor": "198.18.0.0/15", "target": "198.18.1.1", "ports": [22],
/// "label": "port scan", "expires": "2026-12-31T00:00:00Z", "reason": "…"}`.
/// Everything from outside is checked; the first problem is an error naming its field.
public enum SuppressionInput {
    /// Address blocks exactly as openapi.yaml's `AddressBlock` pattern states
    /// them (a test keeps the two equal): IPv4 or IPv6, an optional prefix
    /// length without leading zeros.
    static let blockPattern = #"^(((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(/(3[0-2]|[12]?[0-9]))?|(([0-9a-fA-F]{1,4}:){7}[0-9a-fA-F]{1,4}|([0-9a-fA-F]{1,4}:){1,7}:|([0-9a-fA-F]{1,4}:){1,6}:[0-9a-fA-F]{1,4}|([0-9a-fA-F]{1,4}:){1,5}(:[0-9a-fA-F]{1,4}){1,2}|([0-9a-fA-F]{1,4}:){1,4}(:[0-9a-fA-F]{1,4}){1,3}|([0-9a-fA-F]{1,4}:){1,3}(:[0-9a-fA-F]{1,4}){1,4}|([0-9a-fA-F]{1,4}:){1,2}(:[0-9a-fA-F]{1,4}){1,5}|[0-9a-fA-F]{1,4}:(:[0-9a-fA-F]{1,4}){1,6}|:((:[0-9a-fA-F]{1,4}){1,7}|:))(/(12[0-8]|1[01][0-9]|[1-9]?[0-9]))?)$"#
    private static let blockExpression = try! NSRegularExpression(pattern: blockPattern)
    static let fields: Set<String> = ["actor", "target", "ports", "label", "expires", "reason"]
    static let maxPorts = 64
    static let maxReason = 500

    /// Why an input is refused: the field and what is wrong, e.g. `actor: not an address or address block: "1.2.3"`.
    public struct Invalid: Error, CustomStringConvertible {
        public var description: String
    }

    /// A rule from one JSON object, made by `who` at `nowMs`.
    public static func rule(from object: Any, who: String, nowMs: Int64, origin: Suppression.Origin = .api) throws(Invalid) -> Suppression {
        guard let o = object as? [String: Any] else { throw Invalid(description: "expected a JSON object with reason and at least one of actor, target, ports, label") }
        if let unknown = o.keys.sorted().first(where: { !fields.contains($0) }) {
            throw Invalid(description: "\(API.quoted(unknown)): unknown field; expected actor, target, ports, label, expires, reason")
        }
        var rule = Suppression(actor: try block(o["actor"], field: "actor"), target: try block(o["target"], field: "target"),
                               ports: try ports(o["ports"]), label: try label(o["label"]), expiresMs: try expires(o["expires"]),
                               createdBy: who, reason: try reason(o["reason"], origin: origin), createdMs: nowMs, origin: origin)
        guard rule.hasCriteria else { throw Invalid(description: "a rule needs at least one of actor, target, ports, label") }
        rule.id = nil
        return rule
    }

    /// The rules of a `--suppress FILE`: a JSON array of rule objects.
    public static func load(path: String, nowMs: Int64) throws(Invalid) -> [Suppression] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw Invalid(description: "--suppress \(path): cannot read it")
        }
        guard data.count <= 4 * 1024 * 1024, let array = (try? JSONSerialization.jsonObject(with: data)) as? [Any] else {
            throw Invalid(description: "--suppress \(path): expected a JSON array of rules (at most 4 MiB)")
        }
        var rules: [Suppression] = []
        for (i, element) in array.enumerated() {
            do {
                rules.append(try rule(from: element, who: "file:\(path)", nowMs: nowMs, origin: .file))
            } catch {
                throw Invalid(description: "--suppress \(path): rule \(i): \(error.description)")
            }
        }
        return rules
    }

    private static func block(_ value: Any?, field: String) throws(Invalid) -> AddressBlock? {
        guard let value else { return nil }
        guard let text = value as? String, text.utf8.count <= 49,
              blockExpression.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) != nil,
              let block = AddressBlock(masking: text) else {
            throw Invalid(description: "\(field): not an address or address block (198.18.0.0/15, 2001:db8::/32): \(API.quoted("\(value)"))")
        }
        return block
    }

    private static func ports(_ value: Any?) throws(Invalid) -> [UInt16] {
        guard let value else { return [] }
        guard let array = value as? [Any], (1...maxPorts).contains(array.count) else {
            throw Invalid(description: "ports: expected 1 to \(maxPorts) port numbers")
        }
        // Decoded by type: JSONSerialization gives 0 and 1 as NSNumbers that
        // also pass for booleans, and true and 1.0 as numbers that pass for 1.
        guard let data = try? JSONSerialization.data(withJSONObject: array),
              let numbers = try? JSONDecoder().decode([Int].self, from: data),
              numbers.allSatisfy({ (0...65535).contains($0) }) else {
            throw Invalid(description: "ports: expected integers 0...65535, got \(API.quoted("\(array)"))")
        }
        return numbers.map { UInt16($0) }
    }

    private static func label(_ value: Any?) throws(Invalid) -> AnomalyLabel? {
        guard let value else { return nil }
        guard let text = value as? String, let label = AnomalyLabel(rawValue: text) else {
            throw Invalid(description: "label: expected one of \(AnomalyLabel.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return label
    }

    private static func expires(_ value: Any?) throws(Invalid) -> Int64? {
        guard let value else { return nil }
        // Clamped like query bounds: an expiry an offset puts before the
        // epoch has simply passed.
        // Epoch seconds as a JSON number too, decoded by type as ports are,
        // so `true` and fractions are refused.
        let seconds = value is String ? nil : (try? JSONSerialization.data(withJSONObject: [value]))
            .flatMap { try? JSONDecoder().decode([UInt64].self, from: $0).first }
        guard let text = seconds.map(String.init) ?? value as? String, let ns = Timestamp.parseEpochSeconds(text) ?? Timestamp.parseRFC3339Clamped(text) else {
            throw Invalid(description: "expires: expected an RFC 3339 time or epoch seconds from \(Timestamp.rangeDescription)")
        }
        return Int64(ns / 1_000_000)
    }

    private static func reason(_ value: Any?, origin: Suppression.Origin) throws(Invalid) -> String {
        // It is logged and shown to people: no character that breaks or
        // disguises a line (a forged log line after a newline, an escape
        // sequence for a terminal, a bidi override); NUL is one of them.
        // The API refuses them; an operator's rules file, which earlier
        // versions read with tabs and newlines in a reason, has them read
        // as spaces rather than stop the service at start.
        var value = value
        if origin == .file, let text = value as? String {
            value = String(String.UnicodeScalarView(text.unicodeScalars.map { API.isUnsafeInText($0) ? " " : $0 }))
        }
        guard let text = value as? String, (1...maxReason).contains(text.unicodeScalars.count),
              !text.unicodeScalars.contains(where: API.isUnsafeInText) else {
            throw Invalid(description: "reason: 1 to \(maxReason) characters saying why this is expected, on one line, without control characters")
        }
        return text
    }
}

/// A suppression rule in its JSON shape (docs/api.md).
struct SuppressionJSON: Encodable {
    var rule: Suppression

    enum CodingKeys: String, CodingKey {
        case id, actor, target, ports, label, expires, reason, source
        case createdBy = "created_by"
        case created
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(rule.id, forKey: .id)
        try c.encode(rule.actor?.description, forKey: .actor)
        try c.encode(rule.target?.description, forKey: .target)
        try c.encode(rule.ports, forKey: .ports)
        try c.encode(rule.label, forKey: .label)
        try c.encode(rule.expiresMs.map { Timestamp.rfc3339(milliseconds: $0) }, forKey: .expires)
        try c.encode(rule.createdBy, forKey: .createdBy)
        try c.encode(rule.reason, forKey: .reason)
        try c.encode(Timestamp.rfc3339(milliseconds: rule.createdMs), forKey: .created)
        try c.encode(rule.origin, forKey: .source)
    }
}
