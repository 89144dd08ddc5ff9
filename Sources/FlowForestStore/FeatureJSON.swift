import Foundation

/// An anomaly's named features as JSON, byte for byte as `JSONEncoder`
/// with `.sortedKeys` writes them, without going through `Encodable`: for
/// each of the thousands of anomalies a busy poll reports, the encoder's
/// keyed container boxed, cast and sorted every one of up to 67 values,
/// the largest part of writing the anomaly.
enum FeatureJSON {
    /// The object `encoder` (sorted keys, no other formatting) would write.
    /// Names of anything but lowercase ASCII letters, digits and underscores, whose
    /// order or escaping could differ, and values that are not finite (the
    /// encoder's error) are left to `encoder`.
    static func encode(_ features: [String: Double], encoder: JSONEncoder) throws -> String {
        guard features.allSatisfy({ isPlainName($0.key) && $0.value.isFinite }) else {
            return String(decoding: try encoder.encode(features), as: UTF8.self)
        }
        var out = "{"
        out.reserveCapacity(features.count * 32)
        for (i, name) in features.keys.sorted().enumerated() {
            if i > 0 { out += "," }
            out += "\""
            out += name
            out += "\":"
            out += number(features[name]!)
        }
        out += "}"
        return out
    }

    /// A finite double as the encoder writes it: its description without a trailing ".0".
    static func number(_ value: Double) -> String {
        var text = value.description
        if text.hasSuffix(".0") { text.removeLast(2) }
        return text
    }

    /// Lowercase ASCII letters, digits and underscores only (every feature
    /// name): sorted by `<` as the encoder sorts them, written without escapes.
    static func isPlainName(_ name: String) -> Bool {
        name.utf8.allSatisfy { c in
            (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z")) || (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9")) || c == UInt8(ascii: "_")
        }
    }
}
