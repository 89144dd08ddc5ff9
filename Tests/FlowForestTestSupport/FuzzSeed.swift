import Foundation

/// Reproducible randomness for fuzz and property tests: a fixed default seed,
/// overridden with `FLOWFOREST_FUZZ_SEED=N` to replay a failure or explore
/// (`make fuzz` draws a new seed each run). Failure messages carry the seed.
public struct FuzzSeed: Sendable, CustomStringConvertible {
    public let value: UInt64

    /// The seed from `FLOWFOREST_FUZZ_SEED`, else `defaultValue`.
    public static func current(default defaultValue: UInt64 = 0x466c_6f77_466f_7265) -> FuzzSeed {
        let text = ProcessInfo.processInfo.environment["FLOWFOREST_FUZZ_SEED"] ?? ""
        return FuzzSeed(value: UInt64(text) ?? defaultValue)
    }

    public init(value: UInt64) { self.value = value }

    /// A generator starting from this seed.
    public func generator() -> SplitMix64 { SplitMix64(seed: value) }

    /// `count` scaled by `FLOWFOREST_FUZZ_SCALE` (default 1): `make test`
    /// runs each fuzz loop briefly, `make fuzz` many times longer.
    public static func iterations(_ count: Int) -> Int {
        let scale = Int(ProcessInfo.processInfo.environment["FLOWFOREST_FUZZ_SCALE"] ?? "") ?? 1
        return count * max(1, min(scale, 10_000))
    }

    public var description: String { "seed \(value) (replay: FLOWFOREST_FUZZ_SEED=\(value))" }
}

/// SplitMix64: small, fast and fully determined by its seed.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
