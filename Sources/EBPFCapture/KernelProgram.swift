internal import CLibbpf
import Foundation

/// Cumulative counters of the kernel program, summed over CPUs.
public struct EBPFKernelCounters: Sendable, Hashable {
    public var packetsSeen: UInt64 = 0
    public var packetsAccounted: UInt64 = 0
    public var notIP: UInt64 = 0
    public var malformed: UInt64 = 0
    /// Packets of failed inserts (map full or another error), or of slots
    /// locked past the spin bound, delivered through the ring buffer.
    public var ringBufferSent: UInt64 = 0
    /// Packets lost because the ring buffer was full too.
    public var ringBufferFailed: UInt64 = 0
    /// Of the packets sent to the ring buffer or lost with it, those whose
    /// flow's slot stayed locked by another CPU past the spin bound (the
    /// rest are failed inserts).
    public var slotLocked: UInt64 = 0
    /// Packets not admitted as flows, added to an overflow aggregate.
    public var aggregated: UInt64 = 0
    /// Forwarded packets seen leaving after they were counted entering another watched interface.
    public var forwardedSeen: UInt64 = 0
    /// Slots of the flow table ever handed out fresh (freed ones are taken
    /// again first): at most the table's size plus one per CPU.
    public var slotsUsed: UInt64 = 0
    /// Whether the flow table's index is the --map-size one (`flows`) now,
    /// rather than the small one used while the table holds few flows.
    public var largeIndex = false
    /// New flows' packets the program did not insert because the small
    /// index was full while it was the one in use, before the drainer moved
    /// to `flows`: folded into aggregates, or sent to the ring buffer when
    /// they belong to an answered TCP connection (as past the admission limit).
    public var indexSpills: UInt64 = 0
    /// Times the drainer switched the index and moved its keys.
    public var indexMoves: UInt64 = 0
    /// New flows' packets the program did not insert because a move was
    /// under way, handled as ``indexSpills`` are.
    public var indexDeferred: UInt64 = 0

    public init() {}
}

/// The loaded eBPF program (embedded, or `--bpf-object`): owns the libbpf
/// object, its program and map descriptors and the ring-buffer consumer.
/// Used from one thread at a time (the drain thread, or init/deinit).
final class KernelProgram {
    private let object: OpaquePointer
    let programFD: Int32
    private let flowMapFD: Int32
    private let smallIndexFD: Int32
    /// The index the program uses (struct flow_limits): `flows` when true,
    /// `flows_small` when false; always `flows` when the map size is no
    /// larger than the small index.
    private(set) var indexLarge: Bool
    /// Keys may be in either index and the program inserts none (a move
    /// between them is under way, or was cut short by an error).
    private var indexBoth = false
    /// The program's spill count as of the last move: more means the
    /// small index filled up while it was in use.
    private var spillsSeen: UInt64 = 0
    private var indexMoves: UInt64 = 0
    private let freeSlotsFD: Int32
    private let flowSlotsFD: Int32
    private let graceFD: Int32
    private let graceInnerFD: Int32
    /// Slots whose push onto the free stack failed, pushed again each poll.
    private var unpushedSlots: [UInt32] = []
    /// Unchecked: the walk and every read of a changed flow's slot go
    /// through it, and checking each access for exclusivity took, with the
    /// walk's access to the tracker, 2.6 % of the daemon's CPU at 100,000
    /// changing flows. Only the thread that uses the program touches it,
    /// and no access to it overlaps another.
    @exclusivity(unchecked) private var slots: FlowSlotArray
    private let statsFD: Int32
    private let eventsFD: Int32
    private let overflowFD: Int32
    private let limitsFD: Int32
    private let insertsFD: Int32
    /// Entries taken out of the flow map, and sender-keyed aggregates out
    /// of `overflow`, since the load: the program's inserts minus these are
    /// what each holds (only this drainer removes entries).
    private var flowsRemoved: UInt64 = 0
    private var sendersRemoved: UInt64 = 0
    private var aggregatesRemoved: UInt64 = 0
    /// The flow map's size: the admission limit is 7/8 of it.
    let mapEntries: Int
    private var ringBuffer: OpaquePointer?
    private let sink = EventSink()
    private let possibleCPUs: Int
    private let batchTokens: UnsafeMutableRawPointer
    private let aggregateCapacity = 1024
    private let aggregateKeys: UnsafeMutablePointer<overflow_key>
    private let aggregateValues: UnsafeMutablePointer<overflow_value>

