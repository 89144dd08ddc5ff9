/// An address block, `198.18.0.0/15` or `2001:db8::/32`; a bare address is
/// a block of one.
public struct AddressBlock: Sendable, Hashable, CustomStringConvertible {
    /// The first address of the block (host bits zero).
    public let network: IPAddress
    /// Prefix length in the address's own family: 0–32 for IPv4, 0–128 for IPv6.
    public let prefixLength: Int

    /// Parses `ADDRESS[/LENGTH]`; nil for anything else, or host bits set beyond the prefix.
    public init?(_ text: some StringProtocol) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let address = IPAddress(parts[0]) else { return nil }
        let maxLength = address.isIPv4 ? 32 : 128
        var length = maxLength
        if parts.count == 2 {
            guard (1...3).contains(parts[1].utf8.count), parts[1].utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }),
                  let n = Int(parts[1]), n <= maxLength else { return nil }
            length = n
        }
        guard Self.masked(address, bits: Self.mappedBits(length, ipv4: address.isIPv4)) == address else { return nil }
        network = address
        prefixLength = length
    }

    /// Parses `ADDRESS[/LENGTH]` like ``init(_:)``, clearing host bits
    /// beyond the prefix (`198.18.0.7/15` is `198.18.0.0/15`).
    public init?(masking text: some StringProtocol) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let address = IPAddress(parts[0]) else { return nil }
        let network = Self.masked(address, bits: Self.mappedBits(parts.count == 2 ? Int(parts[1]) ?? -1 : (address.isIPv4 ? 32 : 128),
                                                                 ipv4: address.isIPv4))
        self.init(parts.count == 2 ? "\(network)/\(parts[1])" : "\(network)")
    }

    /// True when `address` lies in the block (an IPv4 block holds IPv4 addresses only).
    public func contains(_ address: IPAddress) -> Bool {
        guard address.isIPv4 == network.isIPv4 else { return false }
        return Self.masked(address, bits: Self.mappedBits(prefixLength, ipv4: network.isIPv4)) == network
    }

    public var description: String { "\(network)/\(prefixLength)" }

    /// IPv4 is stored IPv4-mapped: its prefix starts after the 96-bit `::ffff:` part.
    private static func mappedBits(_ length: Int, ipv4: Bool) -> Int { ipv4 ? 96 + length : length }

    private static func masked(_ a: IPAddress, bits: Int) -> IPAddress {
        func mask(_ n: Int) -> UInt64 { n <= 0 ? 0 : (n >= 64 ? .max : ~(UInt64.max >> UInt64(n))) }
        return IPAddress(high: a.high & mask(bits), low: a.low & mask(bits - 64))
    }
}

/// An admin's "this is expected": anomalies it matches are still stored,
/// marked suppressed, but join no incident and raise no alert.
///
/// Every given criterion must match; at least one is required. A rule that
/// names a label and an actor or target also covers that actor's or
/// target's "unusual …" anomalies: they are the odd flows of the same
/// behaviour, which its incident takes in.
public struct Suppression: Sendable, Hashable {
    /// Where a rule comes from.
    public enum Origin: String, Sendable, Hashable, Codable {
        /// Made through the API; stored, editable.
        case api
        /// From `--suppress FILE`; read at start, not editable through the API.
        case file
    }

    /// Assigned by the store; nil for rules from a file.
    public var id: Int64?
    /// Matches the anomaly's source.
    public var actor: AddressBlock?
    /// Matches the anomaly's destination.
    public var target: AddressBlock?
    /// Matches the anomaly's destination port (an anomaly without one does not match).
    public var ports: [UInt16]
    public var label: AnomalyLabel?
    /// After this time (ms since the epoch) the rule matches nothing.
    public var expiresMs: Int64?
    /// Who made it and why.
    public var createdBy: String
    public var reason: String
    public var createdMs: Int64
    public var origin: Origin

    public init(id: Int64? = nil, actor: AddressBlock? = nil, target: AddressBlock? = nil, ports: [UInt16] = [],
                label: AnomalyLabel? = nil, expiresMs: Int64? = nil, createdBy: String, reason: String,
                createdMs: Int64, origin: Origin = .api) {
        self.id = id
        self.actor = actor
        self.target = target
        self.ports = ports
        self.label = label
        self.expiresMs = expiresMs
        self.createdBy = createdBy
        self.reason = reason
        self.createdMs = createdMs
        self.origin = origin
    }

    /// True when it names at least one criterion (an empty rule would silence everything).
    public var hasCriteria: Bool { actor != nil || target != nil || !ports.isEmpty || label != nil }

    /// True when the rule covers `anomaly` at `nowMs`.
    public func matches(_ anomaly: Anomaly, nowMs: Int64) -> Bool {
        guard hasCriteria else { return false }
        if let expiresMs, nowMs >= expiresMs { return false }
        if let actor, !(anomaly.sourceAddress.map(actor.contains) ?? false) { return false }
        if let target, !(anomaly.destinationAddress.map(target.contains) ?? false) { return false }
        if !ports.isEmpty, !(anomaly.destinationPort.map(ports.contains) ?? false) { return false }
        if let label, anomaly.label != label {
            guard !anomaly.label.isSpecific, actor != nil || target != nil else { return false }
        }
        return true
    }
}
