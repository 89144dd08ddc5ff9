public import FlowForestCore

/// How anomalies are grouped into incidents.
public struct IncidentConfiguration: Sendable, Hashable {
    /// An open incident that no anomaly joins for this long closes
    /// (`--incident-gap`). Above the detector's repeat suppression (60 s),
    /// which reports a continuing attack about once a minute.
    public var quietGap: Duration = .seconds(300)
    /// Open incidents held at most; opening one more closes the one quiet
    /// the longest first (counted in `flowforest_incidents_closed_early_total`).
    public var maxOpen = 10_000

    public static let quietGapRange: ClosedRange<Int> = 1...86_400

    public init(quietGap: Duration = .seconds(300), maxOpen: Int = 10_000) {
        self.quietGap = quietGap
        self.maxOpen = maxOpen
    }
}

/// Groups anomalies into incidents: an anomaly joins the open incident of
/// its label's family that has its source among the actors or its
/// destination among the targets ("unusual …" anomalies join one of any
/// family, and a named behaviour joins one that holds only "unusual …"
/// anomalies so far), or else one of any family whose target answers its
/// actor in it; otherwise it opens a new one. An incident that no
/// anomaly joins for ``IncidentConfiguration/quietGap`` closes.
///
/// The pipeline owns the one tracker; its time is the batches' time (packet
/// time for files), so a file always yields the same incidents.
public struct IncidentTracker: Sendable {
    public let configuration: IncidentConfiguration
    private var open: [String: Incident] = [:]
    /// The open incidents each address is an actor or a target of: an
    /// anomaly finds its candidates here, not by scanning every open
    /// incident's addresses (10,000 incidents of 512 each, per anomaly).
    private var byActor: [IPAddress: Set<String>] = [:]
    private var byTarget: [IPAddress: Set<String>] = [:]
    /// The score of the anomaly that names each open incident.
    private var leadScore: [String: Double] = [:]
    private let makeUID: @Sendable () -> String
    /// Incidents closed before their quiet gap because ``IncidentConfiguration/maxOpen`` were open.
    public private(set) var closedEarly: Int64 = 0
    /// Losses of the last ``lossLookbackMs``, oldest first: an incident opening
    /// now takes them in, since detection lags the traffic it judges.
    private var recentLosses: [(ms: Int64, loss: SensorLoss)] = []
    /// How far back before its first anomaly an incident counts the sensor's
    /// losses: the detector's short windows (10 s) span that much traffic.
    public static let lossLookbackMs: Int64 = 10_000

    public init(configuration: IncidentConfiguration = .init(), makeUID: @escaping @Sendable () -> String = IncidentTracker.randomUID) {
        self.configuration = configuration
        self.makeUID = makeUID
    }

    /// 128 random bits as hex.
    public static func randomUID() -> String {
        var g = SystemRandomNumberGenerator()
        let a = g.next() as UInt64, b = g.next() as UInt64
        return "inc-" + String(a, radix: 16) + String(b, radix: 16)
    }

    /// Open incidents now.
    public var openCount: Int { open.count }

    /// Closes what went quiet before `nowMs`, then files `anomalies` (each
    /// gets its incident's uid; a new incident takes in the losses of the
    /// ``lossLookbackMs`` before it) and adds `lost`, the sensor's losses
    /// since the previous call, to every incident open. Returns every
    /// change, in order, with one update per incident that anomalies joined
    /// (a loss alone sends no update: the next change or the close carries it).
    public mutating func observe(_ anomalies: inout [Anomaly], nowMs: Int64, lost: SensorLoss = SensorLoss()) -> [IncidentUpdate] {
        var changes = expire(nowMs: nowMs)
        var touched: [String] = []
        var opened: Set<String> = []
        for i in anomalies.indices {
            if let found = match(anomalies[i]) {
                join(found.uid, anomalies[i], answer: found.answer)
                anomalies[i].incidentUID = found.uid
                if !touched.contains(found.uid) { touched.append(found.uid) }
            } else {
                changes += makeRoom()
                let uid = openIncident(for: anomalies[i])
                anomalies[i].incidentUID = uid
                opened.insert(uid)
                touched.append(uid)
            }
        }
        if !lost.isEmpty {
            for uid in open.keys { open[uid]!.loss += lost }
            recentLosses.append((nowMs, lost))
        }
        // Bounded: one entry per call at most, none older than the lookback,
        // none from a clock that has since stepped back (a file's record
        // stamped years ahead), which would join every later incident.
        recentLosses.removeAll { nowMs - $0.ms > Self.lossLookbackMs || $0.ms > nowMs }
        for uid in touched {
            guard let incident = open[uid] else { continue }
            changes.append(IncidentUpdate(change: opened.contains(uid) ? .opened : .updated, incident: incident))
        }
        return changes
    }

    /// Closes every incident whose last anomaly is a whole quiet gap before
    /// `nowMs`, and every one whose last anomaly lies further ahead of it
    /// than a gap and a minute: the clock stepped back (a capture file with
    /// a record stamped years ahead), and waiting for it to catch up would
    /// keep the incident open, taking every later match, for years.
    public mutating func expire(nowMs: Int64) -> [IncidentUpdate] {
        let gapMs = configuration.quietGap.wholeMilliseconds
        let ahead = max(gapMs, 0) + 60_000
        let quiet = open.values.filter { nowMs - $0.lastSeenMs >= gapMs || $0.lastSeenMs - nowMs > ahead }
            .sorted { ($0.lastSeenMs, $0.uid) < ($1.lastSeenMs, $1.uid) }
        return quiet.map { close($0.uid) }
    }