    /// - Parameter watched: ifindexes of every interface this sensor
    ///   attaches to, so a packet forwarded between two of them is counted once.
    init(source: KernelObjectSource, mode: EBPFAttachMode, mapEntries: Int, ringBufferBytes: Int,
         watched: [UInt32]) throws(EBPFError) {
        ff_libbpf_capture_logs()
        ff_libbpf_clear_log()
        let opened = try OpenedKernelObject(source)
        object = opened.object
        // Only this mode's program is loaded.
        for name in KernelProgramName.allCases {
            bpf_program__set_autoload(opened.program(name), name == KernelProgramName(mode))
        }
        // OpenedKernelObject checked that every program and map exists.
        let prog = opened.program(KernelProgramName(mode))!
        let statsMap = opened.map(.stats)!, eventsMap = opened.map(.events)!
        for name in KernelMapName.sizedByMapSize { bpf_map__set_max_entries(opened.map(name), UInt32(mapEntries)) }
        indexLarge = mapEntries <= Int(FF_SMALL_INDEX_ENTRIES)
        // A table no larger than the small index uses `flows` alone: the small one gets no memory.
        if indexLarge { bpf_map__set_max_entries(opened.map(.flowsSmall), 1) }
        bpf_map__set_max_entries(eventsMap, UInt32(ringBufferBytes))
        let rc = bpf_object__load(object)
        if rc != 0 {
            let log = KernelProgram.libbpfLog()
            bpf_object__close(object)
            throw KernelProgram.loadError(-rc, log: log)
        }
        programFD = bpf_program__fd(prog)
        flowMapFD = bpf_map__fd(opened.map(.flows))
        smallIndexFD = bpf_map__fd(opened.map(.flowsSmall))
        freeSlotsFD = bpf_map__fd(opened.map(.freeSlots))
        flowSlotsFD = bpf_map__fd(opened.map(.flowSlots))
        graceFD = bpf_map__fd(opened.map(.grace))
        graceInnerFD = bpf_map__fd(opened.map(.graceInner))
        slots = FlowSlotArray(fd: flowSlotsFD, capacity: mapEntries)
        statsFD = bpf_map__fd(statsMap)
        eventsFD = bpf_map__fd(eventsMap)
        overflowFD = bpf_map__fd(opened.map(.overflow)!)
        limitsFD = bpf_map__fd(opened.map(.limits)!)
        insertsFD = bpf_map__fd(opened.map(.inserts)!)
        self.mapEntries = mapEntries
        aggregateKeys = .allocate(capacity: aggregateCapacity)
        aggregateValues = .allocate(capacity: aggregateCapacity)
        possibleCPUs = max(1, Int(libbpf_num_possible_cpus()))
        batchTokens = .allocate(byteCount: 2 * 64, alignment: 8)
        let callback: ring_buffer_sample_fn = { ctx, data, size in
            guard let ctx, let data, size >= MemoryLayout<flow_event>.size else { return 0 }
            let sink = Unmanaged<EventSink>.fromOpaque(ctx).takeUnretainedValue()
            sink.events.append(data.loadUnaligned(as: flow_event.self))
            return 0
        }
        ringBuffer = ring_buffer__new(eventsFD, callback, Unmanaged.passUnretained(sink).toOpaque(), nil)
        if ringBuffer == nil {
            let err = errno
            close()
            throw .loadFailed("cannot open the ring buffer: \(String(cString: strerror(err)))")
        }
        do {
            try configure(watched: watched, watchedFD: bpf_map__fd(opened.map(.watched)!))
        } catch {
            close()
            throw error
        }
    }

