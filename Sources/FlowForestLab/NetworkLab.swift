public import Foundation
import Synchronization

/// Test hosts in network namespaces joined by veth pairs, for lab tests and
/// `flowforest bench`. Only addresses in 198.18.0.0/15 (IPv4) and
/// 2001:2::/48 (IPv6) — the benchmarking ranges — are used.
///
/// Everything created is recorded and removed by ``teardown()`` (also run by
/// `deinit`): processes left in a namespace are killed first, because
/// deleting a namespace does not end them.
public final class NetworkLab: @unchecked Sendable {
    // @unchecked: mutable bookkeeping is guarded by `lock`.
    private let lock = NSLock()
    /// Held for a whole teardown (``teardown()``).
    private let teardownLock = NSLock()
    private var namespaces: [String] = []
    private var background: [Process] = []
    /// Unique per lab: namespace and interface names carry it.
    public let tag: String

    private static let sequence = Atomic<Int>(0)
    private static let links = Atomic<Int>(0)

    /// Name prefix of every namespace a lab creates; stale ones from crashed
    /// runs are recognised by it.
    public static let namespacePrefix = "fflab-"

    public init() throws {
        guard Command.isRoot else { throw LabError.notRoot }
        NetworkLab.removeStale()
        let pid = ProcessInfo.processInfo.processIdentifier
        // pid plus a per-process sequence number: unique across concurrent
        // labs, and the pid tells removeStale() whether the owner is alive.
        tag = "\(pid)x\(NetworkLab.sequence.wrappingAdd(1, ordering: .relaxed).oldValue % 1000)"
    }

    deinit { teardown() }

    /// Creates a namespace with loopback up; returns its name.
    public func addNamespace(_ role: String) throws -> String {
        let name = "\(NetworkLab.namespacePrefix)\(tag)-\(role)"
        try Command.check(["ip", "netns", "add", name])
        lock.withLock { namespaces.append(name) }
        try Command.check(["ip", "-n", name, "link", "set", "lo", "up"])
        return name
    }

    /// A veth pair between two namespaces with the given CIDR addresses
    /// (e.g. "198.18.0.1/24"). Returns the interface names on each side.
    /// - Parameter queues: transmit and receive queues of each end. Native
    ///   XDP on a veth gives each receive queue one ring, which pushes back
    ///   on more senders than queues (trafgen then fails with EAGAIN).
    @discardableResult
    public func connect(_ a: String, address aAddress: String, _ b: String, address bAddress: String,
                        ipv6: (String, String)? = nil, queues: Int = 1) throws -> (String, String) {
        // Interface names are limited to 15 bytes: "ffv" + pid (at most 7
        // digits) + "-" + a per-process link number below 1000 + side.
        let number = NetworkLab.links.wrappingAdd(1, ordering: .relaxed).oldValue % 1000
        let pid = ProcessInfo.processInfo.processIdentifier
        let aName = "ffv\(pid)-\(number)a", bName = "ffv\(pid)-\(number)b"
        let q = ["numtxqueues", "\(queues)", "numrxqueues", "\(queues)"]
        try Command.check(["ip", "link", "add", aName, "netns", a] + q + ["type", "veth", "peer", "name", bName, "netns", b] + q)
        try Command.check(["ip", "-n", a, "addr", "add", aAddress, "dev", aName])
        try Command.check(["ip", "-n", b, "addr", "add", bAddress, "dev", bName])
        if let (a6, b6) = ipv6 {
            try Command.check(["ip", "-n", a, "addr", "add", a6, "dev", aName, "nodad"])
            try Command.check(["ip", "-n", b, "addr", "add", b6, "dev", bName, "nodad"])
        }
        try Command.check(["ip", "-n", a, "link", "set", aName, "up"])
        try Command.check(["ip", "-n", b, "link", "set", bName, "up"])
        return (aName, bName)
    }

    /// Runs a command inside a namespace and waits for it.
    @discardableResult
    public func run(in namespace: String, _ arguments: [String], timeout: Double = 60) throws -> CommandResult {
        try Command.run(["ip", "netns", "exec", namespace] + arguments, timeout: timeout)
    }

    /// Like ``run(in:_:timeout:)`` but throws unless it exits 0.
    @discardableResult
    public func check(in namespace: String, _ arguments: [String], timeout: Double = 60) throws -> CommandResult {
        try Command.check(["ip", "netns", "exec", namespace] + arguments, timeout: timeout)
    }

