@testable import FlowForestServer
import Foundation
import Glibc
import HummingbirdTesting
import Metrics
import Testing

/// A TCP connection opened from a chosen loopback address, for holding a
/// connection open the way an idle client or a slow attacker does.
final class RawConnection {
    let fd: Int32

    init(from source: String, toPort port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket: \(String(cString: strerror(errno)))") }
        var local = sockaddr_in(), remote = sockaddr_in()
        local.sin_family = sa_family_t(AF_INET)
        inet_pton(AF_INET, source, &local.sin_addr)
        remote.sin_family = sa_family_t(AF_INET)
        remote.sin_port = in_port_t(UInt16(port).bigEndian)
        inet_pton(AF_INET, "127.0.0.1", &remote.sin_addr)
        let bound = withUnsafePointer(to: &local) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        let connected = withUnsafePointer(to: &remote) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard bound == 0, connected == 0 else {
            close(fd)
            throw TestFailure("connect from \(source): \(String(cString: strerror(errno)))")
        }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
    }

    deinit { close(fd) }

    func send(_ text: String) {
        _ = text.utf8CString.withUnsafeBufferPointer { Glibc.send(fd, $0.baseAddress, $0.count - 1, Int32(MSG_NOSIGNAL)) }
    }

    /// Writes all of `bytes`, waiting while the socket is full; false if
    /// they are not all out by the deadline or the connection failed.
    func sendAll(_ bytes: [UInt8], within limit: Duration) async -> Bool {
        let deadline = ContinuousClock.now + limit
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n > 0 {
                sent += n
            } else if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                guard ContinuousClock.now < deadline else { return false }
                try? await Task.sleep(for: .milliseconds(20))
            } else {
                return false
            }
        }
        return true
    }

    /// True if the server has closed the connection by now (it does not wait).
    func isClosed() -> Bool {
        var byte: UInt8 = 0
        let n = recv(fd, &byte, 1, Int32(MSG_PEEK))
        return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
    }

    /// The rest of a `sendSome` that the socket did not take yet.
    private var unsent: ArraySlice<UInt8> = []

    /// Writes what the socket takes now, without waiting: the rest of the
    /// last `bytes` first, so requests are never cut apart; when all of it
    /// went out, `bytes` again.
    func sendSome(_ bytes: [UInt8]) {
        if unsent.isEmpty { unsent = bytes[...] }
        let n = unsent.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        if n > 0 { unsent = unsent.dropFirst(n) }
    }

    /// What the server sent within `limit` (empty if nothing).
    func firstBytes(within limit: Duration) async -> String {
        let deadline = ContinuousClock.now + limit
        var buffer = [UInt8](repeating: 0, count: 4096)
        while ContinuousClock.now < deadline {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n > 0 { return String(decoding: buffer.prefix(n), as: UTF8.self) }
            if n == 0 { return "" }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return ""
    }

    /// True once the server has closed the connection (a read sees its end
    /// or a reset); false if it is still open at the deadline.
    func closedByServer(within limit: Duration) async -> Bool {
        let deadline = ContinuousClock.now + limit
        var buffer = [UInt8](repeating: 0, count: 4096)
        while ContinuousClock.now < deadline {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) { return true }
            if n < 0 { try? await Task.sleep(for: .milliseconds(20)) }
        }
        return false
    }
}

