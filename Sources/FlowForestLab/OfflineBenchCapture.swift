public import Foundation

/// The capture file the offline benchmark reads: a classic pcap
/// (Ethernet, IPv4, microsecond timestamps) written packet by packet, so no
/// interface or capture tool is involved and any size can be made.
///
/// The mix: TCP downloads and uploads (handshake, request, data segments
/// with an ACK every third packet, FIN both ways and a last ACK), DNS-like
/// UDP queries (one datagram each way) and UDP streams (both directions
/// alternating). Clients are in 198.18.0.0/16, servers in 198.19.0.0/16;
/// every flow has its own 5-tuple. Flows start over the first 80 % of a
/// 40-second span, interleaved in time order; packet counts per flow follow
/// a capped Pareto law, so a few flows are large and most are small.
///
/// Every flow is one flow to any tool: no flow idles longer than 20 ms
/// between packets or lasts past the span, far below the usual idle (15 s,
/// nfpcapd 60 s) and active (60 s, nfpcapd 300 s) timeouts.
public struct OfflineBenchCapture: Sendable {
    /// What was written: the figures a reader of the file must count.
    public struct Totals: Codable, Sendable, Equatable {
        /// Packets in the file, every one an IPv4 packet of a flow.
        public var packets: Int
        /// IP-layer bytes (IP total length), as flow records count them.
        public var bytes: Int
        /// Flows (bidirectional 5-tuples), split into TCP and UDP.
        public var flows: Int
        public var tcpFlows: Int
        public var udpFlows: Int
        /// Size of the file, headers included.
        public var fileBytes: Int
        /// Seconds from the first packet's timestamp to the last's.
        public var spanSeconds: Double
    }

    /// Packets and flows to write, exactly.
    public let packets: Int
    public let flows: Int
    /// The generator's seed: the same seed writes the same bytes.
    public let seed: UInt64

    /// Seconds the packets' timestamps cover.
    public static let spanSeconds = 40.0
    /// The first flow's start: 2026-11-18 11:10:00 UTC, on a 5-minute
    /// boundary so nfpcapd, which rotates files by packet time, writes one.
    public static let startSeconds: UInt64 = 1_795_000_200
    /// The fewest packets a flow can have (a TCP exchange); `packets` must
    /// be at least this many per flow.
    public static let minimumPacketsPerFlow = 8

    /// A capture of `packets` packets in `flows` flows; needs at least
    /// ``minimumPacketsPerFlow`` packets per flow.
    public init(packets: Int, flows: Int, seed: UInt64 = 14) {
        precondition(flows >= 1 && packets >= flows * Self.minimumPacketsPerFlow, "at least 8 packets per flow")
        self.packets = packets
        self.flows = flows
        self.seed = seed
    }

    /// Writes the file; `progress` gets the packets written so far, about
    /// every 64 Ki packets.
    public func write(to url: URL, progress: (Int) -> Void = { _ in }) throws -> Totals {
        let plans = OfflineFlowPlan.plans(packets: packets, flows: flows, seed: seed)
        let events = Self.timeOrder(plans)
        guard FileManager.default.createFile(atPath: url.path, contents: nil) else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: url.path])
        }
        let handle = try FileHandle(forWritingTo: url)
        defer { try? handle.close() }
        var writer = PcapStreamWriter(handle: handle)
        var builder = OfflinePacketBuilder(plans: plans)
        try writer.header()
        var bytes = 0
        for (n, event) in events.enumerated() {
            let length = builder.build(flow: Int(event.flow), index: Int(event.index))
            bytes += length.ip
            try writer.packet(timeMicros: Self.startSeconds * 1_000_000 + UInt64(event.micros), frame: builder.frame, count: length.frame)
            if n & 0xFFFF == 0xFFFF { progress(n + 1) }
        }
        try writer.flush()
        progress(events.count)
        let tcp = plans.filter(\.kind.isTCP).count
        let span = Double((events.last?.micros ?? 0) - (events.first?.micros ?? 0)) / 1e6
        return Totals(packets: events.count, bytes: bytes, flows: plans.count, tcpFlows: tcp, udpFlows: plans.count - tcp,
                      fileBytes: writer.written, spanSeconds: span)
    }

    /// One packet of one flow at its time.
    struct Event {
        var micros: UInt32
        var flow: UInt32
        var index: UInt32
    }

    /// Every packet of every flow, in time order; a flow's own packets keep
    /// their order where timestamps tie.
    static func timeOrder(_ plans: [OfflineFlowPlan]) -> [Event] {
        var events: [Event] = []
        events.reserveCapacity(plans.reduce(0) { $0 + Int($1.packets) })
        for (f, plan) in plans.enumerated() {
            for k in 0..<plan.packets {
                events.append(Event(micros: plan.startMicros + UInt32((UInt64(k) * UInt64(plan.gapNanos)) / 1000), flow: UInt32(f), index: k))
            }
        }
        events.sort { ($0.micros, $0.flow, $0.index) < ($1.micros, $1.flow, $1.index) }
        return events
    }
}

