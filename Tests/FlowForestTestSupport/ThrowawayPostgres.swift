import Foundation

/// A real PostgreSQL server for one test: a fresh cluster made with initdb in
/// a private directory, listening on 127.0.0.1 on a free port with password
/// authentication, run as the `postgres` user when the tests run as root.
/// ``with(_:)`` always stops it and removes the directory.
public final class ThrowawayPostgres: Sendable {
    public let port: Int
    public let directory: String
    public let password: String
    let bin: String

    /// `postgres://flowforest:…@127.0.0.1:PORT/postgres`
    public var url: String { "postgres://flowforest:\(password)@127.0.0.1:\(port)/postgres" }

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    private init(port: Int, directory: String, password: String, bin: String) {
        self.port = port
        self.directory = directory
        self.password = password
        self.bin = bin
    }

    /// Starts a server, runs `body`, then stops the server and deletes its files, also on failure.
    public static func with<T>(_ body: (ThrowawayPostgres) async throws -> T) async throws -> T {
        let server = try await offPool { try start() }
        do {
            let result = try await body(server)
            try? await offPool { server.destroy() }
            return result
        } catch {
            // The server's own account (slow statements, lock waits) goes with the failure.
            FileHandle.standardError.write(Data("PostgreSQL log of a failed test (port \(server.port)):\n\(server.log.suffix(4000))\n".utf8))
            try? await offPool { server.destroy() }
            throw error
        }
    }

    /// Runs blocking process work on its own thread, off the cooperative pool.
    public static func offPool<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            Thread { continuation.resume(with: Result { try work() }) }.start()
        }
    }

    /// Stops the server from async code without blocking the cooperative pool.
    public func stop() async throws { try await Self.offPool { try self.stopServer() } }

    /// Starts the server again from async code.
    public func start() async throws { try await Self.offPool { try self.startServer() } }

    static func start() throws -> ThrowawayPostgres {
        let root = "/usr/lib/postgresql"
        guard let versions = try? FileManager.default.contentsOfDirectory(atPath: root),
              let newest = versions.compactMap(Int.init).max() else {
            throw Failure(description: "PostgreSQL server binaries not found under \(root): install the Debian package `postgresql` (make deps)")
        }
        let bin = "\(root)/\(newest)/bin"
        let directory = "/tmp/flowforest-pg-\(getpid())-\(UInt32.random(in: 0 ... .max))"
        let password = "pw" + String(UInt64.random(in: 0 ... .max), radix: 36)
        var server = ThrowawayPostgres(port: try freePort(), directory: directory, password: password, bin: bin)
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
            try (password + "\n").write(toFile: "\(directory)/pwfile", atomically: true, encoding: .utf8)
            if getuid() == 0 { _ = try ChildProcess.output("/bin/chown", ["-R", "postgres:postgres", directory], mergeErrors: true) }
            try server.asServerUser("\(bin)/initdb", [
                "-D", "\(directory)/data", "-U", "flowforest", "--pwfile=\(directory)/pwfile",
                "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync",
            ])
            // A free port is free when picked, not when the server binds it:
            // another test may have picked it too. Then pick another.
            for attempt in 1...5 {
                let logged = server.log.count
                do {
                    try server.startServer()
                    break
                } catch {
                    let log = String(server.log.dropFirst(logged))
                    guard attempt < 5, log.contains("could not create any TCP/IP sockets") else {
                        throw Failure(description: "\(error)\nserver log:\n\(log.suffix(2000))")
                    }
                    server = ThrowawayPostgres(port: try freePort(), directory: directory, password: password, bin: bin)
                }
            }
        } catch {
            server.destroy()
            throw error
        }
        return server
    }

    /// What the server wrote to its log so far ("" before it wrote any).
    var log: String { (try? String(contentsOfFile: "\(directory)/log", encoding: .utf8)) ?? "" }

    /// Starts the (stopped) server again on the same port and data.
    public func startServer() throws {
        try asServerUser("\(bin)/pg_ctl", [
            "-D", "\(directory)/data", "-l", "\(directory)/log", "-w", "-t", "30",
            "-o", "-p \(port) -k \(directory) -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50 -c log_lock_waits=on -c log_min_duration_statement=2000 -c log_connections=on -c log_disconnections=on",
            "start",
        ])
    }

    /// Freezes (SIGSTOP) or thaws (SIGCONT) the server and every backend:
    /// connections stay open, nothing answers, as on a hung host.
    public func signalAll(_ signal: Int32) throws {
        let pidText = try String(contentsOfFile: "\(directory)/data/postmaster.pid", encoding: .utf8)
        guard let postmaster = pidText.split(separator: "\n").first.flatMap({ Int32($0) }) else {
            throw Failure(description: "no postmaster pid in \(directory)/data/postmaster.pid")
        }
        var pids = [postmaster]
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = Int32(entry), let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { continue }
            // Fields after the command: state, then the parent's pid.
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            if fields.count > 1, Int32(fields[1]) == postmaster { pids.append(pid) }
        }
        for pid in pids { kill(pid, signal) }
    }

    /// Stops the server (fast shutdown: clients are disconnected), keeping its data.
    public func stopServer() throws {
        try asServerUser("\(bin)/pg_ctl", ["-D", "\(directory)/data", "-m", "fast", "-w", "-t", "30", "stop"])
    }

    func destroy() {
        try? asServerUser("\(bin)/pg_ctl", ["-D", "\(directory)/data", "-m", "immediate", "-w", "stop"])
        try? FileManager.default.removeItem(atPath: directory)
    }

    private func asServerUser(_ tool: String, _ arguments: [String]) throws {
        if getuid() == 0 {
            _ = try ChildProcess.output("/usr/sbin/runuser", ["-u", "postgres", "--", tool] + arguments, mergeErrors: true)
        } else {
            _ = try ChildProcess.output(tool, arguments, mergeErrors: true)
        }
    }

    /// A TCP port on 127.0.0.1 nobody has bound right now, below the
    /// kernel's ephemeral range (`ip_local_port_range`) where it has room:
    /// a port the kernel picks is an ephemeral one, which any outgoing
    /// connection (another test's client) can take before the server binds
    /// it. Two tests can still pick the same port; servers that start often
    /// retry on another (``start()``).
    public static func freePort() throws -> Int {
        let range = (try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8))?
            .split(whereSeparator: \.isWhitespace).compactMap { Int($0) }
        if let low = range?.first, low > 12_000 {
            for _ in 0..<100 {
                let port = Int.random(in: 10_000..<low)
                if try bindable(port) { return port }
            }
        }
        return try kernelPick()
    }

    /// Whether 127.0.0.1:`port` can be bound now.
    private static func bindable(_ port: Int) throws -> Bool {
        try withBoundSocket(port: port) { _ in true } ?? false
    }

    private static func kernelPick() throws -> Int {
        let port = try withBoundSocket(port: 0) { fd -> Int in
            var address = sockaddr_in()
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let named = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) == 0 }
            }
            return named ? Int(UInt16(bigEndian: address.sin_port)) : 0
        } ?? 0
        guard port > 0 else { throw Failure(description: "bind() to a free port failed") }
        return port
    }

    /// Binds a TCP socket to 127.0.0.1:`port` (0: the kernel's pick), runs
    /// `body` with it and closes it; nil when the bind fails.
    private static func withBoundSocket<T>(port: Int, _ body: (Int32) -> T) throws -> T? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket() failed") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        return bound ? body(fd) : nil
    }
}
