import FlowForestCore
import FlowForestPipeline
import Logging
import MetricsTestKit
import Synchronization
import Testing

/// One anomaly as the detector reports it: `kind` decides whose vector it is.
private func anomaly(_ label: AnomalyLabel, src: String?, dst: String?, atS seconds: Int64, score: Double = 0.7,
                     severity: Severity = .high, kind: AnomalyKind = .host, why: String = "why") -> Anomaly {
    Anomaly(sensor: "s1", timeMs: 1_790_000_000_000 + seconds * 1000, kind: kind,
            sourceAddress: src.flatMap { IPAddress($0) }, destinationAddress: dst.flatMap { IPAddress($0) },
            score: score, severity: severity, label: label,
            explanation: [ExplanationItem(feature: "f", value: 1, baseline: 0, direction: "above", text: why)])
}

private func ms(_ seconds: Int64) -> Int64 { 1_790_000_000_000 + seconds * 1000 }

/// Sequential uids, so tests name incidents.
private func counterUIDs() -> @Sendable () -> String {
    let next = Mutex(0)
    return { next.withLock { $0 += 1; return "inc-\($0)" } }
}

@Suite("Incident grouping")
struct IncidentTrackerTests {
    @Test("a port scan's two vectors (the actor's and the victim's) and its repeats are one incident")
    func scanIsOneIncident() {
        var tracker = IncidentTracker(configuration: .init(quietGap: .seconds(120)), makeUID: counterUIDs())
        var batch = [anomaly(.portScan, src: "198.18.0.1", dst: "198.18.0.2", atS: 0, kind: .host),
                     anomaly(.portScan, src: "198.18.0.1", dst: "198.18.0.2", atS: 0, kind: .destination)]
        let opened = tracker.observe(&batch, nowMs: ms(0))
        #expect(opened.map(\.change) == [.opened])
        #expect(batch.map(\.incidentUID) == ["inc-1", "inc-1"])
        // A minute later the scan goes on and sweeps a second host: the same actor, the same family.
        var later = [anomaly(.hostSweep, src: "198.18.0.1", dst: "198.18.0.3", atS: 60, score: 0.9, severity: .critical, why: "sweep")]
        let updated = tracker.observe(&later, nowMs: ms(60))
        #expect(updated.map(\.change) == [.updated])
        let incident = updated[0].incident
        #expect(incident.uid == "inc-1")
        #expect(incident.actors == [IPAddress("198.18.0.1")!])
        #expect(incident.targets == [IPAddress("198.18.0.2")!, IPAddress("198.18.0.3")!])
        #expect(incident.anomalyCount == 3)
        #expect(incident.firstSeenMs == ms(0) && incident.lastSeenMs == ms(60))
        // The strongest anomaly names and explains it.
        #expect(incident.label == .hostSweep && incident.family == .scan)
        #expect(incident.peakSeverity == .critical && incident.peakScore == 0.9)
        #expect(incident.explanation.map(\.text) == ["sweep"])
        #expect(incident.state == .open)
    }

    @Test("a flood from many sources on one target is one incident; another family on the same hosts is another")
    func sameTargetAndFamilies() {
        var tracker = IncidentTracker(makeUID: counterUIDs())
        var batch = [anomaly(.synFlood, src: "198.18.1.1", dst: "198.18.0.9", atS: 0),
                     anomaly(.udpFlood, src: "198.18.1.2", dst: "198.18.0.9", atS: 1),
                     anomaly(.exfiltration, src: "198.18.1.1", dst: "198.18.0.9", atS: 2)]
        let changes = tracker.observe(&batch, nowMs: ms(2))
        #expect(changes.map(\.change) == [.opened, .opened])
        #expect(batch.map(\.incidentUID) == ["inc-1", "inc-1", "inc-2"])
        let flood = changes[0].incident
        #expect(flood.family == .flood && flood.actors.count == 2 && flood.targets == [IPAddress("198.18.0.9")!])
        #expect(changes[1].incident.family == .exfiltration)
        // Unrelated hosts in the same family: a separate incident.
        var other = [anomaly(.icmpFlood, src: "198.18.2.1", dst: "198.18.2.2", atS: 3)]
        #expect(tracker.observe(&other, nowMs: ms(3)).map(\.incident.uid) == ["inc-3"])
    }

