import EBPFCapture
import FlowForestCore
import FlowForestLab
import Foundation
import Logging

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
    /// Packets explained: in flows, or counted as not IP, malformed or lost.
    var explainedPackets: UInt64 { flowPackets + statistics.notIP + statistics.malformed + statistics.tableFull }
}

/// Runs `traffic` on its own thread while `source` captures, then stops the
/// source and collects everything it yielded.
func capture(_ source: any FlowSource, settle: Double = 0.3, traffic: @escaping @Sendable () throws -> Void) async throws -> CaptureResult {
    let collector = collect(source)
    do {
        try await onThread(traffic)
        try await Task.sleep(for: .seconds(settle))
    } catch {
        // Detach before reporting, so a failed test leaves nothing attached.
        source.stop()
        _ = try? await collector.value
        throw error
    }
    source.stop()
    return try await collector.value
}

/// Collects everything `source` yields until it ends (after `stop()`).
func collect(_ source: any FlowSource) -> Task<CaptureResult, any Error> {
    Task {
        var result = CaptureResult()
        for try await batch in source.batches() {
            result.batches += 1
            for r in batch.records { result.records[r.id] = r }
            result.statistics = batch.statistics
        }
        return result
    }
}

/// Runs blocking work (external tools) on a dedicated thread, off the cooperative pool.
func onThread(_ work: @escaping @Sendable () throws -> Void) async throws {
    try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
        Thread {
            do { try work(); c.resume() } catch { c.resume(throwing: error) }
        }.start()
    }
}
