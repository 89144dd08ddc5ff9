import EBPFCapture
import FlowForestLab
import Foundation
import Testing

/// `flowforest run` killed with SIGKILL gets no chance to detach. Whatever
/// it leaves must not stop or skew the next run: tcx and XDP links vanish
/// with the process, and clsact filters left behind are cleared by the next
/// start.
@Suite("Lab: a killed run leaves nothing in the way", .serialized, .enabled(if: Command.isRoot, "needs root for network namespaces"))
struct KilledRunTests {
    static let client = "198.18.0.1", server = "198.18.0.2"

    /// Hooks on the interface that a FlowForest run could have made.
    static func hooks(_ lab: NetworkLab, _ ns: String, _ dev: String) throws -> [String] {
        try lab.hooks(on: dev, in: ns) + EBPFFlowSource.tcxPrograms(interface: dev, namespace: ns).map { "tcx \($0)" }
    }

    @Test("SIGKILL, then a new run counts every packet", arguments: [
        (["--mode", "tc"], ["tcx ingress ff_tc", "tcx egress ff_tc"], [String]()),
        (["--mode", "tc", "--tc-hook", "clsact"], ["clsact qdisc", "ingress filter", "egress filter"], ["clsact qdisc", "ingress filter", "egress filter"]),
        (["--mode", "xdp"], ["xdp"], []),
    ])
    func killedRun(first: [String], whileRunning: [String], afterKill: [String]) throws {
        let lab = try NetworkLab()
        defer { lab.teardown() }
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let a = try lab.addNamespace("client"), b = try lab.addNamespace("server")
        let (_, dev) = try lab.connect(a, address: "\(Self.client)/24", b, address: "\(Self.server)/24")

        func start(_ name: String, _ mode: [String]) throws -> (Process, URL, URL) {
            let out = dir.appendingPathComponent("\(name).jsonl"), err = dir.appendingPathComponent("\(name).err")
            let p = try lab.spawn(in: b, [Binary.path, "run"] + mode + [
                "--interface", dev, "--print-flows", "json", "--poll-interval", "0.2", "--idle-timeout", "60",
                "--database", dir.appendingPathComponent("\(name).db").path,
            ], stdout: out, stderr: err)
            try Wait.blockingUntil("\(name) run to start capturing", timeout: 20, detail: { tail(err) }) {
                Wait.file(err, contains: "capture started")
            }
            return (p, out, err)
        }

        let (killed, _, _) = try start("first", first)
        #expect(try Self.hooks(lab, b, dev) == whileRunning)
        Command.killWithCommand(killed)
        killed.waitUntilExit()
        #expect(try Self.hooks(lab, b, dev) == afterKill)

        // The next run, with the default hook, starts and sees all of a ping
        // (requests in, replies out), none of it lost to a stale hook.
        let (next, out, err) = try start("next", ["--mode", "tc"])
        #expect(try Self.hooks(lab, b, dev) == ["tcx ingress ff_tc", "tcx egress ff_tc"])
        if !afterKill.isEmpty { #expect(Wait.file(err, contains: "left behind by an earlier run")) }
        // Each reply left through the egress hook before ping received it,
        // so once ping is done every packet is in the map the run drains on exit.
        try lab.check(in: a, ["ping", "-c", "20", "-i", "0.01", "-W", "2", "-q", Self.server], timeout: 30)
        #expect(lab.stop(next, signal: SIGTERM, timeout: 10) == 0)
        let flows = try String(contentsOf: out, encoding: .utf8).split(separator: "\n").compactMap {
            try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
        #expect(PcapLabTests.counts(flows, protocol: "icmp", port: nil)
                    == PcapLabTests.Counts(fwdPackets: 20, fwdBytes: 20 * 84, revPackets: 20, revBytes: 20 * 84))
        #expect(try Self.hooks(lab, b, dev) == [])
    }
}
