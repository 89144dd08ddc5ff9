import FlowForestCore
import Testing
@testable import FlowForestDetection

/// Many anomalies raised for one reason at once become one that names the
/// pattern and counts its members.
@Suite("Grouping many-entity anomalies")
struct GroupingTests {
    static let sweeper = TrafficSimulator.ip("198.18.0.66")
    static let victim = TrafficSimulator.ip("198.18.1.1")

    static func target(_ i: Int, score: Double = 0.7) -> Anomaly {
        Anomaly(sensor: "t", timeMs: 0, kind: .destination, sourceAddress: sweeper,
                destinationAddress: TrafficSimulator.ip("198.18.5.\(i)"), score: score, severity: i == 7 ? .high : .low,
                label: .unusualDestination,
                explanation: [ExplanationItem(feature: "flows_received_10s", value: 4, baseline: 1, direction: "above", text: "flows received 4")],
                features: ["flows_received_10s": 4], flowIDs: [UInt64(i)])
    }

    @Test("a sweep's 254 unusual destinations in one poll are one host sweep anomaly that counts and lists them")
    func sweepTargets() throws {
        var grouper = AnomalyGrouper(minimum: 4, windowSeconds: 60)
        let actor = Anomaly(sensor: "t", timeMs: 0, kind: .host, sourceAddress: Self.sweeper, destinationAddress: nil, score: 0.8,
                            severity: .high, label: .hostSweep)
        let out = grouper.group([actor] + (1...254).map { Self.target($0, score: $0 == 100 ? 0.9 : 0.7) }, nowNs: 1_000_000_000)
        #expect(out.count == 2)
        #expect(out[0] == actor)
        let g = out[1]
        #expect(g.label == .hostSweep && g.kind == .destination)
        #expect(g.sourceAddress == Self.sweeper && g.destinationAddress == nil)
        #expect(g.score == 0.9 && g.severity == .high)
        let line = try #require(g.explanation.first)
        #expect(line.feature == "group_members" && line.value == 254 && line.isTrue)
        #expect(line.text == "host sweep of 254 addresses by 198.18.0.66")
        #expect(line.members?.count == AnomalyGrouper.listed && line.members?.first == "198.18.5.1")
        #expect(g.features["group_members"] == 254)
        #expect(g.flowIDs.count == 32)
        // The strongest member's own lines follow the group's.
        #expect(g.explanation.dropFirst().map(\.feature) == ["flows_received_10s"])
        #expect(grouper.grouped == 254)
    }

    @Test("past the most groups held, the oldest settles early: its final report is made, nothing is dropped, the count holds")
    func groupsBounded() throws {
        var grouper = AnomalyGrouper(minimum: 4, windowSeconds: 60)
        func sweep(_ i: Int, targets: Range<Int>) -> [Anomaly] {
            targets.map { j in
                var a = Self.target(1)
                a.sourceAddress = IPAddress(ipv4: 0x0A00_0000 | UInt32(i))
                a.destinationAddress = IPAddress(ipv4: 0x0B00_0000 | UInt32(j))
                return a
            }
        }
        let s = UInt64(1_000_000_000)
        let first = grouper.group((0..<AnomalyGrouper.maxGroups).flatMap { sweep($0, targets: 0..<4) }, nowNs: s)
        #expect(first.count == AnomalyGrouper.maxGroups && grouper.groupCount == AnomalyGrouper.maxGroups)
        // The oldest group grows by one (folded: its count has not doubled), then a new group needs room.
        let second = grouper.group(sweep(0, targets: 4..<5) + sweep(AnomalyGrouper.maxGroups, targets: 0..<4), nowNs: 2 * s)
        #expect(grouper.groupCount == AnomalyGrouper.maxGroups)
        let oldest = try #require(second.first { $0.sourceAddress == IPAddress(ipv4: 0x0A00_0000) }, "the oldest group's final report")
        #expect(oldest.features["group_members"] == 5)
        #expect(second.contains { $0.sourceAddress == IPAddress(ipv4: 0x0A00_0000 | UInt32(AnomalyGrouper.maxGroups)) })
        #expect(second.count == 2)
    }

    @Test("fewer than the minimum, or members sharing no address, stay as they are")
    func smallGroupsStay() {
        var grouper = AnomalyGrouper(minimum: 4, windowSeconds: 60)
        let three = (1...3).map { Self.target($0) }
        #expect(grouper.group(three, nowNs: 1) == three)
        var other = Self.target(9)
        other.sourceAddress = TrafficSimulator.ip("198.18.0.67")
        var labelled = Self.target(10)
        labelled.label = .synFlood
        let mixed = [other, labelled]
        var fresh = AnomalyGrouper(minimum: 4, windowSeconds: 60)
        #expect(fresh.group(mixed, nowNs: 1) == mixed)
    }

