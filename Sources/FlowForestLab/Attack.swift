public import FlowForestCore

/// Which evaluation set a scenario belongs to. Rules and thresholds are
/// tuned on the development set only; the validation set (other tools,
/// flags, rates, targets and normal-traffic seeds) shows whether they hold
/// on attacks they were not tuned on.
public enum EvalSet: String, Sendable, CaseIterable {
    case development, validation
}

/// Attacks the evaluation runs, each with a real tool and a bounded size.
///
/// The first eight are the reference scenarios. The variants change the
/// tool, the rate or the shape of the same behaviours (slower, smaller,
/// spoofed, jittered, another protocol), so a detector tuned to the reference
/// runs shows whether it found the behaviour or only those runs. Reference
/// and variants are the development set; the validation cases are the
/// validation set.
public enum Attack: CaseIterable, Sendable {
    case synScan, pingSweep, synFlood, udpFlood, icmpFlood, slowConnections, beaconing, exfiltration

    case politeConnectScan, udpScan, finScan, synSweep, slowSynFlood, spoofedSynFlood, spoofedICMPFlood
    case fewSlowConnections, jitteredBeacon, slowExfiltration

    // Validation: never used to tune rules or thresholds.
    case ackFlood, finFloodOnePort, lowRSTFlood, pshAckFlood, xmasFlood, forgedACKFlood, forgedXmasFlood, forgedUDPFlood
    case lowICMPFlood, ackScan, xmasScan, nullScan, slowUDPScan, ackPingSweep, udpPingSweep, synPingSweepT3
    case connectionFlood, windowScan, maimonScan, sctpInitScan, protocolScan, subnetSynScan, slowJitteredBeacon

    /// The reference scenarios (the demo cycles through these).
    public static let reference: [Attack] = [.synScan, .pingSweep, .synFlood, .udpFlood, .icmpFlood, .slowConnections, .beaconing, .exfiltration]

    /// The development set: the reference scenarios and their variants.
    public static let development: [Attack] = Array(allCases.prefix(while: { $0 != .ackFlood }))
    /// The validation set.
    public static let validation: [Attack] = allCases.filter { !development.contains($0) }

    /// True for the variants of the reference scenarios.
    public var isVariant: Bool { !Self.reference.contains(self) }