@Suite("Connection limits")
struct ConnectionLimitTests {
    @Test("a client over its connection limit is refused and counted while others are served; its places come back as it closes")
    func perClient() async throws {
        try await withService(.live, configure: { c in
            // Long enough that only the limit can close anything here.
            c.connections.idleTimeout = .seconds(600)
            c.connections.perClient = 4
        }) { client, db, _ in
            let port = try #require(client.port)
            let base = "http://127.0.0.1:\(port)"
            // Five from one address; the server admits them in the order its event loops get to them, so
            // any one of the five may be the one refused, but exactly one is.
            var held = try (0..<5).map { _ in try RawConnection(from: "127.0.0.2", toPort: port) }
            var refused: [Int] = []
            try await waitFor("one of five connections from 127.0.0.2 to be closed", seconds: 10) {
                for (i, c) in held.enumerated() where !refused.contains(i) && c.isClosed() { refused.append(i) }
                return !refused.isEmpty
            }
            for (i, c) in held.enumerated() where !refused.contains(i) && c.isClosed() { refused.append(i) }
            #expect(refused.count == 1, "closed: \(refused)")
            held.remove(at: refused[0])
            // Every other client is served meanwhile.
            #expect(try await curl(["-H", "Authorization: Bearer \(db.viewerToken)", "\(base)/api/health"]).status == 200)
            // One of the four goes; a new connection from that address takes its place and is answered.
            // (Until the server has seen it go, a new one is still refused.)
            held.removeLast()
            try await waitFor("an answer on a new connection from 127.0.0.2", seconds: 10) {
                let again = try RawConnection(from: "127.0.0.2", toPort: port)
                again.send("GET /api/health HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer \(db.viewerToken)\r\n\r\n")
                return await again.firstBytes(within: .seconds(2)).hasPrefix("HTTP/1.1 200")
            }
            let metrics = try await curl(["-H", "Authorization: Bearer \(db.adminToken)", "\(base)/metrics"]).body
            let line = metrics.split(separator: "\n").first { $0.hasPrefix(#"flowforest_http_connections_refused_total{limit="client"}"#) }
            let counted = line.flatMap { Double($0.split(separator: " ").last ?? "") } ?? 0
            #expect(counted >= 1, "\(line ?? "no series")")
            withExtendedLifetime(held) {}
        }
    }

    @Test("remote clients filling their total leave loopback clients their own reserve, and the other way round")
    func loopbackReserve() {
        var limits = ConnectionLimits()
        limits.total = 2
        limits.loopback = 1
        let counter = ConnectionCounter(limits: limits, factory: NOOPMetricsHandler.instance)
        #expect(counter.admit("198.18.0.1", loopback: false) && counter.admit("198.18.0.2", loopback: false))
        #expect(!counter.admit("198.18.0.3", loopback: false))
        #expect(counter.admit("127.0.0.1", loopback: true))
        #expect(!counter.admit("127.0.0.2", loopback: true))
        counter.release("198.18.0.1", loopback: false)
        #expect(counter.admit("198.18.0.3", loopback: false))
        #expect(ConnectionLimitHandler.key("127.0.0.9").loopback && ConnectionLimitHandler.key("::1").loopback)
        #expect(!ConnectionLimitHandler.key("198.18.0.1").loopback && !ConnectionLimitHandler.key("2001:db8::1").loopback)
    }

    @Test("a client that pipelines requests and never reads the answers is closed once they stop draining")
    func stalledReader() async throws {
        try await withService(.live, configure: { $0.connections.writeTimeout = .seconds(1) }) { client, db, _ in
            let port = try #require(client.port)
            let base = "http://127.0.0.1:\(port)"
            let reader = try RawConnection(from: "127.0.0.2", toPort: port)
            let request = Array("GET /api/health HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer \(db.viewerToken)\r\n\r\n".utf8)
            // Requests for as long as the socket takes them: the answers pile up
            // unread until the buffers on both sides are full and the server's
            // writes stall (how many that takes depends on the machine).
            let burst = [UInt8]((0..<1000).map { _ in request }.joined())
            try await waitFor("the server to close the stalled connection", seconds: 90) {
                reader.sendSome(burst)
                let metrics = try await curl(["-H", "Authorization: Bearer \(db.adminToken)", "\(base)/metrics"]).body
                return metrics.split(separator: "\n").contains { $0.hasPrefix("flowforest_http_stalled_connections_closed_total 1") }
            }
            #expect(await reader.closedByServer(within: .seconds(10)))
        }
    }

    @Test("IPv6 clients count by their /64, IPv4 clients by their address")
    func clientKeys() {
        #expect(ConnectionLimitHandler.key("2001:db8:1:2::1").key == ConnectionLimitHandler.key("2001:db8:1:2:ffff::9").key)
        #expect(ConnectionLimitHandler.key("2001:db8:1:2::1").key != ConnectionLimitHandler.key("2001:db8:1:3::1").key)
        #expect(ConnectionLimitHandler.key("2001:db8:1:2::1").key == "2001:db8:1:2::/64")
        #expect(ConnectionLimitHandler.key("198.18.0.1").key == "198.18.0.1")
        #expect(ConnectionLimitHandler.key("198.18.0.1").key != ConnectionLimitHandler.key("198.18.0.2").key)
    }

    @Test("idle connections, and requests whose headers never finish, are closed after the idle timeout")
    func idle() async throws {
        try await withService(.live, configure: { $0.connections.idleTimeout = .seconds(1) }) { client, _, _ in
            let port = try #require(client.port)
            let idle = try RawConnection(from: "127.0.0.2", toPort: port)
            let slow = try RawConnection(from: "127.0.0.3", toPort: port)
            slow.send("GET /api/health HTTP/1.1\r\nHost: localhost\r\nX-Slow: 1\r\n")
            #expect(await idle.closedByServer(within: .seconds(15)))
            #expect(await slow.closedByServer(within: .seconds(15)))
        }
    }
}