/// SplitMix64: the same seed writes the same file on every machine.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func unit() -> Double { Double(next() >> 11) * 0x1.0p-53 }
}

/// One flow of the synthetic capture: who, what kind, how many packets, when.
struct OfflineFlowPlan: Sendable {
    enum Kind: Sendable {
        case tcpDownload, tcpUpload, udpQuery, udpStream
        var isTCP: Bool { self == .tcpDownload || self == .tcpUpload }
        var minimumPackets: Int { isTCP ? OfflineBenchCapture.minimumPacketsPerFlow : 2 }
    }

    var kind: Kind
    var packets: UInt32
    var startMicros: UInt32
    var gapNanos: UInt32
    var client: UInt32
    var server: UInt32
    var clientPort: UInt16
    var serverPort: UInt16
    /// Payload bytes of the flow's small (request, query, stream) packets.
    var smallPayload: Int

    /// Plans summing to exactly `packets` packets over `flows` flows.
    static func plans(packets: Int, flows: Int, seed: UInt64) -> [OfflineFlowPlan] {
        var rng = SplitMix(state: seed)
        // Clients get distinct ports per flow, so 5-tuples never repeat.
        let clients = min(flows, 16_384)
        var plans = (0..<flows).map { i -> OfflineFlowPlan in
            let roll = rng.unit()
            // The first flow is always TCP: the extra packets need a flow that takes them.
            let kind: Kind = i == 0 || roll < 0.45 ? .tcpDownload : roll < 0.6 ? .tcpUpload : roll < 0.85 ? .udpQuery : .udpStream
            let port: UInt16 = switch kind {
            case .tcpDownload: [443, 443, 443, 80, 8080][Int(rng.next() % 5)]
            case .tcpUpload: [22, 443, 25][Int(rng.next() % 3)]
            case .udpQuery: 53
            case .udpStream: rng.next() % 2 == 0 ? 443 : 5004
            }
            return OfflineFlowPlan(
                kind: kind, packets: UInt32(kind.minimumPackets), startMicros: 0, gapNanos: 0,
                client: 0xC612_0000 | UInt32(i % clients + 1), server: 0xC613_0000 | UInt32(rng.next() % 2000 + 1),
                clientPort: UInt16(20_000 + (i / clients) % 40_000), serverPort: port,
                smallPayload: kind == .udpQuery ? 28 + Int(rng.next() % 40) : 60 + Int(rng.next() % 500))
        }
        distribute(packets - plans.reduce(0) { $0 + Int($1.packets) }, over: &plans, rng: &rng)
        for i in plans.indices { plans[i].schedule(rng: &rng) }
        return plans
    }

    /// Shares `extra` packets among the flows that can grow (all but
    /// queries) by capped Pareto weights, exactly.
    private static func distribute(_ extra: Int, over plans: inout [OfflineFlowPlan], rng: inout SplitMix) {
        let growing = plans.indices.filter { plans[$0].kind != .udpQuery }
        let weights = growing.map { _ in min(100, pow(1 - rng.unit(), -1 / 1.3)) }
        let total = weights.reduce(0, +)
        var given = 0
        for (g, i) in growing.enumerated() {
            let share = Int(Double(extra) * weights[g] / total)
            plans[i].packets += UInt32(share)
            given += share
        }
        // What rounding left over, one packet each from the first flow on.
        for r in 0..<(extra - given) { plans[growing[r % growing.count]].packets += 1 }
    }

    /// Start and pace: each flow keeps to its kind's packet rate, and ends
    /// inside the span however many packets it got.
    private mutating func schedule(rng: inout SplitMix) {
        let span = OfflineBenchCapture.spanSeconds * 1e6
        let start = rng.unit() * span * 0.8
        var gap: Double = switch kind {  // microseconds
        case .tcpDownload, .tcpUpload: 50 + rng.unit() * 4950
        case .udpQuery: 300 + rng.unit() * 2000
        case .udpStream: 5000 + rng.unit() * 15000
        }
        let steps = Double(max(packets, 2) - 1)
        gap = min(gap, (span - 1000 - start) / steps)
        startMicros = UInt32(start)
        gapNanos = UInt32(gap * 1000)
    }
}
