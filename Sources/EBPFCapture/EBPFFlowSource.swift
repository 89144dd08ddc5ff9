internal import CLibbpf
public import FlowForestCore
import Foundation
public import Logging

/// Live flows counted in the kernel: loads the eBPF program (embedded in the
/// binary, or `--bpf-object`), attaches it to the configured interfaces (tc,
/// xdp or socket) and drains the kernel flow map once per poll interval.
///
/// `init` does all the fallible work (load, verify, attach) and throws an
/// ``EBPFError`` that says what is missing, so a caller can fall back to
/// another mode. ``batches()`` then yields one ``FlowBatch`` per poll;
/// ``stop()`` detaches, reads every flow's final totals (lookup-and-delete)
/// and ends the stream with them as ended records. If the consumer goes
/// away instead, everything is detached without a final batch.
public final class EBPFFlowSource: FlowSource, @unchecked Sendable {
    // @unchecked: the kernel objects move to the drain thread once (under
    // `lock`) and are touched only there afterwards; `control` is a lock-guarded flag.

    public let mode: String
    public let configuration: EBPFConfiguration
    private let logger: Logger
    private let lock = NSLock()
    private var pending: DrainLoop?
    private let control = StopControl()

    /// Loads and attaches the program. Nothing stays attached if this throws.
    public init(configuration: EBPFConfiguration, logger: Logger) throws {
        try configuration.validate()
        self.configuration = configuration
        self.mode = configuration.mode.rawValue
        self.logger = logger
        let namespace = configuration.namespace
        var names: [UInt32: String] = [:]
        try NetworkNamespace.run(namespace) {
            for name in configuration.interfaces { names[try Attachment.interfaceIndex(name)] = name }
        }
        let object = try KernelObjectSource.resolve(configuration.objectPath)
        let program = try KernelProgram(
            source: object, mode: configuration.mode, mapEntries: configuration.mapEntries,
            ringBufferBytes: configuration.ringBufferBytes, watched: names.keys.sorted())
        var attachments: [Attachment] = []
        do {
            try NetworkNamespace.run(namespace) {
                for name in configuration.interfaces {
                    attachments.append(try Attachment(
                        interface: name, mode: configuration.mode, tcHook: configuration.tcHook, namespace: namespace,
                        programFD: program.programFD, logger: logger))
                }
            }
        } catch {
            for a in attachments { a.detach() }
            throw error
        }
        let loop = DrainLoop(
            program: program, attachments: attachments, configuration: configuration,
            interfaceNames: names, control: control, logger: logger)
        attachModes = loop.attachModes
        pending = loop
        logger.info("eBPF capture ready", metadata: [
            "mode": "\(mode)", "interfaces": "\(configuration.interfaces.joined(separator: ","))",
            "object": "\(object.description)", "map_entries": "\(configuration.mapEntries)",
        ])
    }

    deinit {
        // Never started: detach here rather than on a drain thread.
        pending?.shutdown()
    }

    /// How each interface is hooked: "tc tcx", "tc clsact", "xdp native",
    /// "xdp generic" or "socket".
    public let attachModes: [String: String]

    /// Batches the stream holds for a consumer busy with an earlier one:
    /// none. A poll is handed over when the consumer asks for it, and until
    /// then the drain thread waits before it polls again: the kernel map
    /// keeps counting meanwhile (and folds what it cannot admit). So this
    /// hand-off holds one poll's records besides the one being processed,
    /// where each buffered batch would add a poll's records (a million at
    /// a million flows) and an unbounded stream one per poll the consumer
    /// fell behind.
    public static let bufferedBatches = 0

    public func batches() -> AsyncThrowingStream<FlowBatch, any Error> {
        let (stream, continuation) = AsyncThrowingStream.makeStream(
            of: FlowBatch.self, bufferingPolicy: .bufferingOldest(Self.bufferedBatches))
        guard let loop = lock.withLock({ () -> DrainLoop? in defer { pending = nil }; return pending }) else {
            continuation.finish(throwing: EBPFError.invalidConfiguration("batches() was already called on this source"))
            return stream
        }
        let control = self.control
        continuation.onTermination = { termination in
            if case .cancelled = termination { control.request(.cancel) }
        }
        let thread = Thread { loop.run(continuation) }
        thread.start()
        return stream
    }

    public func stop() {
        control.request(.stop)
    }