    @Test("a victim answering its attacker joins the attack's incident, whatever the answer is called")
    func victimAnswersJoin() {
        var tracker = IncidentTracker(makeUID: counterUIDs())
        // A raw-IP (GRE) flood, then the victim's protocol-unreachable messages back at the attacker.
        var batch = [anomaly(.ipFlood, src: "198.18.0.66", dst: "198.18.0.9", atS: 0, kind: .destination)]
        #expect(tracker.observe(&batch, nowMs: ms(0)).map(\.change) == [.opened])
        var answer = [anomaly(.icmpFlood, src: "198.18.0.9", dst: "198.18.0.66", atS: 1, score: 0.95)]
        let changes = tracker.observe(&answer, nowMs: ms(1))
        #expect(changes.map(\.change) == [.updated] && answer.map(\.incidentUID) == ["inc-1"])
        // The flood's actors and targets stay who they were: the victim is not made an attacker.
        #expect(changes.first?.incident.actors == [IPAddress("198.18.0.66")!])
        #expect(changes.first?.incident.targets == [IPAddress("198.18.0.9")!])
        // Nor is the flood renamed after its echo, however strongly that scored.
        #expect(changes.first?.incident.label == .ipFlood && changes.first?.incident.anomalyCount == 2)
        // The same victim sending elsewhere is news of its own.
        var elsewhere = [anomaly(.icmpFlood, src: "198.18.0.9", dst: "198.18.0.77", atS: 2)]
        #expect(tracker.observe(&elsewhere, nowMs: ms(2)).map(\.change) == [.opened])
    }

    @Test("the odd flows of an attack join it: unusual anomalies join any family, and a named behaviour takes over an unusual incident")
    func unusualJoinsTheStory() {
        var tracker = IncidentTracker(makeUID: counterUIDs())
        // A scan's host vector and, in the same batch, one of its flows scored as merely unusual (more strongly).
        var batch = [anomaly(.portScan, src: "198.18.0.1", dst: "198.18.0.2", atS: 0, score: 0.7, why: "ports"),
                     anomaly(.unusualFlow, src: "198.18.0.1", dst: "198.18.0.2", atS: 0, score: 0.9, kind: .flow, why: "odd flow")]
        let changes = tracker.observe(&batch, nowMs: ms(0))
        #expect(changes.map(\.change) == [.opened] && batch.map(\.incidentUID) == ["inc-1", "inc-1"])
        // The named behaviour names it; the peak score is the strongest of all.
        #expect(changes[0].incident.label == .portScan && changes[0].incident.explanation.map(\.text) == ["ports"])
        #expect(changes[0].incident.peakScore == 0.9 && changes[0].incident.anomalyCount == 2)
        // The other way round: the unusual flow first, then the flood it was the start of.
        var first = [anomaly(.unusualDestination, src: nil, dst: "198.18.0.9", atS: 10, kind: .destination, why: "odd")]
        _ = tracker.observe(&first, nowMs: ms(10))
        var flood = [anomaly(.synFlood, src: "198.18.1.1", dst: "198.18.0.9", atS: 11, score: 0.6, why: "syns")]
        let taken = tracker.observe(&flood, nowMs: ms(11))
        #expect(taken.map(\.change) == [.updated] && taken[0].incident.uid == "inc-2")
        #expect(taken[0].incident.label == .synFlood && taken[0].incident.family == .flood)
        #expect(taken[0].incident.explanation.map(\.text) == ["syns"])
        // A second named behaviour of another family is still its own incident.
        var exfil = [anomaly(.exfiltration, src: "198.18.0.1", dst: "198.18.0.2", atS: 12)]
        #expect(tracker.observe(&exfil, nowMs: ms(12)).map(\.change) == [.opened])
    }

    @Test("an incident stamped years ahead (a capture file's record) closes once the clock steps back, not years later")
    func clockStepBackCloses() {
        var tracker = IncidentTracker(configuration: .init(quietGap: .seconds(120)), makeUID: counterUIDs())
        let years: Int64 = 100 * 365 * 86_400
        var ahead = [anomaly(.portScan, src: "198.18.0.1", dst: "198.18.0.2", atS: years)]
        _ = tracker.observe(&ahead, nowMs: ms(years))
        // A step back of less than a gap and a minute is left alone.
        #expect(tracker.expire(nowMs: ms(years - 150)).isEmpty)
        #expect(tracker.expire(nowMs: ms(10)).map(\.change) == [.closed])
        var later = [anomaly(.portScan, src: "198.18.0.1", dst: "198.18.0.2", atS: 11)]
        #expect(tracker.observe(&later, nowMs: ms(11)).map(\.change) == [.opened], "the old incident takes no later match")
    }

