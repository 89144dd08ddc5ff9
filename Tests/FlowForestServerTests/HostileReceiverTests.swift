@testable import FlowForestServer
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

    /// Starts the server in `mode`; returns it and its URL.
    static func start(_ mode: String, target: String = "") throws -> (Process, Pipe, URL) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", server, mode, target]
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        var line = Data()
        while !line.contains(UInt8(ascii: "\n")) {
            let byte = out.fileHandleForReading.readData(ofLength: 1)
            guard !byte.isEmpty else { throw HTTPPoster.Failure(description: "the test server did not start") }
            line += byte
        }
        let port = String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return (process, out, URL(string: "http://127.0.0.1:\(port)/hook")!)
    }

    /// Bytes the server wrote before the poster let go.
    static func sent(_ process: Process, _ out: Pipe) -> Int {
        process.waitUntilExit()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        return text.split(separator: "\n").first { $0.hasPrefix("sent ") }.flatMap { Int($0.dropFirst(5)) } ?? -1
    }

    @Test("an answer with an endless body: the status counts, the body is not read")
    func endlessBody() async throws {
        let (process, out, url) = try Self.start("endless")
        defer { if process.isRunning { process.terminate() } }
        let poster = HTTPPoster(timeout: .seconds(5))
        let started = ContinuousClock.now
        try await poster.post(Data("{}".utf8), to: url)
        #expect(ContinuousClock.now - started < .seconds(5))
        // The connection was dropped long before the server's gigabyte.
        let sent = Self.sent(process, out)
        #expect(sent >= 0 && sent < 64 << 20, "the server wrote \(sent) bytes before the poster let go")
    }

    @Test("a receiver that trickles its answer fails the post at the deadline")
    func trickle() async throws {
        let (process, out, url) = try Self.start("drip")
        defer { if process.isRunning { process.terminate() } }
        let poster = HTTPPoster(timeout: .seconds(2))
        let started = ContinuousClock.now
        await #expect(throws: HTTPPoster.Failure.self) { try await poster.post(Data("{}".utf8), to: url) }
        let took = ContinuousClock.now - started
        #expect(took >= .milliseconds(1900) && took < .seconds(6), "the post took \(took)")
        _ = Self.sent(process, out)
    }

    @Test("a redirect is a failed post, and nothing reaches the host it names")
    func redirect() async throws {
        let other = HookReceiver()
        try await other.start()
        let (process, out, url) = try Self.start("redirect", target: other.url)
        defer { if process.isRunning { process.terminate() } }
        let poster = HTTPPoster(timeout: .seconds(5))
        do {
            try await poster.post(Data("{}".utf8), to: url, headers: ["X-FlowForest-Signature": "sha256=secret"])
            Issue.record("a redirected post counted as delivered")
        } catch {
            #expect(error.description == "HTTP 307")
        }
        _ = Self.sent(process, out)
        #expect(other.received.isEmpty, "the redirect target got \(other.received.count) posts")
        await other.stop()
    }
}
