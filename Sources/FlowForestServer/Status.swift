import FlowForestCore
import FlowForestPipeline
import Hummingbird

/// What `GET /api/status` serves: how capture is doing and what the
/// detector is doing, from the pipeline's own accounting, so clients need
/// not parse `/metrics`.
struct SensorStatus: Encodable, Sendable {
    /// One capture mode's cumulative accounting (local capture or ingest).
    struct Capture: Encodable, Sendable {
        var mode: String
        /// Interfaces this mode captures on; empty for a file or ingest.
        var interfaces: [String]
        var statistics: CaptureStatistics
        var activeFlows: Int

        enum CodingKeys: String, CodingKey {
            case mode, interfaces, drops, losses
            case packetsSeen = "packets_seen"
            case packetsAccounted = "packets_accounted"
            case bytesAccounted = "bytes_accounted"
            case notFlows = "not_flows"
            case ringBufferPackets = "ring_buffer_packets"
            case ringBufferSlotLocked = "ring_buffer_slot_locked"
            case packetsAggregated = "packets_aggregated"
            case bytesAggregated = "bytes_aggregated"
            case forwardedSeen = "forwarded_seen"
            case activeFlows = "active_flows"
            case flowsStarted = "flows_started"
            case flowsEnded = "flows_ended"
        }

        func encode(to encoder: any Encoder) throws {
            let s = statistics
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(mode, forKey: .mode)
            try c.encode(interfaces, forKey: .interfaces)
            try c.encode(s.packetsSeen, forKey: .packetsSeen)
            try c.encode(s.packetsAccounted, forKey: .packetsAccounted)
            try c.encode(s.bytesAccounted, forKey: .bytesAccounted)
            // Dropped before FlowForest saw them, by where.
            try c.encode(["capture": s.captureDrops, "interface": s.interfaceDrops], forKey: .drops)
            // Seen but not counted into any flow, by cause.
            try c.encode(["table_full": s.tableFull], forKey: .losses)
            try c.encode(["not_ip": s.notIP, "malformed": s.malformed], forKey: .notFlows)
            try c.encode(s.ringBufferPackets, forKey: .ringBufferPackets)
            // Of those (and of the losses with the ring buffer full): a slot locked past the spin bound.
            try c.encode(s.ringBufferSlotLocked, forKey: .ringBufferSlotLocked)
            // Not admitted as flows under pressure: folded into overflow aggregates.
            try c.encode(s.packetsAggregated, forKey: .packetsAggregated)
            try c.encode(s.bytesAggregated, forKey: .bytesAggregated)
            try c.encode(s.forwardedSeen, forKey: .forwardedSeen)
            try c.encode(activeFlows, forKey: .activeFlows)
            try c.encode(s.flowsStarted, forKey: .flowsStarted)
            try c.encode(s.flowsEnded, forKey: .flowsEnded)
        }
    }

    var sensor: String
    var captures: [Capture]
    var detectorState: DetectorState
    var modelVersion: Int?

    enum CodingKeys: String, CodingKey {
        case sensor, captures
        case activeFlows = "active_flows"
        case detectorState = "detector_state"
        case modelVersion = "model_version"
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(sensor, forKey: .sensor)
        try c.encode(captures, forKey: .captures)
        try c.encode(captures.reduce(0) { $0 + $1.activeFlows }, forKey: .activeFlows)
        // The word `/api/model` and the live stats use for the same state.
        try c.encode(detectorState.modelStateName, forKey: .detectorState)
        try c.encode(modelVersion, forKey: .modelVersion)
    }
}

extension API {
    func status(_ context: AppRequestContext) async throws -> Response {
        let interfaces = metrics.captureInterfaces
        let snapshot = pipeline.snapshot
        let accounting = snapshot.captureAccounting
        let model = snapshot.modelStatus
        // A mode announced at start has no batch yet: it shows with zeros.
        let modes = Set(interfaces.keys).union(accounting.keys).sorted()
        let captures = modes.map { mode in
            SensorStatus.Capture(mode: mode, interfaces: interfaces[mode] ?? [],
                                 statistics: accounting[mode]?.statistics ?? CaptureStatistics(),
                                 activeFlows: accounting[mode]?.activeFlows ?? 0)
        }
        return try json(SensorStatus(sensor: configuration.sensorName, captures: captures,
                                     detectorState: model.state, modelVersion: model.version))
    }
}
