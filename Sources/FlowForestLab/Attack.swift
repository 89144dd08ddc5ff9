public import FlowForestCore

/// Attacks the evaluation runs, each with a real tool and a bounded size.
///
/// The first eight are the reference scenarios. The variants change the
/// tool, the rate or the shape of the same behaviours (slower, smaller,
/// spoofed, jittered, another protocol), so a detector tuned to the reference
/// runs shows whether it found the behaviour or only those runs.
public enum Attack: CaseIterable, Sendable {
    case synScan, pingSweep, synFlood, udpFlood, icmpFlood, slowConnections, beaconing, exfiltration

    case politeConnectScan, udpScan, finScan, synSweep, slowSynFlood, spoofedSynFlood, spoofedICMPFlood
    case fewSlowConnections, jitteredBeacon, slowExfiltration

    /// The reference scenarios (the demo cycles through these).
    public static let reference: [Attack] = [.synScan, .pingSweep, .synFlood, .udpFlood, .icmpFlood, .slowConnections, .beaconing, .exfiltration]

    /// True for the variants of the reference scenarios.
    public var isVariant: Bool { !Self.reference.contains(self) }

    /// The label the detector should give.
    public var expectedLabel: AnomalyLabel {
        switch self {
        case .synScan, .politeConnectScan, .udpScan, .finScan: return .portScan
        case .pingSweep, .synSweep: return .hostSweep
        case .synFlood, .slowSynFlood, .spoofedSynFlood: return .synFlood
        case .udpFlood: return .udpFlood
        case .icmpFlood, .spoofedICMPFlood: return .icmpFlood
        case .slowConnections, .fewSlowConnections: return .slowConnections
        case .beaconing, .jitteredBeacon: return .beaconing
        case .exfiltration, .slowExfiltration: return .exfiltration
        }
    }

    /// How a variant differs from its reference scenario; nil for those.
    var variation: String? {
        switch self {
        case .politeConnectScan: return "nmap -sT -T2 on 100 ports"
        case .udpScan: return "nmap -sU on the top 100 UDP ports"
        case .finScan: return "nmap -sF on 1000 ports"
        case .synSweep: return "nmap -sn -PS22 (TCP SYN) of a /24"
        case .slowSynFlood: return "200 SYN/s"
        case .spoofedSynFlood: return "spoofed sources across a /16"
        case .spoofedICMPFlood: return "spoofed sources across a /16"
        case .fewSlowConnections: return "20 connections"
        case .jitteredBeacon: return "every 2 s with ±5 % jitter"
        case .slowExfiltration: return "40 MB at 4 MB/s"
        default: return nil
        }
    }

    /// The scenario's name in reports and `make eval ONLY=...`: the expected
    /// label, then how a variant differs ("port scan: nmap -sF on 1000 ports").
    public var name: String {
        expectedLabel.rawValue + (variation.map { ": " + $0 } ?? "")
    }

    /// Seconds the tool may run before it is stopped.
    public var timeLimit: Double {
        switch self {
        case .politeConnectScan: return 55
        case .beaconing: return 40
        case .jitteredBeacon: return 45
        case .slowConnections, .fewSlowConnections: return 30
        default: return 25
        }
    }

    /// hping3 floods are cut off by `timeout`.
    var nonZeroExitIsNormal: Bool { [.synFlood, .udpFlood, .icmpFlood, .slowSynFlood].contains(self) }

    func command(in lab: TrafficLab) -> [String] {
        let a = lab.attacker
        let nmap = ["nmap", "-Pn", "-n", "-S", a, "-e", lab.clientInterface]
        let hping = ["timeout", "-k", "2", "10", "hping3"]
        switch self {
        case .synScan:
            return nmap + ["-sS", "-p", "1-1000", "-T4", "--max-retries", "1", lab.server]
        case .pingSweep:
            return ["nmap", "-sn", "-n", "--send-ip", "-S", a, "-e", lab.clientInterface, "-T4", "--max-retries", "0", lab.sweepRange]
        case .synFlood:
            return hping + ["-S", "-p", "80", "-a", a, "-c", "30000", "-i", "u100", "-q", lab.server]
        case .udpFlood:
            return hping + ["--udp", "-p", "53", "-a", a, "-d", "512", "-c", "30000", "-i", "u100", "-q", lab.server]
        case .icmpFlood:
            return hping + ["--icmp", "-a", a, "-d", "512", "-c", "30000", "-i", "u100", "-q", lab.server]
        case .slowConnections:
            return ["python3", "-c", Scripts.slowConnections(source: a, server: lab.server, count: 150, seconds: 20)]
        case .beaconing:
            return ["python3", "-c", Scripts.beacon(source: a, target: lab.outside, port: 8443, interval: 0.5, jitter: 0, count: 60)]
        case .exfiltration:
            return ["python3", "-c", Scripts.upload(source: a, target: lab.outside, port: 443, bytes: 200_000_000, bytesPerSecond: nil)]
        case .politeConnectScan:
            return nmap + ["-sT", "-p", "1-100", "-T2", "--max-retries", "0", lab.server]
        case .udpScan:
            return nmap + ["-sU", "--top-ports", "100", "-T4", "--max-retries", "1", lab.server]
        case .finScan:
            return nmap + ["-sF", "-p", "1-1000", "-T4", "--max-retries", "1", lab.server]
        case .synSweep:
            return ["nmap", "-sn", "-n", "-PS22", "-S", a, "-e", lab.clientInterface, "-T4", "--max-retries", "0", lab.sweepRange]
        case .slowSynFlood:
            return hping + ["-S", "-p", "80", "-a", a, "-c", "2000", "-i", "u5000", "-q", lab.server]
        case .spoofedSynFlood:
            return ["python3", "-c", Scripts.spoofedFlood(server: lab.server, protocol: 6, port: 80, rate: 3000, seconds: 8)]
        case .spoofedICMPFlood:
            return ["python3", "-c", Scripts.spoofedFlood(server: lab.server, protocol: 1, port: 0, rate: 3000, seconds: 8)]
        case .fewSlowConnections:
            return ["python3", "-c", Scripts.slowConnections(source: a, server: lab.server, count: 20, seconds: 20)]
        case .jitteredBeacon:
            return ["python3", "-c", Scripts.beacon(source: a, target: lab.outside, port: 8443, interval: 2, jitter: 0.05, count: 20)]
        case .slowExfiltration:
            return ["python3", "-c", Scripts.upload(source: a, target: lab.outside, port: 443, bytes: 40_000_000, bytesPerSecond: 4_000_000)]
        }
    }
}
