internal import CLibbpf
import Foundation

/// Cumulative counters of the kernel program, summed over CPUs.
public struct EBPFKernelCounters: Sendable, Hashable {
    public var packetsSeen: UInt64 = 0
    public var packetsAccounted: UInt64 = 0
    public var notIP: UInt64 = 0
    public var malformed: UInt64 = 0
    /// Packets of failed inserts (map full or another error) delivered through the ring buffer.
    public var ringBufferSent: UInt64 = 0
    /// Packets lost because the ring buffer was full too.
    public var ringBufferFailed: UInt64 = 0
    /// Packets not admitted as flows, added to an overflow aggregate.
    public var aggregated: UInt64 = 0
    /// Forwarded packets seen leaving after they were counted entering another watched interface.
    public var forwardedSeen: UInt64 = 0

    public init() {}
}

/// The loaded eBPF program (embedded, or `--bpf-object`): owns the libbpf
/// object, its program and map descriptors and the ring-buffer consumer.
/// Used from one thread at a time (the drain thread, or init/deinit).
final class KernelProgram {
    private let object: OpaquePointer
    let programFD: Int32
    private let flowMapFD: Int32
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
    /// The socket variant's map has no spin lock, so it is read without BPF_F_LOCK.
    private let lockFlags: UInt64
    private var ringBuffer: OpaquePointer?
    private let sink = EventSink()
    private let possibleCPUs: Int
    private let batchCapacity = 4096
    private let keys: UnsafeMutablePointer<flow_key>
    private let values: UnsafeMutablePointer<flow_value>
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
        // Only this mode's program is loaded, and only its flow map created:
        // the other flow map would cost its full preallocated size for nothing.
        for name in KernelProgramName.allCases {
            bpf_program__set_autoload(opened.program(name), name == KernelProgramName(mode))
        }
        let flowMapName = KernelMapName.flows(for: mode)
        for name in [KernelMapName.flows, .flowsAtomic] where name != flowMapName {
            bpf_map__set_autocreate(opened.map(name), false)
        }
        // OpenedKernelObject checked that every program and map exists.
        let prog = opened.program(KernelProgramName(mode))!
        let flowMap = opened.map(flowMapName)!, statsMap = opened.map(.stats)!, eventsMap = opened.map(.events)!
        bpf_map__set_max_entries(flowMap, UInt32(mapEntries))
        bpf_map__set_max_entries(eventsMap, UInt32(ringBufferBytes))
        let rc = bpf_object__load(object)
        if rc != 0 {
            let log = KernelProgram.libbpfLog()
            bpf_object__close(object)
            throw KernelProgram.loadError(-rc, log: log)
        }
        programFD = bpf_program__fd(prog)
        flowMapFD = bpf_map__fd(flowMap)
        statsFD = bpf_map__fd(statsMap)
        eventsFD = bpf_map__fd(eventsMap)
        overflowFD = bpf_map__fd(opened.map(.overflow)!)
        limitsFD = bpf_map__fd(opened.map(.limits)!)
        insertsFD = bpf_map__fd(opened.map(.inserts)!)
        self.mapEntries = mapEntries
        aggregateKeys = .allocate(capacity: aggregateCapacity)
        aggregateValues = .allocate(capacity: aggregateCapacity)
        lockFlags = mode == .socket ? 0 : UInt64(BPF_F_LOCK)
        possibleCPUs = max(1, Int(libbpf_num_possible_cpus()))
        keys = .allocate(capacity: batchCapacity)
        values = .allocate(capacity: batchCapacity)
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
        var zero: UInt32 = 0
        var value = flow_limits(admit: admitLimit, flows_removed: flowsRemoved, senders_removed: sendersRemoved,
                                aggregates_removed: aggregatesRemoved)
        if bpf_map_update_elem(limitsFD, &zero, &value, UInt64(BPF_ANY)) != 0 {
            throw .readFailed("cannot write the flow map's limits: \(String(cString: strerror(errno)))")
        }
    }

    /// Entries of the flow map now: the program's inserts minus this
    /// drainer's removals, exact since only the drainer removes entries.
    func flowsInMap() throws(EBPFError) -> Int {
        var zero: UInt32 = 0
        var inserted = ff_inserts()
        guard bpf_map_lookup_elem(insertsFD, &zero, &inserted) == 0 else {
            throw .readFailed("cannot read the program's insert counts: \(String(cString: strerror(errno)))")
        }
        return inserted.flows > flowsRemoved ? Int(clamping: inserted.flows - flowsRemoved) : 0
    }

    deinit { close() }

    private var closed = false
    /// Frees the object; programs not attached elsewhere are unloaded.
    func close() {
        guard !closed else { return }
        closed = true
        if let rb = ringBuffer { ring_buffer__free(rb) }
        ringBuffer = nil
        bpf_object__close(object)
        keys.deallocate()
        values.deallocate()
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
            let base = buffer.advanced(by: cpu * slot).assumingMemoryBound(to: UInt64.self)
            for i in sums.indices { sums[i] &+= base[i] }
        }
        var c = EBPFKernelCounters()
        c.packetsSeen = sums[Int(FF_STAT_PACKETS_SEEN.rawValue)]
        c.packetsAccounted = sums[Int(FF_STAT_PACKETS_ACCOUNTED.rawValue)]
        c.notIP = sums[Int(FF_STAT_NOT_IP.rawValue)]
        c.malformed = sums[Int(FF_STAT_MALFORMED.rawValue)]
        c.ringBufferSent = sums[Int(FF_STAT_RINGBUF_SENT.rawValue)]
        c.ringBufferFailed = sums[Int(FF_STAT_RINGBUF_FAILED.rawValue)]
        c.aggregated = sums[Int(FF_STAT_AGGREGATED.rawValue)]
        c.forwardedSeen = sums[Int(FF_STAT_FORWARDED_SEEN.rawValue)]
        return c
    }

    /// Reads every map entry in batches, each value under its lock.
    func forEachFlow(_ body: (flow_key, flow_value) -> Void) throws(EBPFError) {
        let inToken = batchTokens
        let outToken = batchTokens.advanced(by: 64)
        var first = true
        while true {
            var count = UInt32(batchCapacity)
            let rc = ff_lookup_batch(flowMapFD, first ? nil : inToken, outToken, keys, values, &count, lockFlags)
            if rc != 0 && rc != -ENOENT {
                throw .readFailed("batch lookup: \(String(cString: strerror(-rc)))")
            }
            for i in 0..<Int(count) { body(keys[i], values[i]) }
            if rc == -ENOENT { return }
            inToken.copyMemory(from: outToken, byteCount: 64)
            first = false
        }
    }

    /// One entry's value now, read under its lock like the walk; `nil` when
    /// the map has no such entry.
    func readFlow(_ key: flow_key) -> flow_value? {
        var k = key
        var v = flow_value()
        return bpf_map_lookup_elem_flags(flowMapFD, &k, &v, lockFlags) == 0 ? v : nil
    }

    /// The entry's final value, removed from the map in the same step so no
    /// packet counted in between is missed. `nil` when it is already gone.
    func takeFlow(_ key: flow_key) -> flow_value? {
        var k = key
        var v = flow_value()
        guard bpf_map_lookup_and_delete_elem_flags(flowMapFD, &k, &v, lockFlags) == 0 else { return nil }
        flowsRemoved += 1
        return v
    }

    /// Reads every overflow aggregate in batches (atomically updated
    /// values: no lock to take).
    func forEachAggregate(_ body: (overflow_key, overflow_value) -> Void) throws(EBPFError) {
        let inToken = batchTokens
        let outToken = batchTokens.advanced(by: 64)
        var first = true
        while true {
            var count = UInt32(aggregateCapacity)
            let rc = ff_lookup_batch(overflowFD, first ? nil : inToken, outToken, aggregateKeys, aggregateValues, &count, 0)
            if rc != 0 && rc != -ENOENT {
                throw .readFailed("overflow batch lookup: \(String(cString: strerror(-rc)))")
            }
            for i in 0..<Int(count) { body(aggregateKeys[i], aggregateValues[i]) }
            if rc == -ENOENT { return }
            inToken.copyMemory(from: outToken, byteCount: 64)
            first = false
        }
    }

    /// An aggregate's final value, removed in the same step. `nil` when gone.
    func takeAggregate(_ key: overflow_key) -> overflow_value? {
        var k = key
        var v = overflow_value()
        guard bpf_map_lookup_and_delete_elem(overflowFD, &k, &v) == 0 else { return nil }
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
