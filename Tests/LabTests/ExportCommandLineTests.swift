import FlowForestLab
import FlowForestTestSupport
import Foundation
import Testing

/// `--export-ipfix` on `run` and `analyze`: a destination that cannot work
/// is one clear error at start, before any database is created.
@Suite("Command line: --export-ipfix errors")
struct ExportCommandLineTests {
    static let cases: [(url: String, message: String)] = [
        ("127.0.0.1:4739", "expected udp://HOST:PORT or tcp://HOST:PORT"),
        ("sctp://127.0.0.1:4739", "the transport must be udp or tcp"),
        ("udp://127.0.0.1", "a port is needed"),
        ("udp://127.0.0.1:0", "the port must be 1-65535"),
        ("udp://127.0.0.1:65536", "the port must be 1-65535"),
        ("udp://:4739", "no host"),
        ("udp://[::1:4739", "expected [IPv6]:PORT"),
    ]

    @Test("a malformed destination names the option, the URL and what is wrong", arguments: ["run", "analyze"])
    func malformed(command: String) throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let database = dir.appendingPathComponent("run.db")
        for (url, message) in Self.cases {
            let arguments = command == "run"
                ? ["run", "--no-capture", "--no-auth", "--collect", "udp://127.0.0.1:1", "--database", database.path]
                : ["analyze", dir.appendingPathComponent("none.pcap").path]
            let result = try Binary.run(arguments + ["--export-ipfix", url])
            #expect(result.status != 0, "\(command) \(url)")
            #expect(result.stderr.contains("--export-ipfix \(url): \(message)"), "\(command) \(url): \(result.stderr)")
        }
        #expect(!FileManager.default.fileExists(atPath: database.path))
    }

    @Test("a collector host that does not resolve is an error at start, before the database is created")
    func unresolvable() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let database = dir.appendingPathComponent("run.db")
        let (fd, port) = try PeerProcess.boundUDPSocket()
        close(fd)
        let result = try Binary.run(["run", "--no-capture", "--no-auth", "--collect", "udp://127.0.0.1:\(port)", "--database", database.path,
                                     "--export-ipfix", "udp://no-such-collector.invalid:4739"])
        #expect(result.status != 0)
        #expect(result.stderr.contains("cannot resolve IPFIX collector no-such-collector.invalid"), "\(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: database.path))
    }
}
