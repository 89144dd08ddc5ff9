import CoreMetrics
import FlowForestCore

/// One capture mode's packet, flow and loss series. A class so the series
/// only some sources have are made on first use, once.
final class ModeMetrics {
    let packets: (forward: Counter, reverse: Counter)
    let bytes: (forward: Counter, reverse: Counter)
    let flowsStarted: Counter
    let flowsEnded: Counter
    let tableFull: Counter
    let captureDrops: Counter
    let interfaceDrops: Counter
    let notIP: Counter
    let malformed: Counter
    let activeFlows: Gauge
    /// Series only the eBPF drainer has (a ring buffer, a kernel map it
    /// polls): made on first use, so other modes show none.
    private(set) lazy var ringBuffer = Counter(label: "flowforest_ringbuf_packets_total", dimensions: [("mode", mode)], factory: factory)
    private(set) lazy var slotLocked = Counter(label: "flowforest_ringbuf_slot_locked_packets_total", dimensions: [("mode", mode)], factory: factory)
    private(set) lazy var mapEntries = Gauge(label: "flowforest_map_entries", dimensions: [("mode", mode)], factory: factory)
    private(set) lazy var aggregatedPackets = Counter(label: "flowforest_overflow_packets_total", dimensions: [("mode", mode)], factory: factory)
    private(set) lazy var aggregatedBytes = Counter(label: "flowforest_overflow_bytes_total", dimensions: [("mode", mode)], factory: factory)
    private(set) lazy var forwardedSeen = Counter(label: "flowforest_forwarded_seen_packets_total", dimensions: [("mode", mode)], factory: factory)
    private(set) lazy var drainDuration = CoreMetrics.Timer(label: "flowforest_drain_duration_seconds", dimensions: [("mode", mode)], factory: factory)
    private let mode: String
    private let factory: any MetricsFactory

    init(mode: String, factory: any MetricsFactory) {
        self.mode = mode
        self.factory = factory
        func counter(_ label: String, _ extra: [(String, String)] = []) -> Counter {
            Counter(label: label, dimensions: [("mode", mode)] + extra, factory: factory)
        }
        packets = (counter("flowforest_packets_total", [("direction", "forward")]),
                   counter("flowforest_packets_total", [("direction", "reverse")]))
        bytes = (counter("flowforest_bytes_total", [("direction", "forward")]),
                 counter("flowforest_bytes_total", [("direction", "reverse")]))
        flowsStarted = counter("flowforest_flows_started_total")
        flowsEnded = counter("flowforest_flows_ended_total")
        tableFull = counter("flowforest_map_full_packets_total")
        captureDrops = counter("flowforest_capture_drops_total", [("where", "capture")])
        interfaceDrops = counter("flowforest_capture_drops_total", [("where", "interface")])
        notIP = counter("flowforest_packets_not_flows_total", [("reason", "not_ip")])
        malformed = counter("flowforest_packets_not_flows_total", [("reason", "malformed")])
        activeFlows = Gauge(label: "flowforest_active_flows", dimensions: [("mode", mode)], factory: factory)
    }

    /// Adds what one record added to its flow.
    func count(_ delta: FlowDelta) {
        if delta.forwardPackets > 0 { packets.forward.increment(by: Int64(clamping: delta.forwardPackets)) }
        if delta.reversePackets > 0 { packets.reverse.increment(by: Int64(clamping: delta.reversePackets)) }
        if delta.forwardBytes > 0 { bytes.forward.increment(by: Int64(clamping: delta.forwardBytes)) }
        if delta.reverseBytes > 0 { bytes.reverse.increment(by: Int64(clamping: delta.reverseBytes)) }
    }
}
