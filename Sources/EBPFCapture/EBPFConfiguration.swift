public import FlowForestCore

/// Where the eBPF program hooks into the packet path.
public enum EBPFAttachMode: String, Sendable, CaseIterable {
    /// tc ingress and egress (tcx links, or clsact filters on kernels before
    /// 6.6): both directions of every flow on the interface.
    case tc
    /// XDP on ingress: native where the driver supports it, else generic.
    case xdp
    /// An AF_PACKET socket with the program as its filter (returning 0, so
    /// nothing is copied to user space); works where tc and XDP are refused.
    case socket
}

/// How tc mode hooks the program into the device's ingress and egress.
public enum EBPFTCHook: String, Sendable, CaseIterable {
    /// tcx where the kernel has it (Linux 6.6+), else a clsact filter.
    case auto
    /// tcx only: a bpf_link per hook, no qdisc; fails on older kernels.
    case tcx
    /// A clsact qdisc with a direct-action filter (every kernel with eBPF tc).
    case clsact
}

/// Settings of an ``EBPFFlowSource``.
public struct EBPFConfiguration: Sendable {
    public var mode: EBPFAttachMode
    /// Interfaces to attach to (at least one).
    public var interfaces: [String]
    /// How often the kernel map is read, in seconds (default 1).
    public var pollInterval: Double
    /// Flows the kernel map holds (default 131072). Past 7/8 of it only
    /// answered TCP connections start flows; other new flows' packets are
    /// folded into overflow aggregates (see docs/architecture.md).
    public var mapEntries: Int
    /// Size of the ring buffer for packets whose flow could not be inserted:
    /// a power of two, at least 4096 (default 4 MiB).
    public var ringBufferBytes: Int
    /// A compiled `flowforest.bpf.o` to load instead of the object embedded
    /// in the binary at build time (`nil`, the default).
    public var objectPath: String?
    /// Idle, active and TCP-close timeouts applied to kernel flows.
    public var flowTable: FlowTableConfiguration
    /// Network namespace (a name from `ip netns list`, or a path) whose
    /// interfaces are meant; `nil` for the sensor's own.
    public var namespace: String?
    /// tc mode: tcx links or a clsact filter (default: tcx where available).
    public var tcHook: EBPFTCHook

    /// Interfaces one sensor may watch, `FF_MAX_WATCHED` in `flow_types.h`.
    public static let maxInterfaces = 64

    /// The kernel map's compiled-in size, `FF_DEFAULT_MAP_ENTRIES` in `flow_types.h`.
    public static let defaultMapEntries = 131_072

    public init(
        mode: EBPFAttachMode, interfaces: [String], pollInterval: Double = 1,
        mapEntries: Int = EBPFConfiguration.defaultMapEntries, ringBufferBytes: Int = 4 << 20,
        objectPath: String? = nil, flowTable: FlowTableConfiguration = FlowTableConfiguration(),
        namespace: String? = nil, tcHook: EBPFTCHook = .auto
    ) {
        self.mode = mode
        self.interfaces = interfaces
        self.pollInterval = pollInterval
        self.mapEntries = mapEntries
        self.ringBufferBytes = ringBufferBytes
        self.objectPath = objectPath
        self.flowTable = flowTable
        self.namespace = namespace
        self.tcHook = tcHook
    }

    /// Checks the values a user can get wrong; the message names the setting.
    func validate() throws(EBPFError) {
        if interfaces.isEmpty { throw .invalidConfiguration("no interface given: name at least one with --interface") }
        if interfaces.count > EBPFConfiguration.maxInterfaces {
            throw .invalidConfiguration("\(interfaces.count) interfaces given; one sensor watches at most \(EBPFConfiguration.maxInterfaces)")
        }
        if let twice = interfaces.first(where: { name in interfaces.filter { $0 == name }.count > 1 }) {
            throw .invalidConfiguration("interface \(twice) is given twice")
        }
        if !(pollInterval > 0 && pollInterval <= 3600) {
            throw .invalidConfiguration("poll interval \(pollInterval) s is out of range (0, 3600]")
        }
        if mapEntries < 1 || mapEntries > 1 << 26 {
            throw .invalidConfiguration("map size \(mapEntries) is out of range 1...\(1 << 26)")
        }
        if ringBufferBytes < 4096 || ringBufferBytes & (ringBufferBytes - 1) != 0 || ringBufferBytes > 1 << 30 {
            throw .invalidConfiguration("ring buffer size \(ringBufferBytes) must be a power of two between 4096 and 1 GiB")
        }
    }
}
