#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A small, fast, seedable generator (SplitMix64): the same seed grows the
/// same forest on every machine, which model tests and retraining rely on.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1) with 53 random bits.
    @inline(__always)
    mutating func unit() -> Double { Double(next() >> 11) * 0x1.0p-53 }

    /// Uniform in 0..<bound (Lemire's multiply-shift; the tiny bias is irrelevant here).
    @inline(__always)
    mutating func below(_ bound: Int) -> Int {
        Int((UInt64(bound).multipliedFullWidth(by: next())).high)
    }

    /// Standard normal (Box–Muller), for hyperplane normals.
    mutating func gaussian() -> Double {
        var u = unit()
        while u <= .leastNonzeroMagnitude { u = unit() }
        return (-2 * log(u)).squareRoot() * cos(2 * .pi * unit())
    }
}
