import EBPFCapture
import FlowForestCore
import FlowForestLab
import Foundation
import Logging
import Testing

/// Stopping, cancelling or failing leaves no qdisc, filter, XDP program or
/// pinned object behind, and what a killed run left does not stop the next.
@Suite("eBPF attach and detach (root, namespace lab)", .serialized, .enabled(if: Command.isRoot))
struct CleanupTests {
    /// Every hook FlowForest could have left on the sensor's interface.
    static func leftovers(_ lab: SensorLab) throws -> String {
        let ns = lab.sensor, dev = lab.sensorInterface
        var found = try lab.lab.hooks(on: dev, in: ns)
        found += try EBPFFlowSource.tcxPrograms(interface: dev, namespace: ns).map { "tcx \($0)" }
        let pins = (try? FileManager.default.contentsOfDirectory(atPath: "/sys/fs/bpf")) ?? []
        found += pins.filter { $0.lowercased().contains("flowforest") || $0.hasPrefix("ff_") }.map { "pin \($0)" }
        return found.joined(separator: "; ")
    }

    @Test("stop detaches everything", arguments: [
        (EBPFAttachMode.tc, EBPFTCHook.auto), (.tc, .clsact), (.xdp, .auto), (.socket, .auto),
    ])
    func stopDetaches(mode: EBPFAttachMode, hook: EBPFTCHook) async throws {
        let lab = try SensorLab()
        defer { lab.lab.teardown() }
        let source = try lab.source(mode, tcHook: hook)
        let attached = try Self.leftovers(lab)
        switch (mode, hook) {
        case (.xdp, _):
            #expect(source.attachModes[lab.sensorInterface] == "xdp native")
        case (.tc, .clsact):
            #expect(source.attachModes[lab.sensorInterface] == "tc clsact")
            #expect(attached.contains("clsact qdisc") && attached.contains("ingress filter") && attached.contains("egress filter"))
        case (.tc, _):
            // Linux 6.6+ (this lab's kernel): tcx links, no qdisc.
            #expect(source.attachModes[lab.sensorInterface] == "tc tcx")
            #expect(attached == "tcx ingress ff_tc; tcx egress ff_tc")
        default:
            break
        }
        _ = try await capture(source, in: lab, rxOnly: mode == .xdp) { try lab.trafgen(Trafgen.udp(flows: 10, frameBytes: 64), packets: 1000) }
        #expect(try Self.leftovers(lab) == "")
    }

    @Test("xdp falls back to generic mode where the driver has no native XDP, and says so")
    func xdpGeneric() async throws {
        let lab = try SensorLab()
        defer { lab.lab.teardown() }
        // A bridge has no native XDP; it lives in the lab namespace and goes with it.
        let bridge = "ffbr\(getpid() % 100_000)"
        try lab.lab.check(in: lab.sensor, ["ip", "link", "add", bridge, "type", "bridge"])
        try lab.lab.check(in: lab.sensor, ["ip", "link", "set", bridge, "up"])
        let source = try EBPFFlowSource(
            configuration: EBPFConfiguration(mode: .xdp, interfaces: [bridge], namespace: lab.sensor),
            logger: Logger(label: "ebpf-test"))
        #expect(source.attachModes[bridge] == "xdp generic")
        #expect(try lab.lab.check(in: lab.sensor, ["ip", "link", "show", "dev", bridge]).stdout.contains("xdpgeneric"))
        let task = Task { for try await _ in source.batches() {} }
        source.stop()
        try await task.value
        #expect(!(try lab.lab.check(in: lab.sensor, ["ip", "link", "show", "dev", bridge]).stdout.contains("xdp")))
    }

    @Test("a consumer that goes away detaches too")
    func cancelDetaches() async throws {
        let lab = try SensorLab()
        defer { lab.lab.teardown() }
        let source = try lab.source(.tc, pollInterval: 0.1)
        let collector = LiveCollector(source)
        try await collector.wait(for: "the first poll of the capture", timeout: 10) { $0.batches > 0 }
        let task = collector.task
        task.cancel()
        _ = try? await task.value
        // Detaching happens on the drain thread, after the consumer has gone.
        var left = ""
        try await Wait.until("the cancelled capture to detach", timeout: 10, detail: { left }) {
            left = try Self.leftovers(lab)
            return left.isEmpty
        }
    }

    @Test("a filter left by a killed clsact run is replaced (clsact) or removed (tcx)", arguments: [EBPFTCHook.auto, .clsact])
    func staleFilterReplaced(hook: EBPFTCHook) async throws {
        let lab = try SensorLab()
        defer { lab.lab.teardown() }
        let object = try #require(Self.objectPath())
        // What a SIGKILLed tc run leaves: its clsact qdisc and filter at FlowForest's handle.
        try lab.lab.check(in: lab.sensor, ["tc", "qdisc", "add", "dev", lab.sensorInterface, "clsact"])
        try lab.lab.check(in: lab.sensor, [
            "tc", "filter", "add", "dev", lab.sensorInterface, "ingress", "prio", "1", "handle", "0x464c",
            "bpf", "da", "obj", object, "sec", "tc",
        ])
        let before = try lab.interfacePackets()
        let source = try lab.source(.tc, tcHook: hook)
        #expect(source.attachModes[lab.sensorInterface] == (hook == .clsact ? "tc clsact" : "tc tcx"))
        if hook != .clsact {
            #expect(!(try Self.leftovers(lab).contains("filter")), "the stale filter still counts into the dead run's map")
        }
        let result = try await capture(source, in: lab) { try lab.trafgen(Trafgen.udp(flows: 3, frameBytes: 64), packets: 3000) }
        // The replaced filter no longer counts into the old run's map: every packet reached this run.
        #expect(result.statistics.packetsSeen == (try lab.interfacePackets()) - before)
        #expect(result.flowPackets == 3000)
        #expect(try Self.leftovers(lab) == "")
    }

