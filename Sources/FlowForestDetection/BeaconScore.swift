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
    }

    /// One source and one destination service: what a beacon's history is kept for.
    struct PairKey: Hashable {
        var source: IPAddress
        var service: ServiceKey
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

    /// The gaps between a pair's connections that have left its history:
    /// their count, mean and sum of squared deviations (Welford), so that a
    /// long-lived pair's regularity rests on every gap it has shown, not only
    /// on the last seven. 24 bytes however long the pair lives.
    struct EarlierGaps {
        private(set) var count = 0
        private(set) var mean = 0.0
        private(set) var squaredDeviations = 0.0

        mutating func add(_ gapNs: Double) {
            count += 1
            let delta = gapNs - mean
            mean += delta / Double(count)
            squaredDeviations += delta * (gapNs - mean)
        }

        /// These gaps and `gaps` together: their count, mean and coefficient
        /// of variation (Chan's pairwise combination of the two summaries).
        func combined(with gaps: [Double]) -> (count: Int, mean: Double, cv: Double) {
            var other = EarlierGaps()
            for gap in gaps { other.add(gap) }
            let n = count + other.count
            guard n > 0 else { return (0, 0, 0) }
            let delta = other.mean - mean
            let total = mean + delta * Double(other.count) / Double(n)
            let m2 = squaredDeviations + other.squaredDeviations
                + delta * delta * Double(count) * Double(other.count) / Double(n)
            guard total > 0 else { return (n, total, 0) }
            return (n, total, (max(0, m2) / Double(n)).squareRoot() / total)
        }
    }

    /// Adds a connection to a pair's history, keeping it in start order (a
    /// poll reports its new flows in no particular order) and at most
    /// ``history`` long; the gaps of the connections it pushes out go to `earlier`.
    static func record(_ start: Start, in series: inout InlineFirstArray<Start>, earlier: inout EarlierGaps) {
        let position = series.lastIndex { $0.startNs <= start.startNs }.map { $0 + 1 } ?? 0
        series.insert(start, at: position)
        guard series.count > history else { return }
        let leaving = series.count - history
        for i in 0..<leaving { earlier.add(Double(series[i + 1].startNs &- series[i].startNs)) }
        series.removeFirst(leaving)
    }

    /// Regularity (0-1) of a pair's connections, oldest first, in the manner
    /// of RITA's beacon score: 1 − CV(gaps between starts) ×
    /// ``strictness(gaps:)`` − CV(bytes per connection) / 2, where CV
    /// is the coefficient of variation. Starts are the records' exact
    /// first-packet times; the newest connection's bytes are left out (it
    /// may still be under way). 0 with fewer than three gaps (seven when an
    /// earlier connection was a lone probe), or when the starts average
    /// under 200 ms apart (a burst, not a beacon).
    ///
    /// Once the history is full, the gaps that have left it (`earlier`)
    /// count too: the timing CV is then taken over every gap the pair has
    /// shown, magnified by ``strictness(gaps:)`` for that many, and the
    /// higher of the two regularities is the pair's. A beacon with a few
    /// per cent of jitter sits near the certainty line over seven gaps and
    /// crosses it as its gaps add up; a client that only now and then lines
    /// up seven gaps does not keep it up over twenty.
    static func regularity(_ series: some BidirectionalCollection<Start>, earlier: EarlierGaps = EarlierGaps()) -> Double {
        // Among thousands of forged flood sources each sending a few lone SYNs, some
        // short series look regular by chance; a series with probes in it (a beacon
        // to a dead or refusing server, or one-way datagrams) must fill the history.
        let needed = series.dropLast().contains(where: \.probe) ? history : 4
        guard series.count >= needed else { return 0 }
        let gaps = zip(series.dropFirst(), series).map { Double($0.startNs &- $1.startNs) }
        let timing = coefficientOfVariation(gaps)
        guard timing.mean >= 2e8 else { return 0 }
        let sizes = coefficientOfVariation(series.dropLast().map { Double($0.bytes) })
        let recent = capped(max(0, 1 - timing.cv * strictness(gaps: gaps.count) - sizes.cv / 2), gaps: gaps.count)
        guard earlier.count > 0, series.count >= history else { return recent }
        let all = earlier.combined(with: gaps)
        guard all.mean >= 2e8 else { return recent }
        return max(recent, 1 - all.cv * strictness(gaps: all.count) - sizes.cv / 2)
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
    ///
    /// Beyond seven gaps (a full history and the gaps before it) the factor
    /// falls as 1.6·√(7/gaps), down to 1 at eighteen: a sample CV's spread
    /// narrows as the square root of its count, so a random series' chance
    /// of a low CV falls as gaps add up while a jittered beacon's CV stays
    /// put. Certainty then needs gaps within 8 % of their mean (±14 %
    /// uniform jitter) at most, however long the series.
    static func strictness(gaps: Int) -> Double {
        gaps <= 3 ? 24 : gaps == 4 ? 4 : max(1, 1.6 * (7 / Double(max(gaps, 7))).squareRoot())
    }
}

// Outside the types, so each keeps its memberwise initializer too.
extension BeaconScore.ServiceKey {
    init(_ r: FlowRecord) {
        self.init(destination: r.destinationAddress, port: r.destinationPort, ipProtocol: r.ipProtocol)
    }
}

extension BeaconScore.PairKey {
    init(_ r: FlowRecord) {
        self.init(source: r.sourceAddress, service: BeaconScore.ServiceKey(r))
    }
}
