import CHeapStatistics
import FlowForestCore
import FlowForestDetection
import Foundation
import Testing
@testable import EBPFCapture

/// User-space bytes per open flow on the eBPF path, component by component:
/// synthetic open flows go through the drainer's tracker, the ledger and the
/// host tracker as the daemon's polls take them (tracker → records →
/// ledger → changes → host tracker → vectors), and glibc's count of bytes
/// in use (`mallinfo2()`, uordblks + hblkhd) is read between the steps.
///
/// `FLOWFOREST_MEMORY_FLOWS=1000000 swift test --filter MemoryPerFlow`
/// measures a million flows (default 100,000); the figures are printed.
/// Swift's hash tables double, so bytes per flow step with the flow count
/// (a table just past a doubling is half empty): measure at the size you size for.
@Suite("Memory per flow", .serialized)
struct MemoryPerFlowTests {
    static let second: UInt64 = 1_000_000_000
    static let t0: UInt64 = 1_700_000_000 * second

    static func inUse() -> Int { Int(ff_heap_bytes_in_use()) }

    /// Flow `f` of `n`: a tenth of the flows come from ten busy hosts, the rest
    /// from 10,000 clients, to 500 servers on three services; each one
    /// handshake plus a request and a reply (`round` more data packets each way).
    static func flow(_ f: Int, round: Int) -> KernelFlow {
        let busy = f % 10 == 0
        // A client's flows, numbered, spread over servers and source ports.
        let (client, j) = busy
            ? (IPAddress(ipv4: 0x0A00_0000 + UInt32(f / 10 % 10)), f / 100)
            : (IPAddress(ipv4: 0x0A01_0000 + UInt32(f % 10_000)), f / 10_000)
        let server = IPAddress(ipv4: 0xC612_0000 + UInt32(j % 500))
        let sport = UInt16(1024 + (j / 500) % 60_000)
        let dport: UInt16 = [443, 80, 53][j % 3]
        let start = t0 + UInt64(f % 1000) * 1_000_000
        var forward = DirectionStats(), reverse = DirectionStats()
        func packet(_ i: Int, _ from: IPAddress, _ to: IPAddress, _ flags: TCPFlags, payload: UInt32) -> PacketSummary {
            PacketSummary(timestampNs: start + UInt64(i) * 10_000_000, source: from, destination: to,
                          sourcePort: from == client ? sport : dport, destinationPort: from == client ? dport : sport,
                          ipProtocol: IPProtocol.tcp, ipLength: 40 + payload, payloadLength: payload,
                          tcpFlags: flags, tcpWindow: 64_240, interfaceIndex: 2)
        }
        forward.add(packet(0, client, server, [.syn], payload: 0))
        reverse.add(packet(1, server, client, [.syn, .ack], payload: 0))
        forward.add(packet(2, client, server, [.ack], payload: 0))
        for r in 0...round {
            forward.add(packet(3 + 2 * r, client, server, [.psh, .ack], payload: 200))
            reverse.add(packet(4 + 2 * r, server, client, [.psh, .ack], payload: 1200))
        }
        let (key, senderIsLow) = FlowKey.of(packet(0, client, server, [.syn], payload: 0))
        return KernelFlow(key: key, initiatorIsLow: senderIsLow, ifindex: 2,
                          low: senderIsLow ? forward : reverse, high: senderIsLow ? reverse : forward)
    }

    /// Bytes per flow, rounded, for the report.
    static func per(_ bytes: Int, _ n: Int) -> String { String(format: "%6.0f", Double(bytes) / Double(n)) }

