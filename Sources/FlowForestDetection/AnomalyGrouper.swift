public import FlowForestCore

/// Collapses many anomalies raised for one reason at once into one that
/// names the pattern and counts its members: a sweep's targets (each an
/// "unusual destination" whose one peer is the sweeper) become "host sweep
/// of 254 addresses by X"; a flood's forged sources (each a host whose one
/// peer is the victim) become one anomaly about the victim; so do a forged
/// flood's unusual flows, each from its own source to the victim.
///
/// Nothing is dropped: the grouped anomaly carries the member count, the
/// first ``listed`` members, the most anomalous member's score, features
/// and explanation, and the members' flows (bounded). Members that arrive
/// in later polls, within the repeat window, join the group; the group is
/// reported again, with its new count, each time its membership doubles,
/// and once more with its final count when it has stopped growing.
public struct AnomalyGrouper: Sendable {
    /// Members listed in a grouped anomaly.
    public static let listed = 32
    /// Flow ids a grouped anomaly carries.
    static let flowIDs = 32

    /// Anomalies of one kind and label that share one address.
    struct Key: Hashable {
        var kind: AnomalyKind
        var label: AnomalyLabel
        var anchor: IPAddress
        /// A flow group's shared address is the flows' destination (forged
        /// sources at one victim) rather than their source (one scanner).
        var atDestination = false
    }

    struct Group {
        /// Groups made before this one: orders groups started in one poll.
        var number: UInt64
        var startedNs: UInt64
        var lastGrowthNs: UInt64
        /// The most anomalous member so far: the report's score, features and explanation.
        var best: Anomaly
        var members: [IPAddress] = []
        var flowIDs: [UInt64] = []
        var count = 0
        var reportedCount = 0
        /// The highest severity of any member.
        var severity = Severity.low
        /// The destination port of every member so far, while they agree
        /// (a flood's one service); the report keeps it.
        var port: UInt16?
        var portsAgree = true
    }

    /// A group that has grown since its last report and then stopped growing
    /// for this long is reported once more, with its final count.
    static let settleNs: UInt64 = 5_000_000_000
    /// Groups held at once. Their keys are addresses a sender can choose, so
    /// past this the oldest group is settled early, its final report made
    /// now if it grew since its last, to make room: nothing is dropped.
    static let maxGroups = 10_000

    public let minimum: Int
    public let windowSeconds: Double
    private var groups: [Key: Group] = [:]
    /// Groups held now.
    var groupCount: Int { groups.count }
    private var groupsMade: UInt64 = 0
    /// Member anomalies folded into a group rather than reported alone.
    public private(set) var grouped: UInt64 = 0

    public init(minimum: Int, windowSeconds: Double) {
        self.minimum = max(2, minimum)
        self.windowSeconds = windowSeconds
    }

    /// The address many anomalies would share: a destination's or host's
    /// one peer (the sweeper, the victim), a flow's source.
    static func key(_ a: Anomaly) -> Key? {
        let anchor: IPAddress?
        switch a.kind {
        case .destination: anchor = a.sourceAddress
        case .host: anchor = a.destinationAddress
        case .flow: anchor = a.sourceAddress
        }
        return anchor.map { Key(kind: a.kind, label: a.label, anchor: $0) }
    }

    /// The second address a flow can share with others: its destination.
    /// Tried for flows that form no group on their source, so a forged
    /// flood's flows (each from its own source) group on their victim.
    static func destinationKey(_ a: Anomaly) -> Key? {
        guard a.kind == .flow, let destination = a.destinationAddress else { return nil }
        return Key(kind: .flow, label: a.label, anchor: destination, atDestination: true)
    }

    /// The member's own address (the entity the anomaly is about).
    static func member(_ a: Anomaly, of key: Key) -> IPAddress? {
        switch a.kind {
        case .destination: return a.destinationAddress
        case .host: return a.sourceAddress
        case .flow: return key.atDestination ? a.sourceAddress : a.destinationAddress
        }
    }

    /// One poll's anomalies (call it every poll, with none too), with those
    /// that form or join a group replaced by the group's report, or folded
    /// into it when its count has not doubled; and the final report of each
    /// group that has settled since it last grew. Suppressed anomalies are
    /// passed on as they are.
    public mutating func group(_ anomalies: [Anomaly], nowNs now: UInt64) -> [Anomaly] {
        var out = settled(nowNs: now)
        var replaced = Set<Int>()
        for keying in [Self.key, Self.destinationKey] {
            var byKey: [Key: [Int]] = [:]
            // An anomaly a rule matched stays alone: the group's report drops
            // the addresses and ports the rule names, and would pass it.
            for (i, a) in anomalies.enumerated() where !replaced.contains(i) && !a.suppressed {
                if let k = keying(a) { byKey[k, default: []].append(i) }
            }
            // In the order the anomalies came, so a replayed capture reports identically.
            for key in byKey.keys.sorted(by: { byKey[$0]![0] < byKey[$1]![0] }) {
                let indices = byKey[key]!
                guard indices.count >= minimum || groups[key] != nil else { continue }
                if groups[key] == nil, groups.count >= Self.maxGroups { out += settleOldest(nowNs: now) }
                replaced.formUnion(indices)
                if let report = join(indices.map { anomalies[$0] }, to: key, nowNs: now) { out.append(report) }
            }
        }
        let alone = anomalies.indices.filter { !replaced.contains($0) }.map { anomalies[$0] }
        return alone + out
    }

