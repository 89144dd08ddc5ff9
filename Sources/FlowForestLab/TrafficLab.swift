public import Foundation

/// A small network of test hosts for detection runs: clients and an
/// attacker share one namespace (each with its own address), servers and an
/// "outside" host share another, and one veth pair joins them. A sensor on
/// the servers' side of the pair sees every packet exactly once.
///
/// Addresses (all in 198.18.0.0/15):
/// - clients 198.18.0.11–13, more clients 198.18.0.20–31 (the validation
///   set's normal traffic), attacker 198.18.0.66 (namespace `clients`)
/// - server 198.18.0.2 (HTTP on 80, DNS-style UDP on 53, NTP-style UDP on
///   123, a silent metrics sink on UDP 8125), outside host
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
    /// Further clients: normal traffic from many hosts, not only three.
    public let moreClients = (20...31).map { "198.18.0.\($0)" }
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
        for address in clients.dropFirst() + moreClients + [attacker] {
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
        for port in [53, 123] {
            _ = try lab.spawn(in: serversNamespace, ["python3", "-c", Scripts.udpEcho(address: server, port: port)])
        }
        _ = try lab.spawn(in: serversNamespace, ["python3", "-c", Scripts.udpSink(address: server, port: 8125)])
        for port in [443, 8443] {
            _ = try lab.spawn(in: serversNamespace, ["python3", "-c", Scripts.tcpSink(address: outside, port: port)])
        }
        try Wait.blockingUntil("the lab's HTTP server on \(server) to answer", timeout: 15, every: 0.1) {
            (try? lab.run(in: clientsNamespace, ["curl", "-s", "-o", "/dev/null", "--max-time", "1", "http://\(server)/index.html"], timeout: 3))?.status == 0
        }
    }

    /// Starts background normal traffic for `seconds`: web browsing from each
    /// client, DNS-style queries, occasional pings and bulk downloads; with
    /// `manyClients`, from the three clients and twelve more; with
    /// `siteJobs`, also the machine traffic of `Scripts.siteJobs` (periodic
    /// NTP-like queries, updates, backups, a chatty metrics service, idle
    /// keep-alives). Returns the processes (they end by themselves).
    @discardableResult
    public func startNormalTraffic(seconds: Double, seed: Int = 1, manyClients: Bool = false,
                                   siteJobs: Bool = false) throws -> [Process] {
        var processes = try (manyClients ? clients + moreClients : clients).enumerated().map { index, client in
            try lab.spawn(in: clientsNamespace, ["python3", "-c", Scripts.normalClient(
                source: client, server: server, seconds: seconds, seed: seed * 100 + index)])
        }
        if siteJobs {
            processes.append(try lab.spawn(in: clientsNamespace, ["python3", "-c", Scripts.siteJobs(
                clients: clients, server: server, outside: outside, seconds: seconds, seed: seed * 100 + 99)]))
        }
        return processes
    }

    /// Runs one attack to completion (each is bounded in packets and time).
    public func run(_ attack: Attack) throws {
        let result = try lab.run(in: clientsNamespace, attack.command(in: self), timeout: attack.timeLimit)
        if result.status != 0 && !result.timedOut && !attack.nonZeroExitIsNormal {
            throw LabError.failed(command: attack.command(in: self), status: result.status, stderr: result.stderr)
        }
    }
}
