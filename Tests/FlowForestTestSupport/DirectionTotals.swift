import FlowForestCore
public import Foundation

/// Packets and bytes per flow direction, keyed "proto src sport dst dport"
/// (protocol number, addresses as FlowForest writes them, ICMP ports 0): the
/// form in which tests compare FlowForest's flows with a collector's.
public typealias DirectionTotals = [String: (packets: UInt64, bytes: UInt64)]

public enum Direction {
    /// The key of one direction; `source`/`destination` are addresses in any
    /// text form a collector prints (pmacct and nfdump write IPv6 their own way).
    public static func key(_ proto: UInt8, _ source: String, _ sourcePort: String, _ destination: String, _ destinationPort: String) -> String {
        let icmp = IPProtocol.isICMP(proto)
        let (src, dst) = (IPAddress(source).map { "\($0)" } ?? source, IPAddress(destination).map { "\($0)" } ?? destination)
        return "\(proto) \(src) \(icmp ? "0" : sourcePort) \(dst) \(icmp ? "0" : destinationPort)"
    }

    /// A protocol as collectors print it: a name (tcp, UDP, ICMP6, ipv6-icmp) or a number.
    public static func protocolNumber(_ text: String) -> UInt8? {
        let names: [String: UInt8] = ["tcp": IPProtocol.tcp, "udp": IPProtocol.udp, "icmp": IPProtocol.icmp,
                                      "icmp6": IPProtocol.icmpv6, "ipv6-icmp": IPProtocol.icmpv6]
        return names[text.lowercased()] ?? UInt8(text)
    }

    /// The per-direction totals of flows as `flowforest` prints them in JSON
    /// (`--print-flows json` lines, `analyze --format json` flows): only ended
    /// flows, whose counts are final.
    public static func totals(ofFlows flows: [[String: Any]]) -> DirectionTotals {
        var totals: DirectionTotals = [:]
        for f in flows where f["state"] as? String == "ended" {
            guard let proto = protocolNumber(f["protocol"] as? String ?? ""), let src = f["src_ip"] as? String, let dst = f["dst_ip"] as? String else { continue }
            let (sport, dport) = ("\(f["src_port"] as? Int ?? 0)", "\(f["dst_port"] as? Int ?? 0)")
            for (side, k) in [("fwd", key(proto, src, sport, dst, dport)), ("rev", key(proto, dst, dport, src, sport))] {
                let d = f[side] as? [String: Any] ?? [:]
                let packets = UInt64(d["packets"] as? Int ?? 0), bytes = UInt64(d["bytes"] as? Int ?? 0)
                guard packets > 0 else { continue }
                totals[k, default: (0, 0)].packets += packets
                totals[k, default: (0, 0)].bytes += bytes
            }
        }
        return totals
    }
}

/// nfdump reading the files nfcapd wrote.
public enum Nfdump {
    /// nfdump's records in `directory` summed per direction: a biflow's
    /// "out" counts belong to the reply direction.
    public static func totals(_ directory: URL) throws -> DirectionTotals {
        let out = try ChildProcess.output("/usr/bin/nfdump", ["-R", directory.path, "-q", "-N", "-o", "fmt:%pr|%sa|%sp|%da|%dp|%ipkt|%ibyt|%opkt|%obyt"])
        var totals: DirectionTotals = [:]
        for line in out.split(separator: "\n") {
            let f = line.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
            guard f.count == 9, let proto = Direction.protocolNumber(f[0]), let inPackets = UInt64(f[5]), let inBytes = UInt64(f[6]),
                  let outPackets = UInt64(f[7]), let outBytes = UInt64(f[8]) else {
                throw PeerError("nfdump printed an unexpected line: \(line)")
            }
            let forward = Direction.key(proto, f[1], f[2], f[3], f[4]), reverse = Direction.key(proto, f[3], f[4], f[1], f[2])
            totals[forward, default: (0, 0)].packets += inPackets
            totals[forward, default: (0, 0)].bytes += inBytes
            if outPackets > 0 {
                totals[reverse, default: (0, 0)].packets += outPackets
                totals[reverse, default: (0, 0)].bytes += outBytes
            }
        }
        return totals
    }
}
