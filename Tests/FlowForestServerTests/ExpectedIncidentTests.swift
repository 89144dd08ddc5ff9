import FlowForestCore
import FlowForestDetection
import FlowForestPipeline
import FlowForestServer
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

/// The analyst's loop with the real detector: an incident is marked
/// expected, its recurrence is kept but silent, and retraining learns it.
@Suite("An incident marked expected", .serialized)
struct ExpectedIncidentTests {
    typealias Packet = (src: String, dst: String, sport: Int, dport: Int, proto: String, length: Int, time: Double, flags: [String])

    /// One round of complete HTTPS exchanges of 20 clients with one server.
    /// Each client takes part in ``clientRounds`` rounds and is then
    /// replaced by a new address (from 198.19.0.0/16), the 20 staggered so
    /// that every round has clients of every age: from the tenth round on,
    /// the hosts' vectors come from the same mix of ages in every round. The
    /// same 20 clients in every round kept adding to their 100 s windows long
    /// after the model had learned, so ever fewer of their vectors scored
    /// normal (51 of 5,596 in 90 s in one run) and the reservoir never filled.
    static func normalRound(_ round: Int, at start: Double) -> [Packet] {
        var records: [Packet] = []
        var t = start
        for c in 0..<20 {
            let generation = (round + c % clientRounds) / clientRounds
            let n = (generation * 20 + c) % 65_000
            let client = "198.19.\(n / 250).\(n % 250 + 1)", sport = 20000 + (round * 20 + c) % 40000
            let size = 200 + (c * 37 + round * 11) % 900
            t += 0.01
            records += [
                (client, "198.18.1.1", sport, 443, "tcp", 60, t, ["SYN"]),
                ("198.18.1.1", client, 443, sport, "tcp", 60, t + 0.001, ["SYN", "ACK"]),
                (client, "198.18.1.1", sport, 443, "tcp", 52, t + 0.002, ["ACK"]),
                (client, "198.18.1.1", sport, 443, "tcp", 300, t + 0.003, ["PSH", "ACK"]),
                ("198.18.1.1", client, 443, sport, "tcp", size, t + 0.010, ["PSH", "ACK"]),
                (client, "198.18.1.1", sport, 443, "tcp", 52, t + 0.020, ["FIN", "ACK"]),
                ("198.18.1.1", client, 443, sport, "tcp", 52, t + 0.021, ["FIN", "ACK"]),
                (client, "198.18.1.1", sport, 443, "tcp", 52, t + 0.022, ["ACK"]),
            ]
        }
        return records
    }

    /// Rounds a client of ``normalRound(_:at:)`` takes part in.
    static let clientRounds = 10

    /// Sends normal rounds to `sensors` until `enough` holds, each round on
    /// its own: sent no sooner than 300 ms after the last, and the next one
    /// only once every sensor has taken this one in (its 20 flows ended and
    /// judged). A host's windowed figures then move by one round per vector
    /// on any machine. Sent as fast as the machine allows, how many rounds
    /// fell into one poll, and so how far the hosts moved between vectors,
    /// depended on the machine's load: hosts that move away from what the
    /// model learned score unusual and no longer fill the reservoir, which
    /// on a busy machine stopped short of `enough`.
    static func normalRounds(to sensors: [Sensor], until what: String,
                             seconds: Double, _ enough: ([[String: String]]) -> Bool) async throws {
        func model(_ s: Sensor) async throws -> [String: Any] {
            try await s.client.call("/api/model", token: s.db.viewerToken).object()
        }
        let deadline = ContinuousClock.now + .seconds(seconds)
        var round = 0
        var details: [[String: String]] = []
        while ContinuousClock.now < deadline {
            let next = ContinuousClock.now + .milliseconds(300)
            var seen: [Int] = []
            for s in sensors { seen.append(try await model(s)["vectors_seen"] as? Int ?? 0) }
            let json = trafficJSON(normalRound(round, at: Date().timeIntervalSince1970))
            for s in sensors {
                let r = try await s.client.call("/api/traffic", .post, token: s.db.agentToken, json: json)
                #expect(r.status == .accepted, "\(r.text)")
            }
            round += 1
            details = []
            for (s, before) in zip(sensors, seen) {
                var judged: [String: Any] = [:]
                try await waitFor("round \(round) judged on \(s.db.location)", seconds: 30) {
                    judged = try await model(s)
                    return judged["vectors_seen"] as? Int ?? 0 >= before + 20
                }
                details.append(judged["details"] as? [String: String] ?? [:])
            }
            if enough(details) { return }
            try await Task.sleep(until: next)
        }
        throw WaitTimedOut(what: what, seconds: seconds, detail: "after \(round) rounds: \(details)")
    }