    @Test("a quiet gap closes an incident; the same actor afterwards opens a new one")
    func quietGapCloses() {
        var tracker = IncidentTracker(configuration: .init(quietGap: .seconds(120)), makeUID: counterUIDs())
        var first = [anomaly(.portScan, src: "198.18.0.1", dst: "198.18.0.2", atS: 0)]
        _ = tracker.observe(&first, nowMs: ms(0))
        // 119 s of quiet: still open.
        #expect(tracker.expire(nowMs: ms(119)).isEmpty)
        #expect(tracker.openCount == 1)
        let closed = tracker.expire(nowMs: ms(120))
        #expect(closed.map(\.change) == [.closed])
        #expect(closed[0].incident.state == .closed && closed[0].incident.uid == "inc-1")
        #expect(tracker.openCount == 0)
        var again = [anomaly(.portScan, src: "198.18.0.1", dst: "198.18.0.2", atS: 300)]
        let changes = tracker.observe(&again, nowMs: ms(300))
        #expect(changes.map(\.change) == [.opened] && changes[0].incident.uid == "inc-2")
    }

    @Test("with the most incidents open, a new one closes the one quiet the longest, counted")
    func boundedOpenIncidents() {
        var tracker = IncidentTracker(configuration: .init(quietGap: .seconds(600), maxOpen: 2), makeUID: counterUIDs())
        var batch = [anomaly(.beaconing, src: "198.18.0.1", dst: "198.18.5.1", atS: 0),
                     anomaly(.beaconing, src: "198.18.0.2", dst: "198.18.5.2", atS: 1),
                     anomaly(.beaconing, src: "198.18.0.3", dst: "198.18.5.3", atS: 2)]
        let changes = tracker.observe(&batch, nowMs: ms(2))
        #expect(changes.map(\.change) == [.closed, .opened, .opened])
        #expect(changes[0].incident.uid == "inc-1")
        #expect(tracker.openCount == 2 && tracker.closedEarly == 1)
    }

    @Test("the pipeline closes incidents by batch time, hands every change to the sink in order, and counts them")
    func pipelineHandsChanges() async {
        let sink = RecordingSink()
        let metrics = TestMetrics()
        let pipeline = Pipeline(sensor: "s1", detector: ScriptedAnomalies(), sink: sink,
                                incidents: .init(quietGap: .seconds(30)), logger: Logger(label: "t"), metricsFactory: metrics)
        let t0 = UInt64(ms(0)) * 1_000_000
        // Batches at 0, 10 and 20 s carry anomalies (ScriptedAnomalies), the one at 60 s none.
        for s in [0, 10, 20, 60] as [UInt64] {
            let batch = FlowBatch(timeNs: t0 + s * 1_000_000_000, records: [], statistics: CaptureStatistics(), activeFlows: 0)
            _ = await pipeline.process(batch, mode: "pcap")
        }
        #expect(sink.incidents.map(\.change) == [.opened, .updated, .updated, .closed])
        #expect(Set(sink.incidents.map(\.incident.uid)).count == 1)
        #expect(sink.incidents.last?.incident.anomalyCount == 3)
        #expect(sink.anomalies.allSatisfy { $0.incidentUID == sink.incidents[0].incident.uid })
        #expect(metrics.counterTotal(label: "flowforest_incidents_total", dimensions: [("change", "updated")]) == 2)
        #expect(metrics.counterTotal(label: "flowforest_incidents_total", dimensions: [("change", "closed")]) == 1)
        #expect(await pipeline.openIncidentCount == 0)
    }
}

/// One port-scan anomaly per batch during the first 30 s, none after.
struct ScriptedAnomalies: FlowDetector {
    func process(_ batch: FlowBatch, changes: [FlowChange], flows: FlowLedger) -> [Anomaly] {
        let ms = Int64(batch.timeNs / 1_000_000)
        guard ms - 1_790_000_000_000 < 30_000 else { return [] }
        return [Anomaly(sensor: "", timeMs: ms, kind: .host, sourceAddress: IPAddress("198.18.0.1"),
                        destinationAddress: IPAddress("198.18.0.2"), score: 0.8, severity: .high, label: .portScan)]
    }
    func retrain(nowNs: UInt64) {}
    func setExpected(_ rules: [Suppression]) {}
    var apiStatus: ModelStatus { ModelStatus(state: .scoring) }
    func modelJSON() -> String? { nil }
}
