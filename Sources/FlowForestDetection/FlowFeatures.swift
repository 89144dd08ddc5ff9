#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
public import FlowForestCore

/// The flow vector of one record, in ``FeatureSchema/flow`` order.
public enum FlowFeatures {
    /// 0 well-known (< 1024), 1 registered (< 49152), 2 ephemeral.
    public static func portClass(_ port: UInt16) -> Double {
        port < 1024 ? 0 : (port < 49152 ? 1 : 2)
    }

    /// 0 TCP, 1 UDP, 2 ICMP or ICMPv6, 3 anything else.
    public static func protocolClass(_ p: UInt8) -> Double {
        switch p {
        case IPProtocol.tcp: return 0
        case IPProtocol.udp: return 1
        case IPProtocol.icmp, IPProtocol.icmpv6: return 2
        default: return 3
        }
    }

    /// The vector of a flow record (its totals so far).
    public static func vector(of r: FlowRecord) -> [Double] {
        let f = r.forward, b = r.reverse
        let packets = Double(r.packets)
        let durationS = Double(r.durationNs) / 1e9
        // A one-packet flow has no duration; rates use at least 1 ms so they stay finite.
        let rateSpan = max(durationS, 0.001)
        let bytes = Double(r.bytes)
        let mean = packets > 0 ? bytes / packets : 0
        let sumSquares = Double(f.sumSquaredLength) + Double(b.sumSquaredLength)
        let variance = packets > 0 ? max(0, sumSquares / packets - mean * mean) : 0
        let minLength: Double
        switch (f.packets, b.packets) {
        case (0, 0): minLength = 0
        case (0, _): minLength = Double(b.minLength)
        case (_, 0): minLength = Double(f.minLength)
        default: minLength = Double(min(f.minLength, b.minLength))
        }
        let maxLength = Double(max(f.maxLength, b.maxLength))
        let iat = interArrival(f.packets >= b.packets ? f : b)
        let synReplied = b.synAckCount > 0 || b.packets > 0
        return [
            log1p(durationS),
            log1p(Double(f.packets)), log1p(Double(b.packets)),
            log1p(Double(f.bytes)), log1p(Double(b.bytes)),
            log1p(bytes / rateSpan), log1p(packets / rateSpan),
            log1p(minLength), log1p(mean), log1p(maxLength), log1p(variance.squareRoot()),
            log1p(iat.meanMs), log1p(iat.stdMs), log1p(iat.minMs), log1p(iat.maxMs),
            log1p(sum(f.synCount, b.synCount) + sum(f.synAckCount, b.synAckCount)),
            log1p(sum(f.finCount, b.finCount)), log1p(sum(f.rstCount, b.rstCount)),
            log1p(sum(f.pshCount, b.pshCount)), log1p(sum(f.ackCount, b.ackCount)),
            r.handshakeCompleted ? 1 : 0,
            r.ipProtocol == IPProtocol.tcp && f.synCount > 0 && !synReplied ? 1 : 0,
            log1p(Double(f.initialWindow)),
            log1p(Double(b.bytes)) - log1p(Double(f.bytes)),
            portClass(r.destinationPort),
            protocolClass(r.ipProtocol),
        ]
    }

    /// Flag counts of both directions added in 64 bits: each is a 32-bit
    /// kernel counter, and one long flow's two directions together pass
    /// 2^32 (a day of ACKs at 50,000 a second), which a 32-bit sum would trap on.
    /// Two arguments, not a variadic list: this runs for every flow vector,
    /// and a variadic call allocates its array.
    static func sum(_ a: UInt32, _ b: UInt32) -> Double { Double(UInt64(a) + UInt64(b)) }

    /// Inter-arrival statistics of one direction, in milliseconds.
    static func interArrival(_ d: DirectionStats) -> (meanMs: Double, stdMs: Double, minMs: Double, maxMs: Double) {
        guard d.packets >= 2 else { return (0, 0, 0, 0) }
        let gaps = Double(d.packets - 1)
        let meanUs = Double(d.iatSumUs) / gaps
        let varianceUs = max(0, Double(d.iatSumSquaresUs) / gaps - meanUs * meanUs)
        return (meanUs / 1000, varianceUs.squareRoot() / 1000, Double(d.iatMinUs) / 1000, Double(d.iatMaxUs) / 1000)
    }

    /// How regular a direction's packet gaps are, 0...1 (1 = a metronome):
    /// 1 − `strictness` × coefficient of variation, for directions with at
    /// least `minimumGaps` gaps. With `dropShortest`, the shortest gap is
    /// left out: a TCP connection's handshake ACK follows its SYN within a
    /// round trip, whatever rhythm the connection then keeps.
    static func regularity(_ d: DirectionStats, minimumGaps: UInt64 = 4, strictness: Double = 1, dropShortest: Bool = false) -> Double {
        guard d.packets > minimumGaps else { return 0 }
        let dropped = dropShortest ? Double(d.iatMinUs) : 0
        let gaps = Double(d.packets - 1) - (dropShortest ? 1 : 0)
        let mean = (Double(d.iatSumUs) - dropped) / gaps
        guard mean > 0 else { return 0 }
        let sd = max(0, (Double(d.iatSumSquaresUs) - dropped * dropped) / gaps - mean * mean).squareRoot()
        return max(0, 1 - strictness * sd / mean)
    }
}