    /// SYNs from `scanner` to 300 ports of `victim`, answered by RSTs.
    static func scan(from scanner: String, to victim: String) -> [Packet] {
        let now = Date().timeIntervalSince1970
        return (1...300).flatMap { port -> [Packet] in
            [(scanner, victim, 55555, port, "tcp", 44, now + Double(port) * 0.001, ["SYN"]),
             (victim, scanner, port, 55555, "tcp", 40, now + Double(port) * 0.001 + 0.0002, ["RST", "ACK"])]
        }
    }

    static func detection() -> DetectorConfiguration {
        var d = DetectorConfiguration()
        d.learningVectors = 300
        d.minimumLearningVectors = 60
        d.learningSeconds = 5
        // Every recurrence is reported, not folded into the first report.
        d.repeatSuppressionSeconds = 0
        d.retrainIntervalSeconds = 0
        return d
    }

    @Test("no notification when it recurs, its anomalies shown suppressed, their vectors kept for retraining")
    func markedExpected() async throws {
        let receiver = HookReceiver()
        try await receiver.start()
        do {
            try await run(receiver)
        } catch {
            await receiver.stop()
            throw error
        }
        await receiver.stop()
    }

    private func run(_ receiver: HookReceiver) async throws {
        let detector = Detector(configuration: Self.detection(), sensor: "test-sensor")
        try await withService(.live, detector: detector, configure: { c in
            c.incidents = IncidentConfiguration(quietGap: .seconds(1))
            c.alerts.webhooks = [URL(string: receiver.url)!]
            c.alerts.webhookSecret = Array("k".utf8)
        }) { client, db, _ in
            func send(_ packets: [Packet]) async throws {
                let r = try await client.call("/api/traffic", .post, token: db.agentToken, json: trafficJSON(packets))
                #expect(r.status == .accepted, "\(r.text)")
            }
            func model() async throws -> [String: Any] { try await client.call("/api/model", token: db.viewerToken).object() }
            func scannerAnomalies() async throws -> [[String: Any]] {
                try await client.call("/api/anomalies?ip=198.18.0.99&limit=500", token: db.viewerToken).object()["anomalies"] as? [[String: Any]] ?? []
            }
            func postsAbout(_ actor: String) -> [[String: Any]] {
                receiver.received.compactMap { try? JSONSerialization.jsonObject(with: $0.body) as? [String: Any] }
                    .filter { (($0["incident"] as? [String: Any])?["actors"] as? [String])?.contains(actor) == true }
            }
            // Learn, then keep normal traffic flowing until the host reservoir can retrain.
            try await Self.normalRounds(to: [(client, db)], until: "the detector to learn and keep 80 normal host vectors to retrain on",
                                        seconds: 90) { Int($0[0]["host_reservoir_vectors"] ?? "") ?? 0 >= 80 }

            // The first scan is an incident and notifies.
            try await send(Self.scan(from: "198.18.0.99", to: "198.18.1.2"))
            func incidentsAbout(_ actor: String) async throws -> [[String: Any]] {
                try await client.call("/api/incidents?ip=\(actor)", token: db.viewerToken).object()["incidents"] as? [[String: Any]] ?? []
            }
            func flowsEnded(_ actor: String) async throws -> Bool {
                let flows = try await client.call("/api/flows?ip=\(actor)", token: db.viewerToken).object()
                return (flows["active"] as? [Any])?.isEmpty == true
            }
            // Settled: its flows ended, so no vector of it is still to come, and every
            // incident it opened (a busy machine can split it in two) posted as closed.
            try await waitFor("the scan's flows to end and its incidents to be posted closed", seconds: 30) {
                let closed = Set(postsAbout("198.18.0.99").filter { $0["change"] as? String == "closed" }
                    .compactMap { ($0["incident"] as? [String: Any])?["id"] as? Int })
                let ids = try await incidentsAbout("198.18.0.99").compactMap { $0["id"] as? Int }
                return try await flowsEnded("198.18.0.99") && !ids.isEmpty && ids.allSatisfy(closed.contains)
            }
            let incident = try #require(try await incidentsAbout("198.18.0.99").first, "no incident about the scanner")

            // Marked expected as the dashboard does: the incident's actor and label.
            let actor = try #require((incident["actors"] as? [String])?.first)
            let label = try #require(incident["label"] as? String)
            let rule = #"{"actor": "\#(actor)", "label": "\#(label)", "reason": "the weekly audit scan"}"#
            let made = try await client.call("/api/suppressions", .post, token: db.adminToken, json: rule)
            #expect(made.status == .created, "\(made.text)")
            let postsBefore = postsAbout("198.18.0.99").count
            let seenBefore = try await scannerAnomalies().count

            // It recurs: stored, marked suppressed, learned from; then another host's scan is posted.
            // The recurrence is what was found after the rule was in force (the POST returns
            // once it is): the first scan's last anomalies may be stored after `seenBefore`.
            let recurStart = Date()
            func date(_ text: Any?) -> Date? {
                let f = ISO8601DateFormatter()
                f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
                return (text as? String).flatMap { f.date(from: $0) }
            }
            func found(_ a: [String: Any]) -> Date? { date(a["time"]) }
            // Posts about the scanner's incidents that began once the rule was in force.
            // (Only those: a post about the first scan may still come, if one of its
            // anomalies was stored after the wait above.)
            func recurrencePosts() -> [String] {
                postsAbout("198.18.0.99").dropFirst(postsBefore)
                    .filter { (date(($0["incident"] as? [String: Any])?["first_seen"]) ?? .distantFuture) >= recurStart }
                    .map { String(describing: $0) }
            }
            try await send(Self.scan(from: "198.18.0.99", to: "198.18.1.2"))
            try await waitFor("the recurrence's anomalies stored, marked suppressed", seconds: 30) {
                let all = try await scannerAnomalies()
                return all.count > seenBefore && all.contains { (found($0) ?? .distantPast) >= recurStart && $0["suppressed"] as? Bool == true }
            }
            let recurrence = try await scannerAnomalies().filter { (found($0) ?? .distantPast) >= recurStart }
            // Its odd flows too: the rule names the scanner, so its "unusual …" anomalies are covered.
            #expect(recurrence.allSatisfy { $0["suppressed"] as? Bool == true }, "\(recurrence)")
            // Once the scanner's flows have all ended, no vector of it is still to come.
            try await waitFor("the recurrence's flows to end", seconds: 30) { try await flowsEnded("198.18.0.99") }
            try await send(Self.scan(from: "198.18.0.98", to: "198.18.1.3"))
            try await waitFor("the other scanner's incident to be posted", seconds: 30) { !postsAbout("198.18.0.98").isEmpty }
            #expect(recurrencePosts().isEmpty, "the expected scan was notified again: \(recurrencePosts())")
            let details = try await model()["details"] as? [String: String] ?? [:]
            let kept = Int(details["host_expected_vectors"] ?? "") ?? 0
            #expect(kept > 0, "\(details)")

            // Retraining takes the kept vectors in (their lower score end to end is
            // retrainingLowersTheScore below).
            let version = try await model()["version"] as? Int
            let retrained = try await client.call("/api/model/retrain", .post, token: db.adminToken)
            #expect(retrained.status == .ok, "\(retrained.text)")
            let now = try await model()
            #expect((now["details"] as? [String: String])?["host_expected_vectors"] == "0", "kept \(kept) before: \(now)")
            #expect((now["version"] as? Int).map { $0 > (version ?? 0) } == true, "\(now)")
            // What the detector held back is counted where an operator can read it.
            let counts = (now["details"] as? [String: String]) ?? [:]
            #expect(Int(counts["retrainings"] ?? "").map { $0 >= 1 } == true, "\(counts)")
            #expect(["unexplained", "unconfirmed", "suppressed_repeats"].allSatisfy { Int(counts[$0] ?? "") != nil }, "\(counts)")
            #expect(recurrencePosts().isEmpty, "\(recurrencePosts())")
        }
    }