    /// Kernel counters as of the last poll, from which each batch's statistics are built.
    public var kernelCounters: EBPFKernelCounters { control.counters }

    /// The program's cumulative run time and run count from the kernel's
    /// BPF statistics (zero unless they are enabled, see ``BPFStatistics``).
    public var programRunStatistics: (runTimeNs: UInt64, runCount: UInt64) { control.runStatistics }
}

/// What the consumer asked for, shared between the source and its drain thread.
final class StopControl: @unchecked Sendable {
    // @unchecked: every field is read and written under `lock`.
    enum Request { case none, stop, cancel }
    private let lock = NSLock()
    private var _request = Request.none
    private var _counters = EBPFKernelCounters()
    private var _run: (UInt64, UInt64) = (0, 0)

    func request(_ r: Request) {
        lock.withLock { if _request != .cancel { _request = r } }
    }
    var current: Request { lock.withLock { _request } }
    var counters: EBPFKernelCounters {
        get { lock.withLock { _counters } }
        set { lock.withLock { _counters = newValue } }
    }
    var runStatistics: (runTimeNs: UInt64, runCount: UInt64) {
        get { lock.withLock { (_run.0, _run.1) } }
        set { lock.withLock { _run = (newValue.runTimeNs, newValue.runCount) } }
    }
}

/// The drain thread's state: the program, its attachments and the tracker.
/// Runs blocking reads and ring-buffer polls on its own thread, off the
/// cooperative pool.
final class DrainLoop: @unchecked Sendable {
    // @unchecked: handed from init to exactly one drain thread, never shared.
    private let program: KernelProgram
    private var attachments: [Attachment]
    private let configuration: EBPFConfiguration
    private var tracker: KernelFlowTracker
    private var overflow = OverflowTracker()
    private let control: StopControl
    private let logger: Logger
    private let wallOffsetNs: UInt64
    private var closed = false

    init(program: KernelProgram, attachments: [Attachment], configuration: EBPFConfiguration,
         interfaceNames: [UInt32: String], control: StopControl, logger: Logger) {
        self.program = program
        self.attachments = attachments
        self.configuration = configuration
        self.control = control
        self.logger = logger
        tracker = KernelFlowTracker(configuration: configuration.flowTable)
        tracker.interfaceNames = interfaceNames
        var mono: UInt64 = 0, real: UInt64 = 0
        ff_clocks(&mono, &real)
        // Kernel times are CLOCK_MONOTONIC; one offset for the whole run
        // keeps a flow's times consistent even if the wall clock is stepped.
        wallOffsetNs = real &- mono
    }

    var attachModes: [String: String] {
        Dictionary(attachments.map { a in
            let detail = switch a.mode { case .xdp: " \(a.xdpMode)"; case .tc: " \(a.tcHook)"; case .socket: "" }
            return (a.interface, a.mode.rawValue + detail)
        },
                   uniquingKeysWith: { a, _ in a })
    }

    private func monotonicNow() -> UInt64 {
        var mono: UInt64 = 0, real: UInt64 = 0
        ff_clocks(&mono, &real)
        return mono
    }

    func run(_ continuation: AsyncThrowingStream<FlowBatch, any Error>.Continuation) {
        nameCurrentThread("ff-ebpf-drain")
        let interval = UInt64(configuration.pollInterval * 1e9)
        var nextPoll = monotonicNow() &+ interval
        do {
            while true {
                switch control.current {
                case .cancel:
                    shutdown()
                    continuation.finish()
                    return
                case .stop:
                    let batch = try finalBatch()
                    _ = deliver(batch, continuation)
                    continuation.finish()
                    return
                case .none:
                    break
                }
                let now = monotonicNow()
                if now >= nextPoll {
                    let batch = try poll()
                    guard deliver(batch, continuation) else {
                        shutdown()
                        return
                    }
                    let after = monotonicNow()
                    nextPoll = max(nextPoll &+ interval, after &+ interval / 10)
                    continue
                }
                // Wait for ring-buffer events in short slices so a stop, or a
                // burst of new flows outgrowing the small index, is seen quickly.
                let waitMs = Int32(min(20, max(1, (nextPoll - now) / 1_000_000)))
                for event in program.pollEvents(timeoutMs: waitMs) {
                    tracker.observe(KernelEvent(event, wallOffsetNs: wallOffsetNs))
                }
                if let move = try program.growIndexEarly() { logIndexMove(move) }
            }
        } catch {
            logger.error("eBPF capture failed", metadata: ["error": "\(error)"])
            shutdown()
            continuation.finish(throwing: error)
        }
    }

