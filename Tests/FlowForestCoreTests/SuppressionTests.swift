import FlowForestCore
import Testing

@Suite("Suppression rules")
struct SuppressionTests {
    @Test("address blocks parse strictly and match within their family")
    func blocks() throws {
        let v4 = try #require(AddressBlock("198.18.0.0/15"))
        #expect(v4.contains(IPAddress("198.19.255.255")!) && !v4.contains(IPAddress("198.20.0.0")!))
        #expect(!v4.contains(IPAddress("::ffff:0:0")!) || IPAddress("::ffff:0:0")!.isIPv4)
        let v6 = try #require(AddressBlock("2001:db8::/32"))
        #expect(v6.contains(IPAddress("2001:db8:ffff::1")!) && !v6.contains(IPAddress("2001:db9::1")!))
        #expect(!v6.contains(IPAddress("198.18.0.1")!))
        #expect(AddressBlock("198.18.0.7")?.description == "198.18.0.7/32")
        #expect(AddressBlock("0.0.0.0/0")?.contains(IPAddress("203.0.113.9")!) == true)
        for bad in ["198.18.0.7/15", "198.18.0.0/33", "198.18.0.0/", "198.18.0.0/-1", "2001:db8::/129", "nonsense", "198.18.0.0/1x"] {
            #expect(AddressBlock(bad) == nil, "\(bad)")
        }
        #expect(AddressBlock(masking: "198.18.0.7/15")?.description == "198.18.0.0/15")
        #expect(AddressBlock(masking: "2001:db8::1/32")?.description == "2001:db8::/32")
    }

    @Test("a rule matches only when every criterion it names does, and not after it expires")
    func matching() {
        let scan = Anomaly(sensor: "s", timeMs: 1000, kind: .host, sourceAddress: IPAddress("198.18.0.7"),
                           destinationAddress: IPAddress("198.18.1.1"), destinationPort: 22, score: 0.9, severity: .high, label: .portScan)
        func rule(actor: String? = nil, target: String? = nil, ports: [UInt16] = [], label: AnomalyLabel? = nil, expires: Int64? = nil) -> Suppression {
            Suppression(actor: actor.flatMap { AddressBlock($0) }, target: target.flatMap { AddressBlock($0) }, ports: ports, label: label,
                        expiresMs: expires, createdBy: "alice", reason: "scanner", createdMs: 0)
        }
        #expect(rule(actor: "198.18.0.0/24").matches(scan, nowMs: 2000))
        #expect(rule(actor: "198.18.0.0/24", ports: [22, 443], label: .portScan).matches(scan, nowMs: 2000))
        #expect(!rule(actor: "198.18.0.0/24", ports: [443]).matches(scan, nowMs: 2000))
        #expect(!rule(target: "198.18.0.0/24").matches(scan, nowMs: 2000))
        #expect(!rule(label: .synFlood).matches(scan, nowMs: 2000))
        #expect(rule(label: .portScan, expires: 3000).matches(scan, nowMs: 2999))
        #expect(!rule(label: .portScan, expires: 3000).matches(scan, nowMs: 3000))
        // No criterion: matches nothing rather than everything.
        #expect(!rule().matches(scan, nowMs: 2000))
        var portless = scan
        portless.destinationPort = nil
        #expect(!rule(ports: [22]).matches(portless, nowMs: 2000))
    }

    @Test("a labelled rule for an actor or target covers its odd flows too, but a label alone silences no unusual anomaly")
    func unusualAnomaliesOfAMarkedBehaviour() {
        let odd = Anomaly(sensor: "s", timeMs: 1000, kind: .flow, sourceAddress: IPAddress("198.18.0.7"),
                          destinationAddress: IPAddress("198.18.1.1"), destinationPort: 22, score: 0.8, severity: .medium, label: .unusualFlow)
        func rule(actor: String? = nil, target: String? = nil, label: AnomalyLabel?) -> Suppression {
            Suppression(actor: actor.flatMap { AddressBlock($0) }, target: target.flatMap { AddressBlock($0) }, label: label,
                        createdBy: "alice", reason: "scanner", createdMs: 0)
        }
        #expect(rule(actor: "198.18.0.7", label: .portScan).matches(odd, nowMs: 2000))
        #expect(rule(target: "198.18.1.1", label: .portScan).matches(odd, nowMs: 2000))
        #expect(!rule(actor: "198.18.0.8", label: .portScan).matches(odd, nowMs: 2000))
        #expect(!rule(label: .portScan).matches(odd, nowMs: 2000))
        var flood = odd
        flood.label = .synFlood
        #expect(!rule(actor: "198.18.0.7", label: .portScan).matches(flood, nowMs: 2000))
    }
}
