internal import CLibbpf
import FlowForestCore

/// One overflow-aggregate map entry in Swift terms: times on the wall clock.
struct KernelAggregate {
    var key: FlowAggregate.Key
    /// The entry's key as the kernel wrote it, to take the entry by.
    var kernelKey: overflow_key
    var packets: UInt64
    var bytes: UInt64
    var firstSeenNs: UInt64
    var lastSeenNs: UInt64
    var sketch: PeerSketch

    init(key: FlowAggregate.Key, packets: UInt64, bytes: UInt64, firstSeenNs: UInt64, lastSeenNs: UInt64,
         sketch: PeerSketch) {
        self.key = key
        kernelKey = key.kernelKey
        self.packets = packets
        self.bytes = bytes
        self.firstSeenNs = firstSeenNs
        self.lastSeenNs = lastSeenNs
        self.sketch = sketch
    }

    /// A class or side this build does not know (an object from another
    /// version, `--bpf-object`) reads as `other` toward its destination.
    init(key k: overflow_key, value v: overflow_value, wallOffsetNs: UInt64) {
        let flowClass = OverflowClass(rawValue: k.cls) ?? .other
        let side = AggregateSide(rawValue: k.side) ?? .destination
        kernelKey = k
        let address = withUnsafeBytes(of: k.addr) { raw in
            IPAddress(high: UInt64(bigEndian: raw.loadUnaligned(as: UInt64.self)),
                      low: UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self)))
        }
        let registers = withUnsafeBytes(of: v.peers) { raw in (0..<raw.count / 4).map { raw.load(fromByteOffset: $0 * 4, as: UInt32.self) } }
        key = FlowAggregate.Key(address: address, port: k.port, ipProtocol: k.proto, vlan: k.vlan,
                                flowClass: flowClass, side: side, anyPort: k.any_port != 0)
        packets = v.packets
        bytes = v.bytes
        firstSeenNs = v.first_seen_ns &+ wallOffsetNs
        lastSeenNs = v.last_seen_ns &+ wallOffsetNs
        sketch = PeerSketch(registers: registers) ?? PeerSketch()
    }
}

extension FlowAggregate.Key {
    /// The kernel's key layout, for lookup-and-delete.
    var kernelKey: overflow_key {
        var k = overflow_key()
        withUnsafeMutableBytes(of: &k.addr) { raw in
            raw.storeBytes(of: address.high.bigEndian, as: UInt64.self)
            raw.storeBytes(of: address.low.bigEndian, toByteOffset: 8, as: UInt64.self)
        }
        k.port = port
        k.vlan = vlan
        k.proto = ipProtocol
        k.cls = flowClass.rawValue
        k.side = side.rawValue
        k.any_port = anyPort ? 1 : 0
        return k
    }
}

/// Turns successive reads of the overflow-aggregate map into
/// ``FlowAggregate`` reports: what each aggregate gained since its previous
/// report, and a last report when it goes idle and its entry is taken.
/// Holds two counters per kernel entry, so it is bounded by the map's size.
struct OverflowTracker {
    private var reported: [FlowAggregate.Key: (packets: UInt64, bytes: UInt64)] = [:]
    /// Packets and bytes reported so far, every aggregate together.
    private(set) var packets: UInt64 = 0
    private(set) var bytes: UInt64 = 0

    /// Aggregates being tracked.
    var count: Int { reported.count }

    /// The report of an aggregate read from the map; `nil` when it has not changed.
    mutating func observe(_ a: KernelAggregate) -> FlowAggregate? {
        report(a, ended: false)
    }

    /// The last report of an aggregate whose entry was taken (lookup-and-delete).
    mutating func end(_ a: KernelAggregate) -> FlowAggregate? {
        defer { reported[a.key] = nil }
        return report(a, ended: true)
    }

    /// An aggregate taken while its entry was already gone: nothing more to report.
    mutating func forget(_ key: FlowAggregate.Key) {
        reported[key] = nil
    }

    private mutating func report(_ a: KernelAggregate, ended: Bool) -> FlowAggregate? {
        let before = reported[a.key] ?? (0, 0)
        // Counters only grow while an entry lives; a smaller value is a new
        // entry under the same key (deleted and re-created between reads).
        let (dp, db) = a.packets >= before.packets ? (a.packets - before.packets, a.bytes &- before.bytes) : (a.packets, a.bytes)
        reported[a.key] = (a.packets, a.bytes)
        guard dp > 0 || ended else { return nil }
        packets &+= dp
        bytes &+= db
        return FlowAggregate(
            key: a.key, packets: dp, bytes: db, totalPackets: a.packets, totalBytes: a.bytes,
            peerEstimate: a.sketch.estimate, firstSeenNs: a.firstSeenNs, lastSeenNs: a.lastSeenNs, ended: ended,
            peers: a.sketch)
    }
}
