/// Where a flow is in its life when a record of it is emitted.
public enum FlowState: String, Sendable, Hashable, Codable {
    /// Still open; the record carries totals so far (emitted each poll for
    /// flows that changed).
    case active
    /// Still open, but its active timeout elapsed: a checkpoint record with
    /// totals so far, state kept.
    case interim
    /// Closed; the record carries final totals.
    case ended
}

/// Why a flow ended.
public enum FlowEndReason: String, Sendable, Hashable, Codable {
    case idle
    case tcpClose = "tcp_close"
    case shutdown
}

/// A bidirectional flow: the initiator ("source") side, the responder
/// ("destination") side, and per-direction statistics.
///
/// `forward` counts packets sent by the initiator, `reverse` those sent by the
/// responder. Every capture path (eBPF, libpcap, remote ingest) produces these.
public struct FlowRecord: Sendable, Hashable {
    /// Unique per flow within one sensor run; stable across active, interim
    /// and ended records of the same flow.
    public var id: UInt64
    public var sourceAddress: IPAddress
    public var destinationAddress: IPAddress
    public var sourcePort: UInt16
    public var destinationPort: UInt16
    public var ipProtocol: UInt8
    public var vlan: UInt16
    public var interfaceIndex: UInt32
    /// Where the flow was observed: the local interface (resolved from
    /// `interfaceIndex` by the capture source), or the exporter of a
    /// collected flow. Inline, so a record copies as plain bytes.
    public var interface: InterfaceName
    public var forward: DirectionStats
    public var reverse: DirectionStats
    public var state: FlowState
    public var endReason: FlowEndReason?

    public init(
        id: UInt64, sourceAddress: IPAddress, destinationAddress: IPAddress,
        sourcePort: UInt16, destinationPort: UInt16, ipProtocol: UInt8, vlan: UInt16 = 0,
        interfaceIndex: UInt32 = 0, interface: InterfaceName = .none,
        forward: DirectionStats = DirectionStats(), reverse: DirectionStats = DirectionStats(),
        state: FlowState = .active, endReason: FlowEndReason? = nil
    ) {
        self.id = id
        self.sourceAddress = sourceAddress
        self.destinationAddress = destinationAddress
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
        self.ipProtocol = ipProtocol
        self.vlan = vlan
        self.interfaceIndex = interfaceIndex
        self.interface = interface
        self.forward = forward
        self.reverse = reverse
        self.state = state
        self.endReason = endReason
    }

    /// The same, with the observation point by its name (as
    /// ``interfaceName`` gives it: read back from a store, or in tests); an
    /// exporter's name with `%` sets the interface index too.
    public init(
        id: UInt64, sourceAddress: IPAddress, destinationAddress: IPAddress,
        sourcePort: UInt16, destinationPort: UInt16, ipProtocol: UInt8, vlan: UInt16 = 0,
        interfaceIndex: UInt32 = 0, interfaceName: String?,
        forward: DirectionStats = DirectionStats(), reverse: DirectionStats = DirectionStats(),
        state: FlowState = .active, endReason: FlowEndReason? = nil
    ) {
        self.init(id: id, sourceAddress: sourceAddress, destinationAddress: destinationAddress, sourcePort: sourcePort,
                  destinationPort: destinationPort, ipProtocol: ipProtocol, vlan: vlan, interfaceIndex: interfaceIndex,
                  forward: forward, reverse: reverse, state: state, endReason: endReason)
        self.interfaceName = interfaceName
    }

    /// The observation point's name: a local interface's, or a collected
    /// flow's exporter with `%` and the exporter's interface index (none when 0).
    /// Set to an exporter's name, it sets the interface index as well.
    public var interfaceName: String? {
        get { interface.name(interfaceIndex: interfaceIndex) }
        set {
            let parsed = InterfaceName.parse(newValue)
            interface = parsed.name
            if let index = parsed.interfaceIndex { interfaceIndex = index }
        }
    }

    /// Earliest packet time in either direction (ns since the epoch).
    public var firstSeenNs: UInt64 {
        switch (forward.packets, reverse.packets) {
        case (0, 0): return 0
        case (0, _): return reverse.firstSeenNs
        case (_, 0): return forward.firstSeenNs
        default: return min(forward.firstSeenNs, reverse.firstSeenNs)
        }
    }

    /// Latest packet time in either direction (ns since the epoch).
    public var lastSeenNs: UInt64 { max(forward.lastSeenNs, reverse.lastSeenNs) }

    public var durationNs: UInt64 { lastSeenNs &- firstSeenNs }
    /// Both directions' packets (saturating: collected counts can be anything).
    public var packets: UInt64 { forward.packets.addingSaturated(reverse.packets) }
    public var bytes: UInt64 { forward.bytes.addingSaturated(reverse.bytes) }

    /// True for TCP flows that saw SYN, SYN-ACK and an ACK from the initiator.
    public var handshakeCompleted: Bool {
        ipProtocol == IPProtocol.tcp && forward.synCount > 0 && reverse.synAckCount > 0 && forward.ackCount > 0
    }

    /// True when a RST was seen, or a FIN in both directions.
    public var tcpClosed: Bool {
        ipProtocol == IPProtocol.tcp
            && (forward.rstCount > 0 || reverse.rstCount > 0 || (forward.finCount > 0 && reverse.finCount > 0))
    }
}
