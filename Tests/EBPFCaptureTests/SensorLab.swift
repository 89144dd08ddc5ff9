import EBPFCapture
import FlowForestCore
import FlowForestLab
import Foundation
import Logging
import Synchronization

/// Two namespaces joined by a veth pair: traffic generated in `gen` is seen
/// on `sensorInterface` in `sensor`, where the eBPF source attaches.
final class SensorLab: Sendable {
    let lab: NetworkLab
    let gen: String
    let sensor: String
    let genInterface: String
    let sensorInterface: String

    /// - Parameter ipv6: give both ends IPv6 addresses; otherwise IPv6 is
    ///   off, so no neighbour discovery or MLD frame disturbs packet counts.
    init(ipv6: Bool = false) throws {
        // Labs made at once in one process can draw the same name tag; a
        // clash fails the first `ip netns add`, so draw again.
        var made: (NetworkLab, String, String)?
        for attempt in 1...5 where made == nil {
            let candidate = try NetworkLab()
            do {
                made = (candidate, try candidate.addNamespace("gen"), try candidate.addNamespace("sen"))
            } catch {
                candidate.teardown()
                if attempt == 5 { throw error }
            }
        }
        (lab, gen, sensor) = made!
        if !ipv6 {
            for ns in [gen, sensor] {
                // /proc/sys/net is per namespace; no sysctl binary needed.
                try lab.check(in: ns, ["sh", "-c", "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6; echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6"])
            }
        }
        (genInterface, sensorInterface) = try lab.connect(
            gen, address: "198.18.0.1/24", sensor, address: "198.18.0.2/24",
            ipv6: ipv6 ? ("2001:2::1/64", "2001:2::2/64") : nil,
            queues: 2)  // one per core: native XDP then takes two senders at once
    }

    deinit { lab.teardown() }

    /// Received plus sent packets of the sensor's interface.
    func interfacePackets(rxOnly: Bool = false) throws -> UInt64 {
        let rx = try lab.counter("rx_packets", interface: sensorInterface, in: sensor)
        if rxOnly { return rx }
        return rx + (try lab.counter("tx_packets", interface: sensorInterface, in: sensor))
    }

    func source(_ mode: EBPFAttachMode, mapEntries: Int = EBPFConfiguration.defaultMapEntries,
                ringBufferBytes: Int = 4 << 20, pollInterval: Double = 0.25,
                flowTable: FlowTableConfiguration = FlowTableConfiguration(), tcHook: EBPFTCHook = .auto) throws -> EBPFFlowSource {
        var logger = Logger(label: "ebpf-test")
        logger.logLevel = .warning
        return try EBPFFlowSource(
            configuration: EBPFConfiguration(
                mode: mode, interfaces: [sensorInterface], pollInterval: pollInterval, mapEntries: mapEntries,
                ringBufferBytes: ringBufferBytes, flowTable: flowTable, namespace: sensor, tcHook: tcHook),
            logger: logger)
    }

    /// Sends `packets` frames with trafgen from `gen`; returns packets sent.
    @discardableResult
    func trafgen(_ config: String, packets: Int, cpus: Int = 1, gap: String? = nil) throws -> Trafgen.Result {
        try Trafgen.run(lab: lab, namespace: gen, interface: genInterface, config: config, packets: packets, cpus: cpus, gap: gap)
    }
}

/// What a capture produced: the last record of every flow and the final statistics.
struct CaptureResult {
    var records: [UInt64: FlowRecord] = [:]
    var statistics = CaptureStatistics()
    var batches = 0

    var flowPackets: UInt64 { records.values.reduce(0) { $0 + $1.packets } }
    /// Packets explained: in flows, or counted as aggregated, not IP,
    /// malformed, forwarded second sights or lost.
    var explainedPackets: UInt64 { flowPackets + statistics.packetsOutsideFlows }
}

/// Collects what a source yields, readable while the capture runs, so a
/// test can wait for the state it needs instead of sleeping.
final class LiveCollector: Sendable {
    private final class State: Sendable {
        let result = Mutex(CaptureResult())
        let batches = Mutex<[FlowBatch]>([])
    }
    private let state = State()
    let task: Task<Void, any Error>

    init(_ source: any FlowSource) {
        let state = self.state
        task = Task {
            for try await batch in source.batches() {
                state.batches.withLock { $0.append(batch) }
                state.result.withLock { result in
                    result.batches += 1
                    for r in batch.records { result.records[r.id] = r }
                    result.statistics = batch.statistics
                }
            }
        }
    }

    /// What has arrived so far.
    var snapshot: CaptureResult { state.result.withLock { $0 } }
    /// Every batch so far, in order.
    var batches: [FlowBatch] { state.batches.withLock { $0 } }

    /// Waits until `condition` holds for what has arrived.
    func wait(for what: String, timeout: Double = 30, _ condition: @escaping (CaptureResult) throws -> Bool) async throws {
        try await Wait.until(what, timeout: timeout, detail: { "\(self.snapshot.statistics)" }) {
            try condition(self.snapshot)
        }
    }

    /// Runs `body` while the capture runs, then stops `source` and waits
    /// for its final batch, also when `body` throws (so no capture outlives
    /// a failed test).
    func stop(_ source: any FlowSource, after body: () async throws -> Void) async throws -> CaptureResult {
        do {
            try await body()
        } catch {
            source.stop()
            _ = try? await value
            throw error
        }
        source.stop()
        return try await value
    }

    /// Everything, once the source has ended.
    var value: CaptureResult {
        get async throws {
            try await task.value
            return snapshot
        }
    }
}

extension SensorLab {
    /// Waits until `collector` has reported every packet the sensor
    /// interface counted since `before` (in a flow, a counter or a counted drop).
    func waitUntilSeen(_ collector: LiveCollector, since before: UInt64, rxOnly: Bool = false, by name: String) async throws {
        var seen: UInt64 = 0
        try await Wait.until("\(name) to report every packet \(sensorInterface) counted", timeout: 30,
                             detail: { "\(collector.snapshot.statistics.packetsSeen) seen + \(collector.snapshot.statistics.captureDrops) dropped of \(seen)" }) {
            seen = try self.interfacePackets(rxOnly: rxOnly) - before
            let s = collector.snapshot.statistics
            return s.packetsSeen + s.captureDrops >= seen
        }
    }
}

/// Runs `traffic` on its own thread while `source` captures, waits until the
/// source has reported every packet the lab's sensor interface counted, then
/// stops the source and collects everything it yielded.
func capture(_ source: any FlowSource, in lab: SensorLab, rxOnly: Bool = false,
             traffic: @escaping @Sendable () throws -> Void) async throws -> CaptureResult {
    let before = try lab.interfacePackets(rxOnly: rxOnly)
    let collector = LiveCollector(source)
    do {
        try await onThread(traffic)
        try await lab.waitUntilSeen(collector, since: before, rxOnly: rxOnly, by: source.mode)
    } catch {
        // Detach before reporting, so a failed test leaves nothing attached.
        source.stop()
        _ = try? await collector.value
        throw error
    }
    source.stop()
    return try await collector.value
}

/// Runs blocking work (external tools) on a dedicated thread, off the cooperative pool.
func onThread(_ work: @escaping @Sendable () throws -> Void) async throws {
    try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
        Thread {
            do { try work(); c.resume() } catch { c.resume(throwing: error) }
        }.start()
    }
}