    @Test("later members join the group; it is reported again only when its count doubles, and forgotten after the window")
    func acrossPolls() throws {
        var grouper = AnomalyGrouper(minimum: 4, windowSeconds: 60)
        let s = UInt64(1_000_000_000)
        #expect(grouper.group((1...10).map { Self.target($0) }, nowNs: s).count == 1)
        // Two stragglers (below the minimum on their own) join, not reported alone.
        #expect(grouper.group((11...12).map { Self.target($0) }, nowNs: 2 * s).isEmpty)
        let doubled = grouper.group((13...20).map { Self.target($0) }, nowNs: 3 * s)
        #expect(doubled.count == 1)
        #expect(doubled.first?.explanation.first?.value == 20)
        #expect(doubled.first?.explanation.first?.members?.count == 20)
        // Two more join; once the group has not grown for a while, its final count is reported.
        #expect(grouper.group((23...24).map { Self.target($0) }, nowNs: 4 * s).isEmpty)
        #expect(grouper.group([], nowNs: 6 * s).isEmpty)
        let final = grouper.group([], nowNs: 9 * s)
        #expect(final.count == 1 && final.first?.explanation.first?.value == 22)
        #expect(final.first?.timeMs == 9000)
        #expect(grouper.group([], nowNs: 20 * s).isEmpty)
        // After the window a new group starts.
        let later = grouper.group((31...32).map { Self.target($0) }, nowNs: 70 * s)
        #expect(later.count == 2 && later.allSatisfy { $0.label == .unusualDestination })
    }

    @Test("forged sources of a flood, each a host whose one peer is the victim, are one anomaly about the victim")
    func forgedSources() throws {
        var grouper = AnomalyGrouper(minimum: 4, windowSeconds: 60)
        let sources = (1...50).map { i in
            Anomaly(sensor: "t", timeMs: 0, kind: .host, sourceAddress: TrafficSimulator.ip("198.19.3.\(i)"),
                    destinationAddress: Self.victim, score: 0.7, severity: .low, label: .unusualHost)
        }
        let out = grouper.group(sources, nowNs: 1)
        let g = try #require(out.first)
        #expect(out.count == 1)
        #expect(g.destinationAddress == Self.victim && g.sourceAddress == nil)
        #expect(g.explanation.first?.text == "unusual host from 50 sources at once at 198.18.1.1")
    }

    static func flow(from source: String, to destination: String, score: Double = 0.6) -> Anomaly {
        Anomaly(sensor: "t", timeMs: 0, kind: .flow, sourceAddress: TrafficSimulator.ip(source),
                destinationAddress: TrafficSimulator.ip(destination), sourcePort: 40000, destinationPort: 80, score: score,
                severity: .low, label: .unusualFlow, flowIDs: [1])
    }

    @Test("a forged flood's unusual flows, each from its own source to the victim, are one anomaly about the victim")
    func forgedFlows() throws {
        var grouper = AnomalyGrouper(minimum: 4, windowSeconds: 60)
        let forged = (1...400).map { Self.flow(from: "198.19.\($0 / 250).\($0 % 250 + 1)", to: "198.18.1.1", score: $0 == 9 ? 0.8 : 0.6) }
        // A scanner's flows share their source; they stay grouped on it, not on their targets.
        let scan = (1...5).map { _ in Self.flow(from: "198.18.0.66", to: "198.18.1.1") }
        let lone = Self.flow(from: "198.18.0.5", to: "198.18.2.2")
        let out = grouper.group(forged + scan + [lone], nowNs: 1)
        #expect(out.count == 3)
        #expect(out[0] == lone)
        let scanner = try #require(out.first { $0.sourceAddress == Self.sweeper })
        #expect(scanner.features["group_members"] == 5 && scanner.destinationAddress == nil)
        let victim = try #require(out.first { $0.destinationAddress == Self.victim })
        // Every forged flow was to port 80: the group keeps it.
        #expect(victim.sourceAddress == nil && victim.sourcePort == nil && victim.destinationPort == 80)
        #expect(victim.score == 0.8 && victim.label == .unusualFlow)
        #expect(victim.explanation.first?.text == "400 flows to 198.18.1.1 (unusual flow)")
        #expect(victim.explanation.first?.members?.first == "198.19.0.2")
        #expect(grouper.grouped == 405)
        // More forged flows in the next poll join the victim's group; none is reported alone.
        #expect(grouper.group((401...500).map { Self.flow(from: "198.19.9.\($0 % 250)", to: "198.18.1.1") }, nowNs: 2).isEmpty)
        #expect(grouper.grouped == 505)
        // Flows to another port join too, and the group no longer names one port.
        var other = (501...1000).map { Self.flow(from: "198.19.8.\($0 % 250)", to: "198.18.1.1") }
        for i in other.indices { other[i].destinationPort = 443 }
        let doubled = grouper.group(other, nowNs: 3)
        #expect(doubled.count == 1 && doubled.first?.features["group_members"] == 1000 && doubled.first?.destinationPort == nil)
    }