    /// The scanner's host anomaly scores as stored, in time order.
    static func hostScores(_ client: any TestClientProtocol, token: String, scanner: String) async throws -> [Double] {
        let page = try await client.call("/api/anomalies?ip=\(scanner)&kind=host&limit=1000", token: token).object()
        let rows = (page["anomalies"] as? [[String: Any]] ?? []).filter { $0["src_ip"] as? String == scanner }
        return rows.reversed().compactMap { $0["score"] as? Double }
    }

    @Test("after retraining, the recurring scan a rule calls expected scores lower than the same scan on a sensor without the rule")
    func retrainingLowersTheScore() async throws {
        // Two services fed the same traffic at the same moments; only one gets the rule.
        var configuration = Self.detection()
        // An on-demand retraining regrows every tree here, so one retraining shows
        // what several scheduled ones (a tenth of the trees each, by default) add up to.
        configuration.retrainShare = 1
        let learned = Detector(configuration: configuration, sensor: "learned")
        let control = Detector(configuration: configuration, sensor: "control")
        try await withService(.live, detector: learned, configure: { $0.incidents = IncidentConfiguration(quietGap: .seconds(1)) }) { l, ldb, _ in
            try await withService(.live, detector: control, configure: { $0.incidents = IncidentConfiguration(quietGap: .seconds(1)) }) { c, cdb, _ in
                try await Self.compare(learned: (l, ldb), control: (c, cdb))
            }
        }
    }

    typealias Sensor = (client: any TestClientProtocol, db: TestDatabase)

