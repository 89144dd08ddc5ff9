public import Foundation

/// A collector process started by a test, waited on by conditions
/// (listening, socket queue drained), and always stopped.
public final class PeerProcess {
    public let process: ChildProcess
    public let log: URL

    private init(process: ChildProcess, log: URL) {
        self.process = process
        self.log = log
    }

    public static func start(_ path: String, _ arguments: [String], log: URL) throws -> PeerProcess {
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw PeerError("\(path) is not installed (make deps installs it)")
        }
        let p = try ChildProcess.spawn(path, arguments, stdout: .file(log.path), stderr: .standardOutput)
        return PeerProcess(process: p, log: log)
    }

    /// Sends `signal` (SIGTERM unless told; pmacct blocks SIGTERM and stops on
    /// SIGINT), then waits for the process to exit (collectors write their
    /// files then); SIGKILL after 30 s, so a stuck peer fails its test, not the run.
    public func stop(signal: Int32 = SIGTERM) {
        process.terminate(signal: signal, grace: 30)
    }

    /// Waits until the process's log contains `text` (a readiness line).
    public func waitForLog(_ text: String, timeout: Double = 10) throws {
        try wait("the log line \"\(text)\"", timeout: timeout) { output.contains(text) }
    }

    public var output: String { ChildProcess.text(ofFile: log.path) }

    /// The UDP socket bound to `port` on loopback, as `ss` shows it (Recv-Q first).
    private static func udpSocket(port: UInt16) throws -> [Substring]? {
        let line = try ChildProcess.output("/usr/bin/ss", ["-Hlun", "sport = :\(port)"]).split(separator: "\n").first
        return line?.split(separator: " ", omittingEmptySubsequences: true)
    }

    public func waitForUDPListener(port: UInt16, timeout: Double = 10) throws {
        try wait("the collector to listen on UDP port \(port)", timeout: timeout) { try Self.udpSocket(port: port) != nil }
    }

    /// Waits until the collector has read every datagram queued on its socket.
    public func waitForEmptyReceiveQueue(port: UInt16, timeout: Double = 20) throws {
        try wait("the collector to read every datagram on port \(port)", timeout: timeout) {
            guard let fields = try Self.udpSocket(port: port), fields.count > 1 else { return false }
            return fields[1] == "0"
        }
    }

    private func wait(_ what: String, timeout: Double, _ condition: () throws -> Bool) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while try !condition() {
            if let status = process.terminationStatus { throw PeerError("\(what): it exited \(status): \(output.suffix(800))") }
            guard Date() < deadline else { throw PeerError("timed out after \(timeout) s waiting for \(what): \(output.suffix(800))") }
            Thread.sleep(forTimeInterval: 0.02)
        }
    }

    /// A UDP socket bound to a free port on 127.0.0.1, held open by the
    /// caller (who closes `fd`), for tests of a port in use.
    public static func boundUDPSocket() throws -> (fd: Int32, port: UInt16) {
        try boundSocket(type: Int32(SOCK_DGRAM.rawValue))
    }

    /// A TCP socket listening on a free port on 127.0.0.1 that never
    /// accepts: connections are made and no answer ever comes (a hung
    /// receiver). The caller closes `fd`.
    public static func silentTCPListener() throws -> (fd: Int32, port: UInt16) {
        let bound = try boundSocket(type: Int32(SOCK_STREAM.rawValue))
        guard listen(bound.fd, 16) == 0 else {
            close(bound.fd)
            throw PeerError("cannot listen on 127.0.0.1:\(bound.port)")
        }
        return bound
    }

    private static func boundSocket(type: Int32) throws -> (fd: Int32, port: UInt16) {
        let fd = socket(AF_INET, type, 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard fd >= 0, bound else {
            if fd >= 0 { close(fd) }
            throw PeerError("no free port on 127.0.0.1")
        }
        return (fd, UInt16(bigEndian: address.sin_port))
    }

    /// A UDP port on 127.0.0.1 that was free a moment ago.
    public static func freeUDPPort() throws -> UInt16 {
        let (fd, port) = try boundUDPSocket()
        close(fd)
        return port
    }

    public static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("flowforest-ipfix-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}

public struct PeerError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