    @Test("anomalies a rule matched stay alone: a group's report would not name what the rule names")
    func suppressedStayAlone() {
        var grouper = AnomalyGrouper(minimum: 4, windowSeconds: 60)
        var matched = (1...6).map { Self.flow(from: "10.0.0.\($0)", to: "198.18.1.1") }
        for i in matched.indices { matched[i].suppressed = true }
        let out = grouper.group(matched, nowNs: 1)
        #expect(out == matched)
        #expect(grouper.grouped == 0)
    }

    @Test("a sweep of a range a rule covers raises no group that slips past the rule")
    func sweepOfAnExpectedRange() {
        let rule = Suppression(target: AddressBlock("198.18.7.0/24"), createdBy: "alice", reason: "the lab range", createdMs: 0)
        let found = Self.sweep(groupMinimum: 4, expecting: [rule])
        let swept = found.filter { $0.kind == .destination && $0.destinationAddress?.description.hasPrefix("198.18.7.") == true }
        #expect(swept.count > 20, "the simulated sweep no longer flags its targets (\(swept.count))")
        #expect(swept.allSatisfy { $0.suppressed })
        // Grouped, they would have been one host sweep with no destination, which the rule does not match.
        #expect(!found.contains { !$0.suppressed && $0.kind == .destination && $0.features["group_members"] != nil })
    }

    /// nmap -sn -PS22,80,443,3389,8080 -PE of a /24 with no live hosts: per
    /// address an echo request and a SYN to each of five ports, none answered.
    static func tcpPingSweep(_ s: inout TrafficSimulator, _ second: Int) {
        guard second <= 3 else { return }
        for i in 0..<85 where (second - 1) * 85 + i < 254 {
            let target = TrafficSimulator.ip("198.18.7.\((second - 1) * 85 + i + 1)")
            let t = s.nowNs + UInt64(i) * 10_000_000
            s.packet(at: t, Attacks.attacker, target, sport: 8, dport: 0, proto: 1, length: 28, icmpType: 8)
            for (k, port) in [22, 80, 443, 3389, 8080].enumerated() {
                s.packet(at: t + UInt64(k + 1) * 100_000, Attacks.attacker, target, sport: 41000, dport: UInt16(port), proto: 6,
                         length: 44, flags: .syn)
            }
        }
    }

    /// Anomalies about the sweeper or the swept range.
    static func sweep(groupMinimum: Int, expecting rules: [Suppression] = []) -> [Anomaly] {
        var sim = TrafficSimulator()
        var detector = trainedDetector(&sim) { $0.groupMinimum = groupMinimum }
        detector.setExpected(rules)
        let found = sim.runAttack(seconds: 12, into: &detector, Self.tcpPingSweep).map(\.anomaly)
        return found.filter { $0.sourceAddress == Attacks.attacker || $0.destinationAddress?.description.hasPrefix("198.18.7.") == true }
    }

    @Test("a TCP ping sweep of a /24 raises a handful of anomalies, where ungrouped it raised one per swept address")
    func sweepRaisesAHandful() throws {
        let ungrouped = Self.sweep(groupMinimum: Int.max)
        let grouped = Self.sweep(groupMinimum: 4)
        let summary = grouped.map { "\($0.kind) \($0.label) \($0.explanation.first?.text ?? "")" }
        #expect(ungrouped.count > 20, "the simulated sweep no longer flags its targets (\(ungrouped.count)); the test needs another")
        #expect(grouped.count <= 6, "\(grouped.count) anomalies: \(summary)")
        #expect(grouped.contains { $0.label == .hostSweep && $0.sourceAddress == Attacks.attacker })
        // Nothing is lost: the grouped anomalies count every swept address the ungrouped run flagged.
        let counted = grouped.compactMap { $0.features["group_members"] }.max() ?? 0
        let members = ungrouped.filter { $0.kind == .destination }.count
        #expect(Int(counted) == members, "grouped \(counted) of \(members) flagged addresses")
    }
}