    /// Writes what the program needs before it is attached: the watched
    /// interfaces and the admission limit (nothing is admitted until this is written).
    private func configure(watched: [UInt32], watchedFD: Int32) throws(EBPFError) {
        guard watched.count <= Int(FF_MAX_WATCHED) else {
            throw .invalidConfiguration("at most \(FF_MAX_WATCHED) interfaces per sensor")
        }
        for ifindex in watched {
            var key = ifindex
            var one: UInt8 = 1
            if bpf_map_update_elem(watchedFD, &key, &one, UInt64(BPF_ANY)) != 0 {
                throw .loadFailed("cannot write the watched interfaces: \(String(cString: strerror(errno)))")
            }
        }
        try writeLimits()
    }

    /// The admission limit: new flows fill the map up to 7/8 of its size;
    /// the rest is kept for connections that were answered.
    var admitLimit: UInt64 { UInt64(mapEntries) * UInt64(FF_ADMIT_EIGHTHS) / 8 }

    /// Tells the program the admission limit and what this drainer has
    /// removed so far; the program counts its own inserts, so no insert
    /// racing this write is lost from the count.
    func writeLimits() throws(EBPFError) {
        if !unpushedSlots.isEmpty {
            let retry = unpushedSlots
            unpushedSlots.removeAll()
            for n in retry { push(n) }
        }
        var zero: UInt32 = 0
        var value = flow_limits(slots: UInt64(mapEntries), admit: admitLimit, flows_removed: flowsRemoved, senders_removed: sendersRemoved,
                                aggregates_removed: aggregatesRemoved, index_large: indexLarge ? 1 : 0,
                                index_both: indexBoth ? 1 : 0)
        if bpf_map_update_elem(limitsFD, &zero, &value, UInt64(BPF_ANY)) != 0 {
            throw .readFailed("cannot write the flow map's limits: \(String(cString: strerror(errno)))")
        }
    }

    /// Entries of the flow map now: the program's inserts minus this
    /// drainer's removals, exact since only the drainer removes entries.
    func flowsInMap() throws(EBPFError) -> Int {
        flows(after: try insertCounts())
    }

    private func flows(after inserted: ff_inserts) -> Int {
        inserted.flows > flowsRemoved ? Int(clamping: inserted.flows - flowsRemoved) : 0
    }

    private func insertCounts() throws(EBPFError) -> ff_inserts {
        var zero: UInt32 = 0
        var inserted = ff_inserts()
        guard bpf_map_lookup_elem(insertsFD, &zero, &inserted) == 0 else {
            throw .readFailed("cannot read the program's insert counts: \(String(cString: strerror(errno)))")
        }
        return inserted
    }

    deinit { close() }

    private var closed = false
    /// Frees the object; programs not attached elsewhere are unloaded.
    func close() {
        guard !closed else { return }
        closed = true
        if let rb = ringBuffer { ring_buffer__free(rb) }
        ringBuffer = nil
        slots.unmap()
        bpf_object__close(object)
        batchTokens.deallocate()
        aggregateKeys.deallocate()
        aggregateValues.deallocate()
    }

    static func libbpfLog() -> String {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = ff_libbpf_last_log(&buffer, buffer.count)
        guard n > 0 else { return "" }
        let lines = decodeCString(buffer).split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        return " (libbpf: " + lines.suffix(3).joined(separator: " | ") + ")"
    }

    static func loadError(_ err: Int32, log: String) -> EBPFError {
        switch err {
        case EPERM, EACCES:
            return .permissionDenied(
                "loading eBPF programs needs root or the capabilities CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON; "
                    + "run as root (sudo) or grant them: setcap cap_bpf,cap_net_admin,cap_perfmon+ep \(CommandLine.arguments.first ?? "flowforest")\(log)")
        case ENOSYS:
            return .unsupported("this kernel has no bpf() system call (needs CONFIG_BPF_SYSCALL, Linux 5.8 or later)\(log)")
        case ENOMEM, E2BIG:
            return .loadFailed("the kernel could not allocate the flow map: lower --map-size or raise the memory limit\(log)")
        default:
            return .loadFailed("\(String(cString: strerror(err)))\(log)")
        }
    }

    // MARK: Reading