    /// The set the scenario belongs to.
    public var evalSet: EvalSet { Self.development.contains(self) ? .development : .validation }

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
        case .ackFlood, .finFloodOnePort, .lowRSTFlood, .pshAckFlood, .xmasFlood, .forgedACKFlood, .forgedXmasFlood: return .tcpFlood
        case .forgedUDPFlood: return .udpFlood
        case .lowICMPFlood: return .icmpFlood
        case .ackScan, .xmasScan, .nullScan, .slowUDPScan: return .portScan
        case .ackPingSweep, .udpPingSweep, .synPingSweepT3: return .hostSweep
        case .connectionFlood: return .connectionFlood
        case .windowScan, .maimonScan, .sctpInitScan, .protocolScan: return .portScan
        case .subnetSynScan: return .hostSweep
        case .slowJitteredBeacon: return .beaconing
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
        case .ackFlood: return "hping3 -A, 10 000/s, new source port per packet"
        case .finFloodOnePort: return "hping3 -F -k to a closed port, 5000/s, one source port"
        case .lowRSTFlood: return "hping3 -R, 400/s"
        case .pshAckFlood: return "hping3 -P -A, 5000/s"
        case .xmasFlood: return "hping3 -F -P -U (XMAS), 5000/s"
        case .forgedACKFlood: return "hping3 -A --rand-source, 3000/s"
        case .forgedXmasFlood: return "hping3 -F -P -U --rand-source, 3000/s"
        case .forgedUDPFlood: return "hping3 --udp --rand-source to port 123, 3000/s"
        case .lowICMPFlood: return "hping3 --icmp, 400/s"
        case .ackScan: return "nmap -sA -T4 on 1000 ports"
        case .xmasScan: return "nmap -sX -T3 on 500 ports"
        case .nullScan: return "nmap -sN -T5 on the top 200 ports"
        case .slowUDPScan: return "nmap -sU -T3 on ports 1-60"
        case .ackPingSweep: return "nmap -sn -PA80 (TCP ACK) of a /24"
        case .udpPingSweep: return "nmap -sn -PU53 (UDP) of a /24"
        case .synPingSweepT3: return "nmap -sn -PS443 -T3 of a /24"
        case .connectionFlood: return "20 parallel curl loops of completed HTTP requests"
        case .windowScan: return "nmap -sW -T4 on 1000 ports"
        case .maimonScan: return "nmap -sM -T4 on 1000 ports"
        case .sctpInitScan: return "nmap -sY -T4 on the top 100 SCTP ports"
        case .protocolScan: return "nmap -sO -T4 (IP protocols)"
        case .subnetSynScan: return "nmap -sS -T4 on ports 22, 80, 443 of a /24"
        case .slowJitteredBeacon: return "every 5 s with ±10 % jitter"
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
        case .slowUDPScan, .xmasScan, .synPingSweepT3, .protocolScan, .sctpInitScan: return 60
        case .slowJitteredBeacon: return 75
        case .beaconing: return 40
        case .jitteredBeacon: return 45
        case .slowConnections, .fewSlowConnections: return 30
        default: return 25
        }
    }

    /// hping3 floods are cut off by `timeout`; curl loops fail requests the flood slows.
    var nonZeroExitIsNormal: Bool {
        [.synFlood, .udpFlood, .icmpFlood, .slowSynFlood, .ackFlood, .finFloodOnePort, .lowRSTFlood, .pshAckFlood, .xmasFlood,
         .forgedACKFlood, .forgedXmasFlood, .forgedUDPFlood, .lowICMPFlood, .connectionFlood].contains(self)
    }

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
        default:
            return validationCommand(in: lab)
        }
    }

    /// The validation set's commands: other tools, flags, rates and targets.
    private func validationCommand(in lab: TrafficLab) -> [String] {
        let a = lab.attacker
        let nmap = ["nmap", "-Pn", "-n", "-S", a, "-e", lab.clientInterface]
        let sweep = ["nmap", "-sn", "-n", "-S", a, "-e", lab.clientInterface, "--max-retries", "0"]
        let hping = ["timeout", "-k", "2", "10", "hping3", "-q"]
        switch self {
        case .ackFlood: return hping + ["-A", "-p", "80", "-a", a, "-c", "60000", "-i", "u100", lab.server]
        case .finFloodOnePort: return hping + ["-F", "-p", "8080", "-s", "3333", "-k", "-a", a, "-c", "30000", "-i", "u200", lab.server]
        case .lowRSTFlood: return hping + ["-R", "-p", "22", "-a", a, "-c", "3000", "-i", "u2500", lab.server]
        case .pshAckFlood: return hping + ["-P", "-A", "-p", "80", "-a", a, "-d", "64", "-c", "30000", "-i", "u200", lab.server]
        case .xmasFlood: return hping + ["-F", "-P", "-U", "-p", "80", "-a", a, "-c", "30000", "-i", "u200", lab.server]
        case .forgedACKFlood: return hping + ["-A", "-p", "80", "--rand-source", "-c", "20000", "-i", "u333", lab.server]
        case .forgedXmasFlood: return hping + ["-F", "-P", "-U", "-p", "443", "--rand-source", "-c", "20000", "-i", "u333", lab.server]
        case .forgedUDPFlood: return hping + ["--udp", "-p", "123", "--rand-source", "-d", "48", "-c", "20000", "-i", "u333", lab.server]
        case .lowICMPFlood: return hping + ["--icmp", "-a", a, "-d", "56", "-c", "3000", "-i", "u2500", lab.server]
        case .ackScan: return nmap + ["-sA", "-p", "1-1000", "-T4", "--max-retries", "1", lab.server]
        case .xmasScan: return nmap + ["-sX", "-p", "1-500", "-T3", "--max-retries", "1", lab.server]
        case .nullScan: return nmap + ["-sN", "--top-ports", "200", "-T5", lab.server]
        case .slowUDPScan: return nmap + ["-sU", "-p", "1-60", "-T3", "--max-retries", "0", lab.server]
        case .ackPingSweep: return sweep + ["-PA80", "-T4", lab.sweepRange]
        case .udpPingSweep: return sweep + ["-PU53", "-T4", lab.sweepRange]
        case .synPingSweepT3: return sweep + ["-PS443", "-T3", lab.sweepRange]
        case .windowScan: return nmap + ["-sW", "-p", "1-1000", "-T4", "--max-retries", "1", lab.server]
        case .maimonScan: return nmap + ["-sM", "-p", "1-1000", "-T4", "--max-retries", "1", lab.server]
        case .sctpInitScan: return nmap + ["-sY", "--top-ports", "100", "-T4", "--max-retries", "1", lab.server]
        case .protocolScan: return nmap + ["-sO", "-T4", "--max-retries", "1", lab.server]
        case .subnetSynScan: return nmap + ["-sS", "-p", "22,80,443", "-T4", "--max-retries", "0", lab.sweepRange]
        case .slowJitteredBeacon:
            return ["python3", "-c", Scripts.beacon(source: a, target: lab.outside, port: 8443, interval: 5, jitter: 0.1, count: 14)]
        case .connectionFlood:
            // Bounded: 20 loops of at most 150 requests each, and the scenario's time limit.
            return ["bash", "-c", "seq 20 | xargs -P 20 -I{} bash -c 'for i in $(seq 150); do curl -s -o /dev/null --max-time 2 "
                + "--interface \(a) http://\(lab.server)/index.html; done'"]
        default: return []
        }
    }
}
