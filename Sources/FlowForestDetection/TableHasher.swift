import FlowForestCore

/// The hash of a ``TrackerTable``: keyed folded multiplies (foldhash's
/// construction) over a key's 64-bit words, with three keys drawn at random
/// per table.
///
/// The tracker hashes two or three keys for every record of every poll, and
/// Swift's seeded SipHash cost some 20 ns a key, about a tenth of the
/// tracker's time. A folded multiply costs a few nanoseconds. Addresses a
/// sender picks still cannot aim at one probe chain: the keys are secret
/// and the table's layout is never shown, so colliding keys cannot be
/// computed in advance.
struct TableHasher: Sendable {
    private let k0: UInt64
    private let k1: UInt64
    private let k2: UInt64

    init() {
        var random = SystemRandomNumberGenerator()
        // Odd, so no key can zero a product on its own.
        k0 = random.next() | 1
        k1 = random.next() | 1
        k2 = random.next() | 1
    }

    /// The high and low words of the full product, folded.
    @inline(__always) private static func fold(_ a: UInt64, _ b: UInt64) -> UInt64 {
        let p = a.multipliedFullWidth(by: b)
        return p.high ^ p.low
    }

    @inline(__always) private func finish(_ h: UInt64) -> Int {
        Int(truncatingIfNeeded: Self.fold(h ^ k2, k0))
    }

    /// The hash of a two-word key (an address).
    @inline(__always) func hash(_ a: UInt64, _ b: UInt64) -> Int {
        finish(Self.fold(a ^ k0, b ^ k1))
    }

    /// The hash of a three-word key (an address and a service).
    @inline(__always) func hash(_ a: UInt64, _ b: UInt64, _ c: UInt64) -> Int {
        finish(Self.fold(Self.fold(a ^ k0, b ^ k1) ^ c ^ k2, k1))
    }

    /// The hash of a five-word key (two addresses and a service).
    @inline(__always) func hash(_ a: UInt64, _ b: UInt64, _ c: UInt64, _ d: UInt64, _ e: UInt64) -> Int {
        var h = Self.fold(a ^ k0, b ^ k1)
        h = Self.fold(h ^ c ^ k2, d ^ k1)
        h = Self.fold(h ^ e ^ k1, k2)
        return finish(h)
    }
}

/// A key of a ``TrackerTable``.
protocol TrackerKey: Hashable {
    /// The key's hash under the table's `hasher`.
    func hash(with hasher: TableHasher) -> Int
}

extension IPAddress: TrackerKey {
    func hash(with hasher: TableHasher) -> Int { hasher.hash(high, low) }
}

extension BeaconScore.ServiceKey: TrackerKey {
    func hash(with hasher: TableHasher) -> Int {
        hasher.hash(destination.high, destination.low, UInt64(port) << 8 | UInt64(ipProtocol))
    }
}

extension BeaconScore.PairKey: TrackerKey {
    func hash(with hasher: TableHasher) -> Int {
        hasher.hash(source.high, source.low, service.destination.high, service.destination.low,
                    UInt64(service.port) << 8 | UInt64(service.ipProtocol))
    }
}
