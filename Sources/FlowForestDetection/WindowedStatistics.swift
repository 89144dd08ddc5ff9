#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import FlowForestCore

/// Damped-window counters of one source host or one destination (Kitsune's
/// incremental statistics): every counter decays with each half-life of
/// ``FeatureSchema/halfLives``, so a burst shows at once and no window edge
/// hides it. Also holds what the entity's vector and report need besides
/// counters: open and slow flows, beacon regularity, its peer this poll.
struct WindowedStatistics {
    /// Decay half-lives in nanoseconds, one per window.
    static let windows = FeatureSchema.halfLives.map { $0.seconds * 1e9 }
    static let windowCount = FeatureSchema.halfLives.count
    /// Items a distinct-count set remembers; beyond it, items count as new each time.
    static let maxDistinct = 4096
    /// Flow ids kept for the report.
    static let recentFlows = 16

    /// Windowed counters, stem-major: `counters[stem * windowCount + window]`.
    var counters: [Double]
    var updatedNs: UInt64
    /// Last time each item of each distinct-count set was seen.
    var distinct: [[UInt64: UInt64]]
    var openFlows = 0
    var slowFlows = 0
    /// Beacon regularity, decaying with the longest window.
    var beacon = 0.0
    var peer: IPAddress?
    var multiplePeers = false
    var ipProtocol: UInt8 = 0
    var port: UInt16 = 0
    var recent: [UInt64] = []
    /// Where the latest flow was observed: the capture interface or, for a
    /// collected flow, its exporter. Kept across polls: it names the entity's
    /// anomaly, as the protocol and port do.
    var observationPoint: String?
    /// Changed this poll, so it gets a fresh vector.
    var touched = false

    init(stems: Int, distinctSets: Int, now: UInt64) {
        counters = [Double](repeating: 0, count: stems * Self.windowCount)
        updatedNs = now
        distinct = Array(repeating: [:], count: distinctSets)
    }

    /// Brings every counter to `now`.
    mutating func decay(to now: UInt64) {
        guard now > updatedNs else { return }
        let dt = Double(now - updatedNs)
        for (w, h) in Self.windows.enumerated() {
            let f = exp2(-dt / h)
            var i = w
            while i < counters.count {
                counters[i] *= f
                i += Self.windowCount
            }
        }
        beacon *= exp2(-dt / Self.windows[Self.windowCount - 1])
        updatedNs = now
    }

    mutating func add(_ stem: Int, _ amount: Double) {
        guard amount != 0 else { return }
        for w in 0..<Self.windowCount { counters[stem * Self.windowCount + w] += amount }
    }

    /// Decayed distinct count: each item contributes 2^(−age/h), so a
    /// repeat only refreshes its own contribution.
    mutating func touchDistinct(set: Int, stem: Int, item: UInt64, now: UInt64, overflow: inout UInt64) {
        if let previous = distinct[set][item] {
            let age = Double(now &- previous)
            for (w, h) in Self.windows.enumerated() {
                counters[stem * Self.windowCount + w] += 1 - exp2(-age / h)
            }
            distinct[set][item] = now
        } else {
            if distinct[set].count < Self.maxDistinct {
                distinct[set][item] = now
            } else {
                overflow += 1
            }
            add(stem, 1)
        }
    }

    mutating func note(flow id: UInt64, peer p: IPAddress, ipProtocol: UInt8, port: UInt16, observedAt point: String?) {
        if recent.last != id {
            recent.append(id)
            if recent.count > Self.recentFlows { recent.removeFirst(recent.count - Self.recentFlows) }
        }
        if let existing = peer, existing != p { multiplePeers = true }
        peer = p
        self.ipProtocol = ipProtocol
        self.port = port
        if let point { observationPoint = point }
    }

    func value(_ stem: Int, _ window: Int) -> Double { counters[stem * Self.windowCount + window] }

    /// Peers are reported per poll: the one peer of this poll, if only one.
    mutating func endPoll() {
        touched = false
        peer = nil
        multiplePeers = false
    }
}