    /// Hands `batch` to the consumer, waiting while the stream holds
    /// ``EBPFFlowSource/bufferedBatches`` already; ring-buffer packets are
    /// still taken meanwhile, so none waits in a full ring. Returns false
    /// when the consumer is gone or cancelled.
    private func deliver(_ batch: FlowBatch, _ continuation: AsyncThrowingStream<FlowBatch, any Error>.Continuation) -> Bool {
        continuation.yieldWhenRoom(batch) {
            if case .cancel = control.current { return false }
            for event in program.pollEvents(timeoutMs: 5) {
                tracker.observe(KernelEvent(event, wallOffsetNs: wallOffsetNs))
            }
            return true
        }
    }

    /// One poll: read every flow, end those due (their keys removed, then
    /// their slots read once no program run can still add to them),
    /// checkpoint the rest; then the overflow aggregates. The walk gives
    /// the tracker what changed; the checkpoint reads the totals of the
    /// flows due a record from their slots.
    private func poll() throws(EBPFError) -> FlowBatch {
        let started = monotonicNow()
        let offset = wallOffsetNs
        try Self.walk(program, into: &tracker, wallOffsetNs: offset)
        for event in program.drainEvents() { tracker.observe(KernelEvent(event, wallOffsetNs: offset)) }
        let nowNs = monotonicNow() &+ offset
        let due = tracker.due(at: nowNs)
        // Sized once: a poll that ends a million flows would otherwise copy its records as the array grows.
        var records: [FlowRecord] = []
        records.reserveCapacity(due.count)
        var unlinked = try program.unlinkFlows(due.filter(\.inKernel).map(\.key.kernelKey)).makeIterator()
        for (key, reason, inKernel) in due {
            let slot = inKernel ? unlinked.next() ?? nil : nil
            let final = slot.map { KernelFlow(key: key, slot: program.releaseSlot($0), wallOffsetNs: offset) }
            if let record = tracker.end(key, final: final, reason: reason) { records.append(record) }
        }
        var copy = flow_slot()
        tracker.checkpoint(at: nowNs, appendingTo: &records) { key, n in
            let kernelKey = key.kernelKey
            let found = n.map { program.readSlot($0, holding: kernelKey, into: &copy) } ?? false
            guard found || program.readFlow(kernelKey, into: &copy) else { return nil }
            return KernelFlowTracker.Totals(copy, wallOffsetNs: offset)
        }
        let aggregates = try drainAggregates(nowNs: nowNs, endAll: false)
        if let move = try program.balanceIndex() { logIndexMove(move) }
        // What was taken out of both maps, for the program's admission.
        try program.writeLimits()
        var result = try batch(records, aggregates: aggregates, nowNs: nowNs)
        result.pollDurationNs = monotonicNow() &- started
        return result
    }

    private func logIndexMove(_ move: KernelProgram.IndexMove) {
        let entries = move.large ? program.mapEntries : Int(FF_SMALL_INDEX_ENTRIES)
        logger.info("eBPF capture: flow index moved", metadata: [
            "index": "\(move.large ? "flows" : "flows_small") (\(entries) entries)",
            "keys_moved": "\(move.moved)",
        ])
    }

    /// Gives the tracker every live slot of the map. A static function
    /// with the tracker `inout`: the walk holds one access to it, where a
    /// closure reaching the stored property would begin and end a checked
    /// access for every flow (with the slot reads', 2.6 % of the daemon's
    /// CPU at 100,000 changing flows).
    private static func walk(_ program: KernelProgram, into tracker: inout KernelFlowTracker,
                             wallOffsetNs offset: UInt64) throws(EBPFError) {
        try program.forEachFlow { n, slot in
            let flowKey = FlowKey(slot.pointee.key)
            tracker.observe(flowKey, kernelSlot: n, kernelPackets: slot.pointee.dir.0.packets &+ slot.pointee.dir.1.packets,
                            summary: { KernelFlowTracker.Summary(slot, wallOffsetNs: offset) },
                            convert: { KernelFlow(key: flowKey, slot: KernelProgram.copy(slot), wallOffsetNs: offset) })
        }
    }

