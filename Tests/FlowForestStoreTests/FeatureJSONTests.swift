@testable import FlowForestStore
import Foundation
import Testing

@Suite("Feature JSON as JSONEncoder writes it")
struct FeatureJSONTests {
    /// A sorted-keys encoder, as the store uses.
    static func reference(_ features: [String: Double]) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return String(decoding: try encoder.encode(features), as: UTF8.self)
    }

    static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = .sortedKeys
        return e
    }()

    /// Names of every shape the features take: windows (1s, 10s, 100s sort as text), digits, underscores.
    static let names = [
        "bytes_received_100s", "bytes_received_10s", "bytes_received_1s", "distinct_dst_addrs_100s", "distinct_dst_pairs_10s",
        "syn_synack_ratio_10s", "sent_received_byte_ratio_100s", "group_members", "fwd_bytes", "iat_min_ms", "a1", "a_1", "a10",
        "a9", "ab", "a_b", "z",
    ]

    @Test("byte for byte the encoder's output over many values, integral and not, tiny and huge")
    func matchesEncoder() throws {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> UInt64 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return state
        }
        let specials: [Double] = [0, -0.0, 1, -1, 0.1, 2.0 / 3, 1e15, 1e16, 1e21, 1e22, 1e-7, 4e-5, 1.5e300, .leastNonzeroMagnitude,
                                  9_007_199_254_740_993, 123_456_789_012_345_678]
        for trial in 0..<5000 {
            var features: [String: Double] = [:]
            for name in Self.names where trial == 0 || next() % 2 == 0 {
                let value: Double
                switch next() % 4 {
                case 0: value = specials[Int(next() % UInt64(specials.count))]
                case 1: value = Double(Int64(next() % 200_001) - 100_000)
                case 2: value = Double(next() % 1_000_000_000) / 997
                default: value = Double(bitPattern: next())
                }
                if value.isFinite { features[name] = value }
            }
            #expect(try FeatureJSON.encode(features, encoder: Self.encoder) == Self.reference(features))
        }
        #expect(try FeatureJSON.encode([:], encoder: Self.encoder) == Self.reference([:]))
    }

    @Test("names it does not handle itself, and non-finite values, go to the encoder")
    func fallsBack() throws {
        let odd: [String: Double] = ["Upper": 1, "lower": 2, "with/slash": 3, "ünï": 4.5]
        #expect(try FeatureJSON.encode(odd, encoder: Self.encoder) == Self.reference(odd))
        #expect(throws: (any Error).self) { try FeatureJSON.encode(["a": .nan], encoder: Self.encoder) }
        #expect(throws: (any Error).self) { try FeatureJSON.encode(["a": .infinity], encoder: Self.encoder) }
    }
}
