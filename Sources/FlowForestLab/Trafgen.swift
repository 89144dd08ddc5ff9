public import Foundation

/// trafgen (netsniff-ng) packet configurations and runs.
public enum Trafgen {
    public struct Result: Sendable {
        public var packets: UInt64
        public var seconds: Double
        public var packetsPerSecond: Double { seconds > 0 ? Double(packets) / seconds : 0 }
    }

    /// Most flows ``udp(flows:frameBytes:)`` makes from source ports alone.
    public static let portFlows = 60_000

    /// How `flows` concurrent flows are spread: up to ``portFlows`` over
    /// source ports of one address; past that over source addresses of
    /// 198.18.0.0/15 (a power of two of them) and source ports (an odd
    /// number) stepped together, so every pair comes once per cycle. Nil for
    /// a count that cannot be split so (its power-of-two part over 131,072,
    /// or its odd part over ``portFlows``).
    public static func shape(flows: Int) -> (addresses: Int, ports: Int)? {
        guard flows > 0 else { return nil }
        if flows <= portFlows { return (1, flows) }
        let addresses = min(flows & -flows, 131_072)
        let ports = flows / addresses
        guard addresses * ports == flows, ports <= portFlows, ports % 2 == 1 || addresses == 1 else { return nil }
        return (addresses, ports)
    }

    /// UDP over IPv4 to a MAC that is not the receiver's, so frames are
    /// dropped after the hooks as on a mirror port; `flows` concurrent flows
    /// as ``shape(flows:)`` spreads them (a count it cannot split is cut to
    /// ``portFlows``: validate with `shape` first).
    public static func udp(flows: Int, frameBytes: Int) -> String {
        let (addresses, ports) = shape(flows: flows) ?? (1, portFlows)
        let sport = ports > 1 ? "dinc(1024, \(1024 + ports - 1))" : "1024"
        // 198.18.0.0 as a 32-bit number: trafgen steps the whole address.
        let base = 198 << 24 | 18 << 16
        let saddr = addresses > 1 ? "sa=198.18.0.0, sa=dinc(\(base), \(base + addresses - 1))" : "sa=198.18.0.1"
        return "{ eth(da=02:00:00:00:00:02, sa=02:00:00:00:00:01), ipv4(\(saddr), da=198.18.0.2), "
            + "udp(sp=\(sport), dp=9), fill(0, \(max(0, frameBytes - 42))) }"
    }

    /// Churn: every packet from a random source address and port, as a
    /// forged flood is, to the same MAC trick as ``udp(flows:frameBytes:)``.
    public static func churn(frameBytes: Int) -> String {
        "{ eth(da=02:00:00:00:00:02, sa=02:00:00:00:00:01), ipv4(sa=198.18.0.1, sa=drnd(), da=198.18.0.2), "
            + "udp(sp=drnd(), dp=9), fill(0, \(max(0, frameBytes - 42))) }"
    }

    /// - Parameter gap: trafgen's `--gap` between packets (e.g. "100us");
    ///   full speed when nil. (Its `--rate` does not pace short runs.)
    public static func run(lab: NetworkLab, namespace: String, interface: String, config: String, packets: Int, cpus: Int, gap: String? = nil) throws -> Result {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("ff-trafgen-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).cfg")
        try config.write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        let r = try lab.check(in: namespace, [
            "trafgen", "--dev", interface, "--conf", file.path, "--num", String(packets),
            "--cpus", String(cpus), "--no-sock-mem",
        ] + (gap.map { ["--gap", $0] } ?? []), timeout: 300)
        return parse(r.stdout + r.stderr)
    }

    /// Reads trafgen's closing summary ("N packets outgoing", "S sec, U usec on CPUk").
    public static func parse(_ output: String) -> Result {
        var packets: UInt64 = 0
        var seconds = 0.0
        for line in output.split(separator: "\n") {
            // Each summary line starts with a carriage return.
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\r" }).map(String.init)
            if words.count >= 3, words[1] == "packets", words[2] == "outgoing", let n = UInt64(words[0]) { packets = n }
            if let sec = words.firstIndex(of: "sec,"), sec >= 1, let s = Double(words[sec - 1]),
               sec + 1 < words.count, let us = Double(words[sec + 1]) {
                seconds = max(seconds, s + us / 1e6)
            }
        }
        return Result(packets: packets, seconds: seconds)
    }
}