    /// Starts a long-running command inside a namespace; its output goes to
    /// the given files (or is discarded). Ended by ``stop(_:)`` or teardown,
    /// or after `limit` seconds when given. The command runs under a parent
    /// that waits for it (``Command/underWaitingParent(_:limit:)``), so the
    /// returned process is that parent: signals sent to it reach the command,
    /// and ``Command/command(under:)`` gives the command's own process id.
    public func spawn(in namespace: String, _ arguments: [String], stdout: URL? = nil, stderr: URL? = nil,
                      limit: Double? = nil) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = Command.underWaitingParent(["ip", "netns", "exec", namespace] + arguments, limit: limit)
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = try stdout.map(NetworkLab.handle(for:)) ?? FileHandle.nullDevice
        process.standardError = try stderr.map(NetworkLab.handle(for:)) ?? FileHandle.nullDevice
        try Command.startUnblocked(process)
        lock.withLock { background.append(process) }
        return process
    }

    /// Waits up to `timeout` seconds for a process that should end by
    /// itself, then kills it; returns its termination status. Use this, not
    /// ``stop(_:signal:timeout:)``, for a process whose own exit status is
    /// the result: a signal sent first could beat its last few steps.
    @discardableResult
    public func wait(_ process: Process, timeout: Double = 10) -> Int32 {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
        if process.isRunning { Command.killWithCommand(process) }
        process.waitUntilExit()
        return process.terminationStatus
    }

    /// Sends `signal` to a spawned process and waits up to `timeout` seconds
    /// for it to exit (SIGKILL after that). Returns its exit status.
    @discardableResult
    public func stop(_ process: Process, signal: Int32 = SIGINT, timeout: Double = 10) -> Int32 {
        if process.isRunning {
            // The waiting parent passes SIGINT, SIGTERM and SIGHUP on to the
            // command; a SIGKILL would end the parent alone, and the orphaned
            // command would keep the descriptor by which Foundation learns of
            // the exit, so waiting for it would never end.
            if signal == SIGKILL { Command.killWithCommand(process) } else { kill(process.processIdentifier, signal) }
        }
        return wait(process, timeout: timeout)
    }

    /// The tc and XDP hooks on an interface, by what `tc` and `ip` show:
    /// "clsact qdisc", "ingress filter", "egress filter", "xdp". tcx links
    /// are not among them: neither tool lists them.
    public func hooks(on interface: String, in namespace: String) throws -> [String] {
        var found: [String] = []
        if try check(in: namespace, ["tc", "qdisc", "show", "dev", interface]).stdout.contains("clsact") { found.append("clsact qdisc") }
        for hook in ["ingress", "egress"] where !(try check(in: namespace, ["tc", "filter", "show", "dev", interface, hook]).stdout.isEmpty) {
            found.append("\(hook) filter")
        }
        if try check(in: namespace, ["ip", "link", "show", "dev", interface]).stdout.contains("xdp") { found.append("xdp") }
        return found
    }

    /// Reads an interface counter (`rx_packets`, `tx_bytes`, ...) inside a namespace.
    public func counter(_ name: String, interface: String, in namespace: String) throws -> UInt64 {
        let r = try check(in: namespace, ["cat", "/sys/class/net/\(interface)/statistics/\(name)"])
        return UInt64(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
    }

    /// Kills every process in the lab's namespaces and deletes them
    /// (their veths go with them). Safe to call more than once, also from
    /// two threads (an interrupt's handler and the lab's owner): a second
    /// call returns only once the first has removed everything.
    public func teardown() {
        teardownLock.lock()
        defer { teardownLock.unlock() }
        let (spawned, names) = lock.withLock { () -> ([Process], [String]) in
            defer { background.removeAll(); namespaces.removeAll() }
            return (background, namespaces)
        }
        for p in spawned where p.isRunning { Command.killWithCommand(p) }
        for name in names { NetworkLab.remove(namespace: name) }
    }

    /// Removes namespaces left by labs whose process no longer exists.
    public static func removeStale() {
        guard let list = try? Command.run(["ip", "netns", "list"], timeout: 10) else { return }
        for line in list.stdout.split(separator: "\n") {
            let name = String(line.split(separator: " ").first ?? "")
            guard name.hasPrefix(namespacePrefix) else { continue }
            // fflab-<pid>x<nn>-role
            let pid = name.dropFirst(namespacePrefix.count).split(separator: "x").first.map(String.init) ?? ""
            if !FileManager.default.fileExists(atPath: "/proc/\(pid)") { remove(namespace: name) }
        }
    }

    private static func remove(namespace name: String) {
        if let pids = try? Command.run(["ip", "netns", "pids", name], timeout: 10) {
            for pid in pids.stdout.split(separator: "\n").compactMap({ Int32($0.trimmingCharacters(in: .whitespaces)) }) {
                kill(pid, SIGKILL)
            }
        }
        _ = try? Command.run(["ip", "netns", "delete", name], timeout: 10)
    }

    private static func handle(for url: URL) throws -> FileHandle {
        _ = FileManager.default.createFile(atPath: url.path, contents: nil)
        return try FileHandle(forWritingTo: url)
    }
}
