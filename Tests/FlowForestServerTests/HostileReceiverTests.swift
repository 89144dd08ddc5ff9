@testable import FlowForestServer
import FlowForestTestSupport
import Foundation
import Synchronization
import Testing

/// An alert receiver that misbehaves: an answer with an endless body, one
/// that trickles a byte at a time, a redirect. Each post ends within its
/// deadline, takes no more memory than the answer's head, and a redirect is
/// a failure that never reaches the other host.
@Suite("Alert posts to hostile receivers")
struct HostileReceiverTests {
    /// A loopback HTTP server in Python that reads one request and answers
    /// as `mode` says; it prints its port, then what it saw at exit.
    static let server = #"""
import socket, sys, time
mode, target = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else ""
l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen(4)
print(l.getsockname()[1], flush=True)
c, _ = l.accept(); c.settimeout(30)
data = b""
while b"\r\n\r\n" not in data: data += c.recv(65536)
sent = 0
try:
    if mode == "endless":
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n")
        chunk = b"x" * 65536
        while sent < (1 << 30): c.sendall(chunk); sent += len(chunk)
    elif mode == "drip":
        for b in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"y" * 200:
            c.sendall(bytes([b])); sent += 1; time.sleep(0.25)
    elif mode == "redirect":
        c.sendall(("HTTP/1.1 307 Temporary Redirect\r\nLocation: %s\r\nContent-Length: 0\r\n\r\n" % target).encode())
        time.sleep(2)
except (BrokenPipeError, ConnectionResetError, socket.timeout):
    pass
print("sent", sent, flush=True)
"""#

    /// Starts the server in `mode`; returns it and the URL to post to.
    static func start(_ mode: String, target: String = "") throws -> (ScriptServer, URL) {
        let server = try ScriptServer(server, arguments: [mode, target])
        return (server, URL(string: "http://127.0.0.1:\(server.port)/hook")!)
    }

    @Test("an answer with an endless body: the status counts, the body is not read")
    func endlessBody() async throws {
        let (server, url) = try Self.start("endless")
        defer { server.stop() }
        let poster = HTTPPoster(timeout: .seconds(5))
        let started = ContinuousClock.now
        try await poster.post(Data("{}".utf8), to: url)
        #expect(ContinuousClock.now - started < .seconds(5))
        // The connection was dropped long before the server's gigabyte.
        let sent = server.value("sent", in: server.report())
        #expect(sent >= 0 && sent < 64 << 20, "the server wrote \(sent) bytes before the poster let go")
    }

    @Test("a receiver that trickles its answer fails the post at the deadline")
    func trickle() async throws {
        let (server, url) = try Self.start("drip")
        defer { server.stop() }
        let poster = HTTPPoster(timeout: .seconds(2))
        let started = ContinuousClock.now
        await #expect(throws: HTTPPoster.Failure.self) { try await poster.post(Data("{}".utf8), to: url) }
        let took = ContinuousClock.now - started
        #expect(took >= .milliseconds(1900) && took < .seconds(6), "the post took \(took)")
        _ = server.report()
    }

    @Test("a redirect is a failed post, and nothing reaches the host it names")
    func redirect() async throws {
        let other = HookReceiver()
        try await other.start()
        let (server, url) = try Self.start("redirect", target: other.url)
        defer { server.stop() }
        let poster = HTTPPoster(timeout: .seconds(5))
        do {
            try await poster.post(Data("{}".utf8), to: url, headers: ["X-FlowForest-Signature": "sha256=secret"])
            Issue.record("a redirected post counted as delivered")
        } catch {
            #expect(error.description == "HTTP 307")
        }
        _ = server.report()
        #expect(other.received.isEmpty, "the redirect target got \(other.received.count) posts")
        await other.stop()
    }
}