    @Test("a live FlowForest capture on the interface is left alone: clsact refuses, tcx runs beside it")
    func liveCaptureLeftAlone() async throws {
        let lab = try SensorLab()
        defer { lab.lab.teardown() }
        let first = try lab.source(.tc, tcHook: .clsact)
        let refused = #expect(throws: EBPFError.self) { try lab.source(.tc, tcHook: .clsact) }
        #expect(refused?.description.contains("already captures on \(lab.sensorInterface)") == true, "\(String(describing: refused))")
        let second = try lab.source(.tc)
        #expect(second.attachModes[lab.sensorInterface] == "tc tcx")
        #expect(try Self.leftovers(lab).contains("ingress filter"), "the first capture's filter was removed")
        let firstRun = LiveCollector(first)
        let before = try lab.interfacePackets()
        let result = try await capture(second, in: lab) { try lab.trafgen(Trafgen.udp(flows: 3, frameBytes: 64), packets: 3000) }
        try await lab.waitUntilSeen(firstRun, since: before, by: "the first capture")
        first.stop()
        #expect(result.flowPackets == 3000)
        #expect(try await firstRun.value.flowPackets == 3000)
        #expect(try Self.leftovers(lab) == "")
    }

    @Test("someone else's filters keep their clsact qdisc", arguments: [EBPFTCHook.auto, .clsact])
    func foreignFiltersKept(hook: EBPFTCHook) async throws {
        let lab = try SensorLab()
        defer { lab.lab.teardown() }
        let object = try #require(Self.objectPath())
        let ns = lab.sensor, dev = lab.sensorInterface
        // Another tool's filter at its own priority, and a FlowForest filter a killed run left.
        try lab.lab.check(in: ns, ["tc", "qdisc", "add", "dev", dev, "clsact"])
        try lab.lab.check(in: ns, ["tc", "filter", "add", "dev", dev, "ingress", "prio", "7", "handle", "0x1", "bpf", "da", "obj", object, "sec", "tc"])
        try lab.lab.check(in: ns, ["tc", "filter", "add", "dev", dev, "ingress", "prio", "1", "handle", "0x464c", "bpf", "da", "obj", object, "sec", "tc"])
        let source = try lab.source(.tc, tcHook: hook)
        _ = try await capture(source, in: lab) { try lab.trafgen(Trafgen.udp(flows: 3, frameBytes: 64), packets: 1000) }
        let ingress = try lab.lab.check(in: ns, ["tc", "filter", "show", "dev", dev, "ingress"]).stdout
        #expect(ingress.contains("pref 7") && !ingress.contains("pref 1 "), "\(ingress)")
        #expect(try Self.leftovers(lab).hasPrefix("clsact qdisc; ingress filter"))
        #expect(!(try Self.leftovers(lab).contains("tcx")))
    }

    @Test("bad input gets a clear error and attaches nothing")
    func errors() throws {
        let lab = try SensorLab()
        defer { lab.lab.teardown() }
        let logger = Logger(label: "ebpf-test")
        func attempt(_ c: EBPFConfiguration) -> EBPFError? {
            do { _ = try EBPFFlowSource(configuration: c, logger: logger); return nil } catch { return error as? EBPFError }
        }
        let ns = lab.sensor, dev = lab.sensorInterface
        #expect(attempt(EBPFConfiguration(mode: .tc, interfaces: ["nosuch0"], namespace: ns)) == .noSuchInterface("nosuch0"))
        let missing = attempt(EBPFConfiguration(mode: .tc, interfaces: [dev], objectPath: "/nonexistent/flowforest.bpf.o", namespace: ns))
        #expect(missing?.description.contains("make bpf") == true)
        let tiny = attempt(EBPFConfiguration(mode: .tc, interfaces: [dev], ringBufferBytes: 5000, namespace: ns))
        #expect(tiny?.description.contains("power of two") == true)
        // A second interface that does not exist: the first must not stay attached.
        #expect(attempt(EBPFConfiguration(mode: .tc, interfaces: [dev, "nosuch1"], namespace: ns)) == .noSuchInterface("nosuch1"))
        // Another XDP program on the interface is never replaced.
        let object = try #require(Self.objectPath())
        try lab.lab.check(in: ns, ["ip", "link", "set", "dev", dev, "xdpgeneric", "obj", object, "sec", "xdp"])
        let busy = attempt(EBPFConfiguration(mode: .xdp, interfaces: [dev], namespace: ns))
        #expect(busy?.description.contains("already runs XDP program") == true)
        try lab.lab.check(in: ns, ["ip", "link", "set", "dev", dev, "xdpgeneric", "off"])
        #expect(try Self.leftovers(lab) == "")
    }

    static func objectPath() -> String? {
        var dir = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { dir.deleteLastPathComponent() }  // file, EBPFCaptureTests, Tests
        let path = dir.appendingPathComponent("out/bpf/flowforest.bpf.o").path
        return FileManager.default.fileExists(atPath: path) ? path : nil
    }
}