    /// Reports every aggregate that changed; takes (lookup-and-delete) those
    /// idle for the flow idle timeout, or all of them at the end.
    private func drainAggregates(nowNs: UInt64, endAll: Bool) throws(EBPFError) -> [FlowAggregate] {
        let offset = wallOffsetNs
        let idleNs = configuration.flowTable.idleTimeoutNs
        var out: [FlowAggregate] = []
        var due: [KernelAggregate] = []
        try program.forEachAggregate { key, value in
            // Inserted empty and not yet added to by its first packet: its
            // zero last-seen time is no idleness, and taking it now would
            // lose that packet's update.
            if value.packets == 0 && !endAll { return }
            let a = KernelAggregate(key: key, value: value, wallOffsetNs: offset)
            if endAll || (nowNs > a.lastSeenNs && nowNs - a.lastSeenNs >= idleNs) {
                due.append(a)
            } else if let report = overflow.observe(a) {
                out.append(report)
            }
        }
        for a in due {
            guard let value = try program.takeAggregate(a.kernelKey) else {
                overflow.forget(a.key)
                continue
            }
            if let report = overflow.end(KernelAggregate(key: a.kernelKey, value: value, wallOffsetNs: offset)) {
                out.append(report)
            }
        }
        return out
    }

    /// Detaches, then takes every flow out of the map with its final totals.
    private func finalBatch() throws(EBPFError) -> FlowBatch {
        detach()
        let offset = wallOffsetNs
        var keys: [FlowKey] = []
        try program.forEachFlow { _, slot in
            let flow = KernelFlow(slot.pointee, wallOffsetNs: offset)
            tracker.track(flow)
            keys.append(flow.key)
        }
        for event in program.drainEvents() { tracker.observe(KernelEvent(event, wallOffsetNs: offset)) }
        let nowNs = monotonicNow() &+ offset
        var records: [FlowRecord] = []
        for (key, slot) in zip(keys, try program.unlinkFlows(keys.map(\.kernelKey))) {
            let final = slot.map { KernelFlow(key: key, slot: program.releaseSlot($0), wallOffsetNs: offset) }
            if let record = tracker.end(key, final: final, reason: .shutdown) { records.append(record) }
        }
        for key in Array(tracker.entries.keys) {
            if let record = tracker.end(key, final: nil, reason: .shutdown) { records.append(record) }
        }
        let aggregates = try drainAggregates(nowNs: nowNs, endAll: true)
        let result = try batch(records, aggregates: aggregates, nowNs: nowNs)
        shutdown()
        return result
    }

    private func batch(_ records: [FlowRecord], aggregates: [FlowAggregate], nowNs: UInt64) throws(EBPFError) -> FlowBatch {
        let c = try program.counters()
        control.counters = c
        let run = program.runStatistics()
        control.runStatistics = (run.runTimeNs, run.runCount)
        var s = CaptureStatistics()
        s.packetsSeen = c.packetsSeen
        s.packetsAccounted = c.packetsAccounted.addingSaturated(tracker.overflowPackets)
        s.bytesAccounted = tracker.accounted.bytes
        s.notIP = c.notIP
        s.malformed = c.malformed
        // Packets lost for want of room: in the ring buffer, or in user space (--max-flows).
        s.tableFull = c.ringBufferFailed.addingSaturated(tracker.overflowPacketsNotTracked)
        s.ringBufferPackets = c.ringBufferSent
        s.ringBufferSlotLocked = c.slotLocked
        s.packetsAggregated = overflow.packets
        s.bytesAggregated = overflow.bytes
        s.forwardedSeen = c.forwardedSeen
        s.flowsStarted = tracker.flowsStarted
        s.flowsEnded = tracker.flowsEnded
        var batch = FlowBatch(timeNs: nowNs, records: records, statistics: s, activeFlows: tracker.entries.count,
                              aggregates: aggregates)
        batch.mapEntries = try program.flowsInMap()
        return batch
    }

    private func detach() {
        guard !attachments.isEmpty else { return }
        for a in attachments { a.detach() }
        attachments.removeAll()
        // Let program runs already in flight on other CPUs finish their
        // update before the final read.
        do {
            try program.waitForProgramRuns()
        } catch {
            logger.warning("eBPF capture: \(error); waiting 50 ms instead")
            usleep(50_000)
        }
    }

    /// Detaches and unloads; idempotent.
    func shutdown() {
        guard !closed else { return }
        closed = true
        detach()
        program.close()
    }
}