    @Test("bytes per open flow, tracker to host tracker")
    func bytesPerFlow() {
        let n = ProcessInfo.processInfo.environment["FLOWFOREST_MEMORY_FLOWS"].flatMap(Int.init) ?? 100_000
        let base = Self.inUse()
        var tracker = KernelFlowTracker(configuration: FlowTableConfiguration(
            idleTimeoutNs: 15 * Self.second, activeTimeoutNs: 600 * Self.second, tcpCloseTimeoutNs: Self.second))
        tracker.interfaceNames = [2: "eth0"]
        for f in 0..<n { tracker.observe(Self.flow(f, round: 0)) }
        // One flow in a hundred also had packets through the ring buffer (its kernel insert failed once).
        for f in stride(from: 0, to: n, by: 100) {
            let k = Self.flow(f, round: 0)
            let p = PacketSummary(timestampNs: Self.t0 + 5 * Self.second, source: k.key.lowAddress, destination: k.key.highAddress,
                                  sourcePort: k.key.lowPort, destinationPort: k.key.highPort, ipProtocol: IPProtocol.tcp,
                                  ipLength: 52, tcpFlags: [.ack], interfaceIndex: 2)
            tracker.observe(KernelEvent(key: k.key, senderIsLow: true, packet: p))
        }
        let afterTracker = Self.inUse()
        var ledger = FlowLedger(maxFlows: 2 * n)
        var hosts = HostTracker()
        let now = Self.t0 + 2 * Self.second
        // First poll: every flow new.
        let first = poll(&tracker, &ledger, &hosts, nowNs: now)
        // Second poll: every flow sent more, so every flow has a record and a previous entry.
        for f in 0..<n { tracker.observe(Self.flow(f, round: 1)) }
        let second = poll(&tracker, &ledger, &hosts, nowNs: now + Self.second)
        let end = Self.inUse()
        withExtendedLifetime((tracker, ledger, hosts)) {}
        // The tracker's share is read before the ledger exists; the others' from the first poll.
        let tableTracker = afterTracker - base
        print("""
            memory per open flow, \(n) flows (glibc uordblks deltas, bytes per flow)
              KernelFlowTracker          \(Self.per(tableTracker, n))
              FlowLedger                 \(Self.per(first.ledger, n))
              HostTracker                \(Self.per(first.hosts, n))   (\(hosts.statistics.trackedHosts) hosts, \(hosts.statistics.trackedDestinations) destinations)
              held between polls         \(Self.per(end - base, n))
              poll, all new: records     \(Self.per(first.records, n))
              poll, all new: changes     \(Self.per(first.changes, n))
              poll, all new: vectors     \(Self.per(first.vectors, n))
              poll, all changed: records \(Self.per(second.records, n))
              poll, all changed: changes \(Self.per(second.changes, n))
              peak (held + largest poll) \(Self.per(end - base + max(first.transient, second.transient), n))
            """)
        #expect(ledger.count == n)
    }

    struct PollBytes {
        var records = 0, ledger = 0, changes = 0, hosts = 0, vectors = 0
        var transient: Int { records + changes + vectors }
    }

    /// One poll as the drain thread and the pipeline run it, with the bytes
    /// each step added: what it keeps (ledger, host tracker) and what it
    /// hands on (records, changes, vectors), read while those are alive.
    func poll(_ tracker: inout KernelFlowTracker, _ ledger: inout FlowLedger, _ hosts: inout HostTracker,
              nowNs: UInt64) -> PollBytes {
        var out = PollBytes()
        var records: [FlowRecord]? = tracker.checkpoint(at: nowNs)
        let m1 = Self.inUse()
        var changes: [FlowChange]? = ledger.apply(records!, origin: "tc", nowNs: nowNs)
        let m2 = Self.inUse()
        var vectors: [EntityVector]? = hosts.update(changes!, flows: ledger, nowNs: nowNs)
        let m3 = Self.inUse()
        withExtendedLifetime((records, changes, vectors)) {}
        vectors = nil
        let m4 = Self.inUse()
        changes = nil
        let m5 = Self.inUse()
        records = nil
        let m6 = Self.inUse()
        withExtendedLifetime((records, changes, vectors)) {}
        out.records = m5 - m6
        out.changes = m4 - m5
        out.vectors = m3 - m4
        out.ledger = m2 - m1 - out.changes
        out.hosts = m3 - m2 - out.vectors
        return out
    }
}
