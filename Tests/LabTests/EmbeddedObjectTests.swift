import EBPFCapture
import FlowForestLab
import Foundation
import Testing

/// The shipped binary carries its eBPF object: copied alone (with its
/// dashboard assets) into an empty directory and started there, it loads
/// the embedded object, attaches tc and counts every packet.
@Suite("Lab: the binary runs from any directory", .serialized, .enabled(if: Command.isRoot, "needs root for network namespaces and eBPF"))
struct EmbeddedObjectTests {
    static let client = "198.18.0.1", server = "198.18.0.2"

    @Test("a copy of flowforest in a temporary directory, with no object file anywhere near it, captures in tc mode")
    func runsFromAnyDirectory() throws {
        let lab = try NetworkLab()
        defer { lab.teardown() }
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let built = URL(fileURLWithPath: Binary.path)
        let copy = dir.appendingPathComponent("flowforest")
        try FileManager.default.copyItem(at: built, to: copy)
        let resources = "flowforest_FlowForestServer.resources"
        try FileManager.default.copyItem(at: built.deletingLastPathComponent().appendingPathComponent(resources),
                                         to: dir.appendingPathComponent(resources))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() == ["flowforest", resources])

        let a = try lab.addNamespace("client"), b = try lab.addNamespace("server")
        let (_, dev) = try lab.connect(a, address: "\(Self.client)/24", b, address: "\(Self.server)/24")
        let out = dir.appendingPathComponent("flows.jsonl"), err = dir.appendingPathComponent("run.err")
        // Started from the temporary directory, so no out/bpf under the working directory either.
        let run = try lab.spawn(in: b, ["env", "-C", dir.path, copy.path, "run", "--mode", "tc", "--interface", dev,
                                        "--print-flows", "json", "--poll-interval", "0.2", "--idle-timeout", "60",
                                        "--database", dir.appendingPathComponent("run.db").path], stdout: out, stderr: err)
        defer { _ = lab.stop(run, signal: SIGKILL, timeout: 5) }
        try Wait.blockingUntil("the copied binary to start capturing", timeout: 20, detail: { tail(err) }) {
            Wait.file(err, contains: "capture started") || !run.isRunning
        }
        #expect(Wait.file(err, contains: "object=embedded"), "\(tail(err))")
        #expect(try EBPFFlowSource.tcxPrograms(interface: dev, namespace: b) == ["ingress ff_tc", "egress ff_tc"])
        try lab.check(in: a, ["ping", "-c", "10", "-i", "0.01", "-W", "2", "-q", Self.server], timeout: 30)
        #expect(lab.stop(run, signal: SIGTERM, timeout: 10) == 0, "\(tail(err))")
        let flows = try String(contentsOf: out, encoding: .utf8).split(separator: "\n").compactMap {
            try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
        #expect(PcapLabTests.counts(flows, protocol: "icmp", port: nil)
                    == PcapLabTests.Counts(fwdPackets: 10, fwdBytes: 10 * 84, revPackets: 10, revBytes: 10 * 84))
        #expect(try EBPFFlowSource.tcxPrograms(interface: dev, namespace: b) == [])
    }
}