    /// Adds one poll's members to the key's group; its report when the
    /// group is new or its count has doubled since it was last reported.
    private mutating func join(_ members: [Anomaly], to key: Key, nowNs now: UInt64) -> Anomaly? {
        let strongest = members.max { $0.score < $1.score }!
        let isNew = groups[key] == nil
        var g = groups[key] ?? Group(number: groupsMade, startedNs: now, lastGrowthNs: now, best: strongest, port: members[0].destinationPort)
        if isNew { groupsMade += 1 }
        if g.portsAgree && members.contains(where: { $0.destinationPort != g.port }) { g.portsAgree = false }
        if strongest.score > g.best.score { g.best = strongest }
        g.severity = max(g.severity, members.map(\.severity).max()!)
        for m in members {
            if let address = Self.member(m, of: key), g.members.count < Self.listed, !g.members.contains(address) { g.members.append(address) }
        }
        g.flowIDs = Array((g.flowIDs + members.flatMap(\.flowIDs)).suffix(Self.flowIDs))
        g.count += members.count
        g.lastGrowthNs = now
        grouped += UInt64(members.count)
        defer { groups[key] = g }
        guard g.count >= 2 * g.reportedCount else { return nil }
        g.reportedCount = g.count
        return Self.report(key, group: g, minimum: minimum, timeMs: strongest.timeMs)
    }

    /// Removes the oldest group, with its final report if it grew since its last.
    private mutating func settleOldest(nowNs now: UInt64) -> [Anomaly] {
        guard let key = groups.min(by: { $0.value.number < $1.value.number })?.key, let g = groups.removeValue(forKey: key) else { return [] }
        guard g.count > g.reportedCount else { return [] }
        return [Self.report(key, group: g, minimum: minimum, timeMs: Int64(now / 1_000_000))]
    }

    /// Final reports of groups that grew since their last report and have
    /// not grown for ``settleNs``; forgets groups older than the window.
    private mutating func settled(nowNs now: UInt64) -> [Anomaly] {
        var out: [Anomaly] = []
        // In the order the groups were made, so a replayed capture reports identically.
        for key in groups.keys.sorted(by: { groups[$0]!.number < groups[$1]!.number }) {
            var g = groups[key]!
            if g.count > g.reportedCount && now.nanosecondsApart(from: g.lastGrowthNs) >= Self.settleNs {
                g.reportedCount = g.count
                out.append(Self.report(key, group: g, minimum: minimum, timeMs: Int64(now / 1_000_000)))
                groups[key] = g
            }
            if Double(now.nanosecondsApart(from: g.startedNs)) / 1e9 >= windowSeconds && g.count == g.reportedCount { groups.removeValue(forKey: key) }
        }
        return out
    }

    /// The grouped anomaly: the strongest member's report, moved to the
    /// shared address, with the pattern's line first.
    static func report(_ key: Key, group g: Group, minimum: Int, timeMs: Int64) -> Anomaly {
        var a = g.best
        a.timeMs = timeMs
        a.severity = g.severity
        switch key.kind {
        case .destination:
            // Many destinations each probed by one host: that host's sweep.
            if key.label == .unusualDestination { a.label = .hostSweep }
            a.sourceAddress = key.anchor
            a.destinationAddress = nil
        case .host:
            a.sourceAddress = nil
            a.destinationAddress = key.anchor
        case .flow where key.atDestination:
            a.sourceAddress = nil
            a.destinationAddress = key.anchor
        case .flow:
            a.sourceAddress = key.anchor
            a.destinationAddress = nil
        }
        a.sourcePort = nil
        a.destinationPort = g.portsAgree ? g.port : nil
        a.flowIDs = g.flowIDs
        a.features["group_members"] = Double(g.count)
        let line = ExplanationItem(feature: "group_members", value: Double(g.count), baseline: Double(minimum - 1), direction: "above",
                                   text: description(key, count: g.count), members: g.members.map(\.description))
        a.explanation = [line] + a.explanation
        return a
    }

    /// "host sweep of 254 addresses by 198.18.0.2", "syn flood from 212 sources at 198.18.1.1", ...
    static func description(_ key: Key, count: Int) -> String {
        switch (key.kind, key.label) {
        case (.destination, .unusualDestination):
            return "host sweep of \(count) addresses by \(key.anchor)"
        case (.destination, _):
            return "\(key.label.rawValue) of \(count) addresses by \(key.anchor)"
        case (.host, _):
            return "\(key.label.rawValue) from \(count) sources at once at \(key.anchor)"
        case (.flow, _) where key.atDestination:
            return "\(count) flows to \(key.anchor) (\(key.label.rawValue))"
        case (.flow, _):
            return "\(count) flows of \(key.anchor) (\(key.label.rawValue))"
        }
    }
}
