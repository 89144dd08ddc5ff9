import FlowForestCore

/// Beacon scoring: how regularly one source connects to one destination
/// service, from the start times and sizes of its last connections.
enum BeaconScore {
    /// Connections remembered per pair.
    static let history = 8

    /// A destination service: what sources keep their beacon histories towards.
    struct ServiceKey: Hashable {
        var destination: IPAddress
        var port: UInt16
        var ipProtocol: UInt8

        init(_ r: FlowRecord) {
            destination = r.destinationAddress
            port = r.destinationPort
            ipProtocol = r.ipProtocol
        }
    }

    /// One source and one destination service: what a beacon's history is kept for.
    struct PairKey: Hashable {
        var source: IPAddress
        var service: ServiceKey

        init(_ r: FlowRecord) {
            source = r.sourceAddress
            service = ServiceKey(r)
        }
    }

    /// Sources with a history towards one service from which it is shared
    /// infrastructure (RITA's prevalence): every host of a site keeps the
    /// time with the same NTP server, checks the same update server and
    /// pushes to the same metrics collector on a timer, and those rhythms
    /// are the site's, not news. A beacon is a host's own rhythm to a
    /// service few others use; a command-and-control server that three or
    /// more hosts of one site call on a timer is left to the forest and the
    /// other features (the hosts still report an unusual destination).
    static let sharedServiceSources = 3

    /// One connection in a pair's history.
    struct Start {
        var startNs: UInt64
        var flowID: UInt64
        /// Bytes both ways as of the flow's latest record.
        var bytes: UInt64
        /// A lone packet that nothing answered, or a TCP connection that never
        /// got past its first SYN: a probe or a forged packet, not a check-in.
        var probe: Bool

        init(startNs: UInt64, flowID: UInt64, bytes: UInt64, probe: Bool = false) {
            self.startNs = startNs
            self.flowID = flowID
            self.bytes = bytes
            self.probe = probe
        }

        init(_ r: FlowRecord) {
            startNs = r.firstSeenNs
            flowID = r.id
            bytes = r.forward.bytes &+ r.reverse.bytes
            probe = r.ipProtocol == IPProtocol.tcp
                ? !r.handshakeCompleted && r.forward.packets <= 1
                : r.forward.packets <= 1 && r.reverse.packets == 0
        }
    }

    /// Regularity (0-1) of a pair's connections, oldest first, in the manner
    /// of RITA's beacon score: 1 − CV(gaps between starts) ×
    /// ``strictness(gaps:)`` − CV(bytes per connection) / 2, where CV
    /// is the coefficient of variation. Starts are the records' exact
    /// first-packet times; the newest connection's bytes are left out (it
    /// may still be under way). 0 with fewer than three gaps (seven when an
    /// earlier connection was a lone probe), or when the starts average
    /// under 200 ms apart (a burst, not a beacon).
    static func regularity(_ series: [Start]) -> Double {
        // Among thousands of forged flood sources each sending a few lone SYNs, some
        // short series look regular by chance; a series with probes in it (a beacon
        // to a dead or refusing server, or one-way datagrams) must fill the history.
        let needed = series.dropLast().contains(where: \.probe) ? history : 4
        guard series.count >= needed else { return 0 }
        let gaps = zip(series.dropFirst(), series).map { Double($0.startNs &- $1.startNs) }
        let timing = coefficientOfVariation(gaps)
        guard timing.mean >= 2e8 else { return 0 }
        let sizes = coefficientOfVariation(series.dropLast().map { Double($0.bytes) })
        return capped(max(0, 1 - timing.cv * strictness(gaps: gaps.count) - sizes.cv / 2), gaps: gaps.count)
    }

    /// Regularity that three gaps can reach at most: enough to name a
    /// beacon (0.8), never enough to be certain of one (0.92). Gaps that
    /// are sums of several random intervals (a client that queries its
    /// resolver every few page loads) vary far less than single random
    /// gaps, and among fifteen clients three of them agreed within 0.3 %
    /// now and then; a fourth gap is the certainty.
    static let threeGapCeiling = 0.9

    /// `value` held to ``threeGapCeiling`` when it rests on three gaps or fewer.
    static func capped(_ value: Double, gaps: Int) -> Double {
        gaps <= 3 ? min(value, threeGapCeiling) : value
    }

    private static func coefficientOfVariation(_ values: [Double]) -> (mean: Double, cv: Double) {
        let mean = values.reduce(0, +) / Double(values.count)
        guard mean > 0 else { return (mean, 0) }
        let variance = values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(values.count)
        return (mean, variance.squareRoot() / mean)
    }

    /// How much the coefficient of variation of `gaps` gaps is magnified.
    /// A few gaps agree by chance far more often than many: for gaps drawn
    /// at random, P(CV < c) grows about as c^(gaps−1). Three gaps must
    /// therefore be 15 times as tight as five, and four 2.5 times, for the
    /// same regularity; then a random series (Poisson or uniform gaps)
    /// reaches beacon regularity with three or four gaps less often than
    /// with five. Five or more
    /// gaps count at 1.6 times their CV, so regularity 0.92 (certain
    /// beaconing) means gaps within about 5 % of their mean: a client
    /// querying one resolver at random reaches 8 % over seven gaps now and
    /// then, a timer-driven beacon stays within a few milliseconds. Such a
    /// beacon can be named at its fourth connection and is certain at its
    /// fifth (``threeGapCeiling``).
    static func strictness(gaps: Int) -> Double {
        gaps <= 3 ? 24 : gaps == 4 ? 4 : 1.6
    }
}
