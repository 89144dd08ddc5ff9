internal import CFlowForestBPF
internal import CLibbpf
import Foundation

/// Where the eBPF object comes from.
enum KernelObjectSource: Sendable, Equatable {
    /// `flowforest.bpf.o` as compiled into this binary (`make bpf`).
    case embedded
    /// An object file given with `--bpf-object`.
    case file(String)

    /// The embedded object unless `path` is given; a given path must be readable.
    static func resolve(_ path: String?) throws(EBPFError) -> KernelObjectSource {
        guard let path else { return .embedded }
        guard FileManager.default.isReadableFile(atPath: path) else {
            throw .objectNotFound("\(path) does not exist or is not readable; build it with `make bpf`, or leave out --bpf-object to use the embedded one")
        }
        return .file(path)
    }

    var description: String {
        switch self {
        case .embedded: "embedded"
        case .file(let path): path
        }
    }
}

/// The programs in `flowforest.bpf.o`: one entry point per attach mode.
enum KernelProgramName: String, CaseIterable, Sendable {
    case tc = "ff_tc"
    case xdp = "ff_xdp"
    case socket = "ff_socket"
    /// Returns at once: the benchmark's measure of the tc hook's own cost.
    case tcFloor = "ff_tc_floor"

    init(_ mode: EBPFAttachMode) {
        switch mode {
        case .tc: self = .tc
        case .xdp: self = .xdp
        case .socket: self = .socket
        }
    }
}

/// The maps in `flowforest.bpf.o` (each map's key and value are described
/// where it is declared, in `bpf/flowforest.bpf.c`).
enum KernelMapName: String, CaseIterable, Sendable {
    /// The flow table's index: a flow's key to its slot (--map-size entries).
    case flows
    /// The same index with FF_SMALL_INDEX_ENTRIES entries, used while the table holds few flows.
    case flowsSmall = "flows_small"
    /// The flows' figures, one slot each, mmapped by the drainer.
    case flowSlots = "flow_slots"
    /// Slots the drainer freed, for the program to take again.
    case freeSlots = "free_slots"
    /// Where tc and XDP last found flows' slots, checked before the index.
    case hints
    /// Packets whose flow could not be inserted (ring buffer).
    case events
    /// Per-CPU packet counters.
    case stats
    /// Packets not admitted as flows, folded per endpoint, port, protocol and class.
    case overflow
    /// The interfaces this sensor watches (a forwarded packet is counted once).
    case watched
    /// The flow map's admission limit, what the drainer removed and which index is in use (written by user space).
    case limits
    /// What the program inserted (written by the program).
    case inserts
    /// A map-in-map whose update waits for every program run in flight.
    case grace
    /// The inner map written into `grace`.
    case graceInner = "grace_inner"

    /// The maps sized by `--map-size`: the table's index and its slots.
    static let sizedByMapSize: [KernelMapName] = [.flows, .flowSlots, .freeSlots]
}

/// An opened, not yet loaded libbpf object, reached through the typed names
/// above. Opening checks that every known program and map is there, so an
/// object from another version fails here with a message, not later.
struct OpenedKernelObject {
    let object: OpaquePointer

    init(_ source: KernelObjectSource) throws(EBPFError) {
        let opened: OpaquePointer?
        switch source {
        case .embedded:
            var size = 0
            let bytes = ff_bpf_object(&size)
            // The name prefixes the maps libbpf creates for global data.
            opened = "flowforest".withCString { name in
                var options = bpf_object_open_opts()
                options.sz = MemoryLayout<bpf_object_open_opts>.size
                options.object_name = name
                return bpf_object__open_mem(bytes, size, &options)
            }
        case .file(let path):
            opened = bpf_object__open_file(path, nil)
        }
        guard let opened else {
            let err = errno
            throw .loadFailed("cannot open the \(source.description) eBPF object: \(String(cString: strerror(err)))\(KernelProgram.libbpfLog())")
        }
        object = opened
        let missing = KernelProgramName.allCases.filter { program($0) == nil }.map(\.rawValue)
            + KernelMapName.allCases.filter { map($0) == nil }.map(\.rawValue)
        guard missing.isEmpty else {
            bpf_object__close(opened)
            throw .loadFailed("the \(source.description) eBPF object lacks \(missing.joined(separator: ", ")); rebuild it with `make bpf`")
        }
    }

    /// Frees an object that was never loaded (a loaded one belongs to ``KernelProgram``).
    func close() { bpf_object__close(object) }

    func program(_ name: KernelProgramName) -> OpaquePointer? {
        bpf_object__find_program_by_name(object, name.rawValue)
    }

    func map(_ name: KernelMapName) -> OpaquePointer? {
        bpf_object__find_map_by_name(object, name.rawValue)
    }
}