    /// The audit scan recurs from a pool of addresses (198.18.0.96/28), each
    /// recurrence from an address not seen before. Each recurrence's host
    /// vectors then start from empty windows: like with like, where one
    /// address scanning again at once would add to its own 100 s windows and
    /// drift further out each time.
    static func compare(learned: Sensor, control: Sensor) async throws {
        let both = [learned, control]
        func send(_ packets: [Packet]) async throws {
            let json = trafficJSON(packets)
            async let a = learned.client.call("/api/traffic", .post, token: learned.db.agentToken, json: json)
            async let b = control.client.call("/api/traffic", .post, token: control.db.agentToken, json: json)
            let (ra, rb) = try await (a, b)
            #expect(ra.status == .accepted && rb.status == .accepted, "\(ra.text) \(rb.text)")
        }
        func details(_ s: Sensor) async throws -> [String: String] {
            try await s.client.call("/api/model", token: s.db.viewerToken).object()["details"] as? [String: String] ?? [:]
        }
        // Retraining grows trees on samples of 256 vectors: a reservoir that fills
        // them, as a sensor's has after its first minutes.
        try await normalRounds(to: both, until: "both detectors to learn and keep 400 normal host vectors to retrain on",
                               seconds: 180) { $0.allSatisfy { Int($0["host_reservoir_vectors"] ?? "") ?? 0 >= 400 } }
        // One recurrence on both sensors: the peak host score of its scanner on each, once its flows have ended.
        func recurrence(from scanner: String) async throws -> (learned: Double, control: Double) {
            try await send(Self.scan(from: scanner, to: "198.18.1.2"))
            var peaks: [Double] = []
            for s in both {
                try await waitFor("\(scanner)'s host anomalies stored and its flows ended on \(s.db.location)", seconds: 30) {
                    let flows = try await s.client.call("/api/flows?ip=\(scanner)", token: s.db.viewerToken).object()
                    let scores = try await Self.hostScores(s.client, token: s.db.viewerToken, scanner: scanner)
                    return !scores.isEmpty && (flows["active"] as? [Any])?.isEmpty == true
                }
                peaks.append(try await Self.hostScores(s.client, token: s.db.viewerToken, scanner: scanner).max() ?? 0)
            }
            return (peaks[0], peaks[1])
        }
        let first = try await recurrence(from: "198.18.0.100")
        let rule = #"{"actor": "198.18.0.96/28", "label": "port scan", "reason": "the weekly audit scan"}"#
        let made = try await learned.client.call("/api/suppressions", .post, token: learned.db.adminToken, json: rule)
        #expect(made.status == .created, "\(made.text)")
        // Two sensors fed the same traffic still score one scan a few
        // hundredths apart (their ticks fall differently on it), and a
        // retraining moves a score by up to ±0.03 by itself: each side of
        // the comparison is the mean of three recurrences, from new addresses.
        func mean(from scanners: [String]) async throws -> (learned: Double, control: Double) {
            var sum = (learned: 0.0, control: 0.0)
            for scanner in scanners {
                let r = try await recurrence(from: scanner)
                sum = (sum.learned + r.learned, sum.control + r.control)
            }
            return (sum.learned / Double(scanners.count), sum.control / Double(scanners.count))
        }
        let before = try await mean(from: ["198.18.0.101", "198.18.0.103", "198.18.0.105"])
        #expect(Int(try await details(learned)["host_expected_vectors"] ?? "") ?? 0 > 0)
        #expect(try await details(control)["host_expected_vectors"] == "0")
        for s in both {
            let r = try await s.client.call("/api/model/retrain", .post, token: s.db.adminToken)
            #expect(r.status == .ok, "\(r.text)")
        }
        let after = try await mean(from: ["198.18.0.102", "198.18.0.104", "198.18.0.106"])
        print("retraining-lowers-score: first \(first) before \(before) after \(after)")
        #expect(after.learned > 0 && after.control > 0, "a scan is flagged by its label rule whatever its score: \(after)")
        // Before retraining the two models are the same model on the same
        // traffic (their scores differ by the few hundredths their poll
        // timing gives); after it, the one that learned the scan scores it lower than the control,
        #expect(after.learned < after.control, "learned \(after.learned) against the control's \(after.control)")
        // (Not "lower than before" on its own: a retrained score moves by up to
        // ±0.03 by itself, and both sensors' can rise together, as in a run
        // where the control rose by 0.031 and the learned one by 0.013. What
        // the rule does is measured against the control, here and below.)
        // and its score falls further (or rises less) than retraining alone moves the control's (like with like:
        // the same recurrence, the same kind, on two sensors fed the same traffic).
        // A retrained control moves by up to ±0.03 on its own (new samples of
        // 256 vectors): a difference of two such draws needs no further margin.
        #expect(before.learned - after.learned > before.control - after.control, "learned \(before) → \(after)")
    }
}