    /// Sums the per-CPU counters.
    func counters() throws(EBPFError) -> EBPFKernelCounters {
        let slot = (MemoryLayout<ff_stats>.size + 7) & ~7
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: slot * possibleCPUs, alignment: 8)
        defer { buffer.deallocate() }
        var zero: UInt32 = 0
        if bpf_map_lookup_elem(statsFD, &zero, buffer) != 0 {
            throw .readFailed("stats: \(String(cString: strerror(errno)))")
        }
        var sums = [UInt64](repeating: 0, count: Int(FF_STAT_MAX.rawValue))
        for cpu in 0..<possibleCPUs {
            for i in sums.indices { sums[i] &+= buffer.load(fromByteOffset: cpu * slot + i * 8, as: UInt64.self) }
        }
        var c = EBPFKernelCounters()
        c.packetsSeen = sums[Int(FF_STAT_PACKETS_SEEN.rawValue)]
        c.packetsAccounted = sums[Int(FF_STAT_PACKETS_ACCOUNTED.rawValue)]
        c.notIP = sums[Int(FF_STAT_NOT_IP.rawValue)]
        c.malformed = sums[Int(FF_STAT_MALFORMED.rawValue)]
        c.ringBufferSent = sums[Int(FF_STAT_RINGBUF_SENT.rawValue)]
        c.ringBufferFailed = sums[Int(FF_STAT_RINGBUF_FAILED.rawValue)]
        c.slotLocked = sums[Int(FF_STAT_SLOT_LOCKED.rawValue)]
        c.aggregated = sums[Int(FF_STAT_AGGREGATED.rawValue)]
        c.forwardedSeen = sums[Int(FF_STAT_FORWARDED_SEEN.rawValue)]
        let inserted = try insertCounts()
        c.slotsUsed = inserted.slots_used
        c.indexSpills = inserted.spills
        c.indexDeferred = inserted.deferred
        c.largeIndex = indexLarge
        c.indexMoves = indexMoves
        return c
    }

    /// Calls `body` with every live flow's slot number and slot, read in place: the slots
    /// the program has ever used are mapped and walked, with no copy and
    /// no system call but the one that says how far the used slots reach.
    /// A slot's figures may be mid-update by the program: counts are read
    /// as they stand, so a packet counted during the walk shows next time.
    func forEachFlow(_ body: (UInt32, UnsafePointer<flow_slot>) -> Void) throws(EBPFError) {
        let used = Int(clamping: min(try insertCounts().slots_used, UInt64(mapEntries)))
        try slots.map(upTo: used)
        for n in 0..<used {
            let slot = slots.slot(n)
            if ff_slot_live(slot) != 0 { body(UInt32(n), slot) }
        }
    }

    /// Maps slot `n` if the walk has not (the program took it since); false
    /// past the array, which the program never hands out.
    private func isMapped(_ n: UInt32) -> Bool {
        guard Int(n) < mapEntries else { return false }
        if Int(n) >= slots.mapped { try? slots.map(upTo: Int(n) + 1) }
        return Int(n) < slots.mapped
    }

    /// Copies slot `n` into `value` and returns whether it holds the flow
    /// with this key: no system call, for a flow the walk found there. On
    /// false `value` may hold another flow's slot. The copy is taken
    /// between two of the program's updates (see `ff_copy_slot`), so its
    /// counts, sums and times agree. The caller's buffer is reused from
    /// flow to flow: a 280-byte slot returned as an optional would be
    /// copied again on its way out, for every flow of every poll.
    func readSlot(_ n: UInt32, holding key: flow_key, into value: inout flow_slot) -> Bool {
        guard isMapped(n) else { return false }
        let slot = slots.slot(Int(n))
        guard ff_slot_live(slot) != 0 else { return false }
        _ = ff_copy_slot(slot, &value, Self.copyTries)
        var k = key
        return memcmp(&value.key, &k, MemoryLayout<flow_key>.size) == 0
    }

    /// A copy of a slot the walk found, taken between two of the program's
    /// updates: a flow's first read must not see a direction mid-update (its
    /// packet counted, its first time not yet written), which would date
    /// the flow to the epoch.
    static func copy(_ slot: UnsafePointer<flow_slot>) -> flow_slot {
        var value = flow_slot()
        _ = ff_copy_slot(slot, &value, copyTries)
        return value
    }

    /// Copies of a busy slot tried before the last is taken as it is.
    private static let copyTries: Int32 = 16

    /// Copies a flow's slot as it stands now into `value`; false when the
    /// table has no such flow.
    func readFlow(_ key: flow_key, into value: inout flow_slot) -> Bool {
        var k = key
        var n: UInt32 = 0
        guard indexFDs.contains(where: { bpf_map_lookup_elem($0, &k, &n) == 0 }) else { return false }
        return readSlot(n, holding: key, into: &value)
    }

    /// The indexes a key may be in, the one in use first. Only this
    /// drainer moves keys between them, so outside ``balanceIndex()`` a key
    /// is in one of them.
    private var indexFDs: [Int32] {
        indexLarge ? [flowMapFD, smallIndexFD] : [smallIndexFD, flowMapFD]
    }

    /// Takes these flows out of the table: removes their keys and marks
    /// their slots unlinked (a run that reaches one through a hint leaves
    /// it alone from then on), then waits until no program run that found a
    /// key or hint before that is still adding to its slot, so each slot
    /// then holds its flow's final figures.
    /// Returns each flow's slot, `nil` for one already gone; read each with
    /// ``releaseSlot(_:)``, which frees it. Any failure but "no such key"
    /// is an error: taking a key that stayed for gone would let the next
    /// walk find the flow again and count its running total twice.
    func unlinkFlows(_ keys: [flow_key]) throws(EBPFError) -> [UInt32?] {
        var unlinked = 0
        var found: [UInt32?] = []
        found.reserveCapacity(keys.count)
        for key in keys {
            var k = key
            var n: UInt32 = 0
            var slot: UInt32?
            for fd in indexFDs where slot == nil {
                let rc = bpf_map_lookup_and_delete_elem(fd, &k, &n)
                if rc == 0 {
                    slot = n
                    // A walked flow's slot is mapped already. One that cannot
                    // be could not be marked, and a hint could still lead a
                    // packet into it after its final read: stop instead.
                    guard isMapped(n) else {
                        try waitForProgramRuns()
                        flowsRemoved += UInt64(unlinked + 1)
                        throw .readFailed("cannot map flow slot \(n) to take an ended flow's final figures")
                    }
                    ff_slot_unlink(slots.slot(Int(n)))
                } else if rc != -ENOENT {
                    if unlinked > 0 { try waitForProgramRuns() }
                    flowsRemoved += UInt64(unlinked)
                    throw .readFailed("cannot remove an ended flow's key: \(String(cString: strerror(-rc)))")
                }
            }
            if slot != nil { unlinked += 1 }
            found.append(slot)
        }
        flowsRemoved += UInt64(unlinked)
        if unlinked > 0 { try waitForProgramRuns() }
        return found
    }

    /// What ``balanceIndex()`` did: which index the program now uses and
    /// the keys moved into it.
    struct IndexMove: Sendable, Equatable {
        var large: Bool
        var moved: Int
    }

    /// Flows at which the small index gives way to `flows` (3/4 of it), and
    /// at which `flows` gives way to the small one again (1/8 of it): far
    /// enough apart that a table hovering near one does not move its keys
    /// every poll.
    static let growIndexAt = Int(FF_SMALL_INDEX_ENTRIES) * 3 / 4
    static let shrinkIndexAt = Int(FF_SMALL_INDEX_ENTRIES) / 8

    /// Puts the flow table's index where its flows need it, once a poll:
    /// the small one while they are few, `flows` once they are many or
    /// the small one filled up. `nil` when nothing moved.
    func balanceIndex() throws(EBPFError) -> IndexMove? {
        guard mapEntries > Int(FF_SMALL_INDEX_ENTRIES) else { return nil }
        let inserted = try insertCounts()
        if !indexLarge && mustGrow(inserted) { return try moveIndex(large: true) }
        if indexLarge && flows(after: inserted) <= Self.shrinkIndexAt { return try moveIndex(large: false) }
        // A move cut short by an error: finish it, so inserts resume.
        return indexBoth ? try moveIndex(large: indexLarge) : nil
    }

    /// Moves to `flows` between polls as soon as the flows reach the
    /// threshold or filled the small index (whose new flows are then
    /// treated as past the admission limit), so a burst of new flows is cut
    /// short within one wait slice. One read of the insert counts.
    func growIndexEarly() throws(EBPFError) -> IndexMove? {
        guard !indexLarge && mapEntries > Int(FF_SMALL_INDEX_ENTRIES) else { return nil }
        return mustGrow(try insertCounts()) ? try moveIndex(large: true) : nil
    }

    /// The small index in use is near full, or filled up since the last move.
    private func mustGrow(_ inserted: ff_inserts) -> Bool {
        flows(after: inserted) >= Self.growIndexAt || inserted.spills != spillsSeen
    }

    /// Switches the program to one index and moves every key of the other
    /// into it. First the program is told that keys move ("look in both",
    /// which also stops inserts: a new flow's packet is then handled as one
    /// past the admission limit), and once no run that read the old
    /// setting is in flight, every key is put in the new index before it
    /// leaves the old, so every lookup finds it. Only then is the new index
    /// named, and inserts resume into it alone: at no time can two CPUs
    /// insert one new flow into different indexes. A move into the small
    /// index that finds it full moves everything back to `flows`.
    private func moveIndex(large: Bool) throws(EBPFError) -> IndexMove {
        indexBoth = true
        indexMoves += 1
        try writeLimits()
        try waitForProgramRuns()
        let spills = try insertCounts().spills
        let (from, to) = large ? (smallIndexFD, flowMapFD) : (flowMapFD, smallIndexFD)
        var (keys, slots) = try entries(of: from)
        // BPF_ANY: nothing is inserted while keys move, so none is in the new index.
        var moved = UInt32(keys.count)
        let rc = keys.isEmpty ? 0 : ff_update_batch(to, &keys, &slots, &moved, UInt64(BPF_ANY))
        guard rc == 0 || (rc == -E2BIG && !large) else {
            throw .readFailed("cannot move the flow index's keys: \(String(cString: strerror(-rc)))")
        }
        // Out of the old index only once in the new one.
        var deleted = moved
        let removed = moved > 0 ? ff_delete_batch(from, &keys, &deleted) : 0
        guard removed == 0 else {
            throw .readFailed("cannot remove the flow index's moved keys: \(String(cString: strerror(-removed)))")
        }
        if Int(moved) < keys.count { return try moveIndex(large: true) }
        // Named while inserts are still off, then inserts on: a run that
        // reads the two writes' fields torn either inserts into the new
        // index or not at all.
        indexLarge = large
        try writeLimits()
        indexBoth = false
        spillsSeen = spills
        try writeLimits()
        return IndexMove(large: large, moved: Int(moved))
    }

    /// Every key of an index and its slot number.
    private func entries(of fd: Int32) throws(EBPFError) -> ([flow_key], [UInt32]) {
        let chunk = 4096
        let batchKeys = UnsafeMutablePointer<flow_key>.allocate(capacity: chunk)
        let batchSlots = UnsafeMutablePointer<UInt32>.allocate(capacity: chunk)
        defer { batchKeys.deallocate(); batchSlots.deallocate() }
        var keys: [flow_key] = [], slots: [UInt32] = []
        try lookupBatches(fd, keys: batchKeys, values: batchSlots, capacity: chunk, what: "flow index") { n in
            keys.append(contentsOf: UnsafeBufferPointer(start: batchKeys, count: n))
            slots.append(contentsOf: UnsafeBufferPointer(start: batchSlots, count: n))
        }
        return (keys, slots)
    }

    /// Reads a hash map whole, up to `capacity` entries at a time into
    /// `keys` and `values`, calling `body` with each batch's count.
    private func lookupBatches<Key, Value>(_ fd: Int32, keys: UnsafeMutablePointer<Key>, values: UnsafeMutablePointer<Value>,
                                           capacity: Int, what: String, _ body: (Int) -> Void) throws(EBPFError) {
        let inToken = batchTokens
        let outToken = batchTokens.advanced(by: 64)
        var first = true
        while true {
            var count = UInt32(capacity)
            let rc = ff_lookup_batch(fd, first ? nil : inToken, outToken, keys, values, &count, 0)
            if rc != 0 && rc != -ENOENT {
                throw .readFailed("\(what) batch lookup: \(String(cString: strerror(-rc)))")
            }
            body(Int(count))
            if rc == -ENOENT { return }
            inToken.copyMemory(from: outToken, byteCount: 64)
            first = false
        }
    }

    /// Returns once every program run in flight on any CPU has finished:
    /// the bpf() syscall waits for an RCU grace period after a successful
    /// update of a map-in-map, and every run of these programs is inside an
    /// RCU read-side section.
    func waitForProgramRuns() throws(EBPFError) {
        var zero: UInt32 = 0
        var inner = graceInnerFD
        guard bpf_map_update_elem(graceFD, &zero, &inner, UInt64(BPF_ANY)) == 0 else {
            throw .readFailed("cannot wait for program runs in flight: \(String(cString: strerror(errno)))")
        }
    }

    /// The final figures of a slot ``unlinkFlows(_:)`` returned; the slot
    /// goes back to the program's free list.
    func releaseSlot(_ n: UInt32) -> flow_slot {
        var value = flow_slot()
        // Mapped by unlinkFlows, and chunks stay mapped until the program is closed.
        let slot = slots.slot(Int(n))
        // No program adds to it any more: one copy is consistent.
        _ = ff_copy_slot(slot, &value, 1)
        slot.pointee.live = 0
        push(n)
        return value
    }

    /// Returns a slot to the free stack; one the stack refuses (its lock
    /// busy) waits for the next poll's ``writeLimits()``.
    private func push(_ n: UInt32) {
        var free = n
        if bpf_map_update_elem(freeSlotsFD, nil, &free, 0) != 0 { unpushedSlots.append(n) }
    }

    /// Reads every overflow aggregate in batches (atomically updated
    /// values: no lock to take).
    func forEachAggregate(_ body: (overflow_key, overflow_value) -> Void) throws(EBPFError) {
        let keys = aggregateKeys, values = aggregateValues
        try lookupBatches(overflowFD, keys: keys, values: values, capacity: aggregateCapacity, what: "overflow") { n in
            for i in 0..<n { body(keys[i], values[i]) }
        }
    }

    /// An aggregate's final value, removed in the same step. `nil` when
    /// gone; any other failure is an error (an aggregate taken for gone but
    /// still there would be reported again whole).
    func takeAggregate(_ key: overflow_key) throws(EBPFError) -> overflow_value? {
        var k = key
        var v = overflow_value()
        let rc = bpf_map_lookup_and_delete_elem(overflowFD, &k, &v)
        if rc == -ENOENT { return nil }
        guard rc == 0 else { throw .readFailed("cannot remove an overflow aggregate: \(String(cString: strerror(-rc)))") }
        aggregatesRemoved += 1
        if k.side == UInt8(FF_SIDE_SOURCE.rawValue) { sendersRemoved += 1 }
        return v
    }

    /// Waits up to `timeoutMs` for ring-buffer events and returns those
    /// received since the last call.
    func pollEvents(timeoutMs: Int32) -> [flow_event] {
        guard let rb = ringBuffer else { return [] }
        _ = ring_buffer__poll(rb, timeoutMs)
        return takeEvents()
    }

    /// Consumes what is in the ring buffer without waiting.
    func drainEvents() -> [flow_event] {
        guard let rb = ringBuffer else { return [] }
        _ = ring_buffer__consume(rb)
        return takeEvents()
    }

    private func takeEvents() -> [flow_event] {
        let events = sink.events
        sink.events.removeAll(keepingCapacity: true)
        return events
    }

    /// Cumulative run time and count of the program (non-zero only while
    /// BPF statistics are enabled).
    func runStatistics() -> (runTimeNs: UInt64, runCount: UInt64) {
        var ns: UInt64 = 0, count: UInt64 = 0
        _ = ff_prog_run_stats(programFD, &ns, &count)
        return (ns, count)
    }
}

/// Collects ring-buffer samples delivered by libbpf's C callback.
private final class EventSink {
    var events: [flow_event] = []
}
