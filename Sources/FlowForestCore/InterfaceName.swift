/// Where a flow was observed, held inline in 32 bytes: a local interface's
/// name (up to ``localCapacity`` bytes of UTF-8), or the exporter that
/// reported a collected flow (its address; the exporter's interface is the
/// record's `interfaceIndex`).
///
/// A ``FlowRecord`` holding one is plain bytes: every stage copies every
/// record, and a `String` in it made each copy retain and release it.
public struct InterfaceName: Hashable, Sendable {
    /// Byte 0: the kind; byte 1: a local name's length; bytes 2...31: the
    /// name, or for an exporter its address in words 2 and 3.
    @usableFromInline var words: (UInt64, UInt64, UInt64, UInt64)

    private enum Kind: UInt8 { case none = 0, local = 1, exporter = 2 }

    /// Bytes of a local interface's name kept: Linux names have at most
    /// 15, libpcap's device names a few more; a longer one is cut at a
    /// character boundary.
    public static let localCapacity = 30

    /// No observation point known.
    public static let none = InterfaceName(words: (0, 0, 0, 0))

    private init(words: (UInt64, UInt64, UInt64, UInt64)) {
        self.words = words
    }

    /// A local interface, by its name.
    public init(local name: String) {
        // Whole scalars while they fit: a cut never splits a character's bytes.
        var utf8: [UInt8] = []
        for scalar in name.unicodeScalars {
            let bytes = UTF8.encode(scalar)!
            guard utf8.count + bytes.count <= Self.localCapacity else { break }
            utf8.append(contentsOf: bytes)
        }
        var bytes = [UInt8](repeating: 0, count: 32)
        bytes[0] = Kind.local.rawValue
        bytes[1] = UInt8(utf8.count)
        bytes.replaceSubrange(2..<(2 + utf8.count), with: utf8)
        self.words = (Self.word(bytes, 0), Self.word(bytes, 1), Self.word(bytes, 2), Self.word(bytes, 3))
    }

    /// The exporter that reported a collected flow.
    public init(exporter: IPAddress) {
        words = (UInt64(Kind.exporter.rawValue), 0, exporter.high, exporter.low)
    }

    /// Bytes are numbered little-endian within each word, whatever the
    /// machine's order: plain integer arithmetic, no raw-memory reads (an
    /// optimised build miscompiled reading the tuple's bytes in place).
    private static func word(_ bytes: [UInt8], _ index: Int) -> UInt64 {
        (0..<8).reduce(0) { $0 | UInt64(bytes[index * 8 + $1]) << (8 * UInt64($1)) }
    }

    /// Byte `index` (0...31) as ``word(_:_:)`` packs it.
    private func byte(_ index: Int) -> UInt8 {
        let word: UInt64
        switch index / 8 {
        case 0: word = words.0
        case 1: word = words.1
        case 2: word = words.2
        default: word = words.3
        }
        return UInt8(truncatingIfNeeded: word >> (8 * UInt64(index % 8)))
    }

    /// A name as ``name(interfaceIndex:)`` writes it (read back from a
    /// store, or given by a test): an address names an exporter, and an
    /// address, `%` and a number an exporter and the interface index that
    /// goes with it (0 without one); anything else a local interface, whose
    /// index the name does not say; nil or empty, none.
    public static func parse(_ name: String?) -> (name: InterfaceName, interfaceIndex: UInt32?) {
        guard let name, !name.isEmpty else { return (.none, nil) }
        let parts = name.split(separator: "%", maxSplits: 1, omittingEmptySubsequences: false)
        if let exporter = IPAddress(String(parts[0])) {
            if parts.count == 1 { return (InterfaceName(exporter: exporter), 0) }
            // Only as ``name(interfaceIndex:)`` writes an index: plain digits, not 0.
            if let index = UInt32(parts[1]), index != 0, String(index) == parts[1] {
                return (InterfaceName(exporter: exporter), index)
            }
        }
        return (InterfaceName(local: name), nil)
    }

    private var kind: Kind { Kind(rawValue: byte(0)) ?? .none }

    /// True when no observation point is known.
    public var isNone: Bool { kind == .none }

    /// The exporter of a collected flow.
    public var exporter: IPAddress? {
        kind == .exporter ? IPAddress(high: words.2, low: words.3) : nil
    }

    /// The name shown and stored: a local interface's name; for a
    /// collected flow its exporter, with `%` and the exporter's interface
    /// index unless that is 0.
    public func name(interfaceIndex: UInt32) -> String? {
        switch kind {
        case .none:
            return nil
        case .exporter:
            let exporter = IPAddress(high: words.2, low: words.3)
            return interfaceIndex == 0 ? "\(exporter)" : "\(exporter)%\(interfaceIndex)"
        case .local:
            let count = min(Int(byte(1)), Self.localCapacity)
            return String(decoding: (2..<(2 + count)).map(byte), as: UTF8.self)
        }
    }

    public static func == (a: InterfaceName, b: InterfaceName) -> Bool {
        a.words.0 == b.words.0 && a.words.1 == b.words.1 && a.words.2 == b.words.2 && a.words.3 == b.words.3
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(words.0)
        hasher.combine(words.1)
        hasher.combine(words.2)
        hasher.combine(words.3)
    }
}
