/// Counters behind the host and destination vectors that users may want to
/// see: how much state is held and what had to be approximated.
public struct HostTrackerStatistics: Sendable, Hashable, Codable {
    public var trackedFlows = 0
    public var trackedHosts = 0
    public var trackedDestinations = 0
    /// Distinct-count updates that could not be remembered because an
    /// entity's set was full: those items count as new each time.
    public var distinctOverflows: UInt64 = 0
    /// Flow states dropped because the tracker was full.
    public var flowsNotTracked: UInt64 = 0
    /// Source hosts, destinations and beacon histories dropped to keep the
    /// tracker within its ``TrackerLimits`` (one-flow entries first).
    public var hostsEvicted: UInt64 = 0
    public var destinationsEvicted: UInt64 = 0
    public var pairsEvicted: UInt64 = 0
    /// ICMP unreachables whose target host was not held with the host table
    /// full: the failure is not kept (the unreachable's own flow is), rather
    /// than a host made for it evict one that sent traffic.
    public var unreachablesNotHeld: UInt64 = 0
    /// The detector's per-address memory (persistence bits, last reports)
    /// dropped while still recent to stay within its bound: an address then
    /// counts as new to it (a repeat may be reported again).
    public var addressMemoryEvicted: UInt64 = 0
    /// Beacon histories held.
    public var trackedPairs = 0

    public init() {}
}