    /// Closes every open incident (the end of a file).
    public mutating func closeAll() -> [IncidentUpdate] {
        open.values.sorted { ($0.lastSeenMs, $0.uid) < ($1.lastSeenMs, $1.uid) }.map { close($0.uid) }
    }

    private mutating func close(_ uid: String) -> IncidentUpdate {
        var incident = open.removeValue(forKey: uid)!
        for a in incident.actors { Self.unindex(uid, a, in: &byActor) }
        for t in incident.targets { Self.unindex(uid, t, in: &byTarget) }
        leadScore[uid] = nil
        incident.state = .closed
        return IncidentUpdate(change: .closed, incident: incident)
    }

    /// The open incident this anomaly belongs to, sharing its actor (first)
    /// or its target, the most recent if several: one of its own family;
    /// else, for an "unusual …" anomaly, one of any family (the odd flow of
    /// a scan is part of the scan); else, for a named behaviour, one that
    /// so far holds only "unusual …" anomalies (it was the start of this).
    /// The incident `a` joins, and whether it joins as its target's answer.
    private func match(_ a: Anomaly) -> (uid: String, answer: Bool)? {
        let family = a.label.family
        let fallback: (Incident) -> Bool = family == .unusual ? { _ in true } : { $0.family == .unusual }
        for accepts in [{ (i: Incident) in i.family == family }, fallback] {
            if let source = a.sourceAddress, let uid = latest(byActor[source], accepts) { return (uid, false) }
            if let destination = a.destinationAddress, let uid = latest(byTarget[destination], accepts) { return (uid, false) }
        }
        return answering(a).map { ($0, true) }
    }

    /// Of `uids`, the open incident `accepts` takes that was joined last.
    private func latest(_ uids: Set<String>?, _ accepts: (Incident) -> Bool = { _ in true }) -> String? {
        guard let uids else { return nil }
        return uids.lazy.compactMap { open[$0] }.filter(accepts).max { ($0.lastSeenMs, $0.uid) < ($1.lastSeenMs, $1.uid) }?.uid
    }

    private static func index(_ uid: String, _ address: IPAddress, in map: inout [IPAddress: Set<String>]) {
        map[address, default: []].insert(uid)
    }

    private static func unindex(_ uid: String, _ address: IPAddress, in map: inout [IPAddress: Set<String>]) {
        map[address]?.remove(uid)
        if map[address]?.isEmpty == true { map[address] = nil }
    }

    /// The open incident whose target `a`'s source is and whose actor its
    /// destination is, of any family: a victim answering its attacker (the
    /// protocol-unreachable messages a raw-IP flood draws, the resets a
    /// scan draws) is the attack seen from the other side, whatever it is
    /// called.
    private func answering(_ a: Anomaly) -> String? {
        guard let source = a.sourceAddress, let destination = a.destinationAddress,
              let hit = byTarget[source], let hitting = byActor[destination] else { return nil }
        return latest(hit.intersection(hitting))
    }

    private mutating func openIncident(for a: Anomaly) -> String {
        let uid = makeUID()
        leadScore[uid] = a.score
        open[uid] = Incident(
            uid: uid, sensor: a.sensor, label: a.label, actors: a.sourceAddress.map { [$0] } ?? [],
            targets: a.destinationAddress.map { [$0] } ?? [], firstSeenMs: a.timeMs, lastSeenMs: a.timeMs,
            peakSeverity: a.severity, peakScore: a.score, anomalyCount: 1, state: .open, explanation: a.explanation)
        for recent in recentLosses where recent.ms <= a.timeMs && a.timeMs - recent.ms <= Self.lossLookbackMs { open[uid]!.loss += recent.loss }
        if let s = a.sourceAddress { Self.index(uid, s, in: &byActor) }
        if let d = a.destinationAddress { Self.index(uid, d, in: &byTarget) }
        return uid
    }

    /// Adds `a` to an open incident. An `answer` (the target answering
    /// its actor) adds no actor or target and never names the incident: the
    /// victim is not made an attacker, nor the attack renamed after its echo.
    private mutating func join(_ uid: String, _ a: Anomaly, answer: Bool) {
        guard var incident = open[uid] else { return }
        if !answer, let s = a.sourceAddress, incident.actors.count < Incident.maxAddresses, byActor[s]?.contains(uid) != true {
            incident.actors.append(s)
            Self.index(uid, s, in: &byActor)
        }
        if !answer, let d = a.destinationAddress, incident.targets.count < Incident.maxAddresses, byTarget[d]?.contains(uid) != true {
            incident.targets.append(d)
            Self.index(uid, d, in: &byTarget)
        }
        incident.firstSeenMs = min(incident.firstSeenMs, a.timeMs)
        incident.lastSeenMs = max(incident.lastSeenMs, a.timeMs)
        incident.peakSeverity = max(incident.peakSeverity, a.severity)
        incident.anomalyCount += 1
        incident.peakScore = max(incident.peakScore, a.score)
        // The strongest anomaly names and explains the incident; a named
        // behaviour outranks any "unusual …" one.
        let lead = leadScore[uid] ?? incident.peakScore
        if !answer, (a.label.isSpecific ? 1 : 0, a.score) > (incident.label.isSpecific ? 1 : 0, lead) {
            leadScore[uid] = a.score
            incident.label = a.label
            incident.family = a.label.family
            incident.explanation = a.explanation
        }
        open[uid] = incident
    }

    /// Closes the incident quiet the longest when the tracker is full.
    private mutating func makeRoom() -> [IncidentUpdate] {
        guard open.count >= max(1, configuration.maxOpen),
              let oldest = open.values.min(by: { ($0.lastSeenMs, $0.uid) < ($1.lastSeenMs, $1.uid) }) else { return [] }
        closedEarly += 1
        return [close(oldest.uid)]
    }
}
