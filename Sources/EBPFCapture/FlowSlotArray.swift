internal import CLibbpf
import Foundation

/// The kernel's `flow_slots` array mapped into this process: every flow's
/// figures, read in place (see `struct flow_slot` in `bpf/flow_types.h`).
///
/// Mapped in chunks as the slots in use reach them, so the daemon maps (and
/// its resident size counts) only the part of the table that has held
/// flows, not the whole `--map-size`.
struct FlowSlotArray {
    /// Slots per mapping: a multiple of 512, the fewest 280-byte slots that
    /// fill whole pages, so every chunk starts on a page.
    static let slotsPerChunk = 512 * 32
    static let slotBytes = MemoryLayout<flow_slot>.stride

    private let fd: Int32
    let capacity: Int
    /// Page-rounded size of the kernel's array: no mapping may pass it.
    private let arrayBytes: Int
    private var chunks: [UnsafeMutableRawPointer] = []

    init(fd: Int32, capacity: Int) {
        self.fd = fd
        self.capacity = capacity
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        arrayBytes = (capacity * Self.slotBytes + page - 1) / page * page
    }

    /// Maps every chunk that holds a slot below `count`.
    mutating func map(upTo count: Int) throws(EBPFError) {
        let needed = (min(count, capacity) + Self.slotsPerChunk - 1) / Self.slotsPerChunk
        while chunks.count < needed {
            let offset = chunks.count * Self.slotsPerChunk * Self.slotBytes
            let length = min(Self.slotsPerChunk * Self.slotBytes, arrayBytes - offset)
            let p = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, off_t(offset))
            guard let p, p != MAP_FAILED else {
                throw .readFailed("cannot map the flow slots: \(String(cString: strerror(errno)))")
            }
            // Memory from mmap is bound to no type: bind it once, as the slots it holds.
            p.bindMemory(to: flow_slot.self, capacity: length / Self.slotBytes)
            chunks.append(p)
        }
    }

    /// Slots mapped so far.
    var mapped: Int { min(chunks.count * Self.slotsPerChunk, capacity) }

    /// Slot `n`, which must be mapped.
    func slot(_ n: Int) -> UnsafeMutablePointer<flow_slot> {
        let (chunk, index) = n.quotientAndRemainder(dividingBy: Self.slotsPerChunk)
        return chunks[chunk].advanced(by: index * Self.slotBytes).assumingMemoryBound(to: flow_slot.self)
    }

    mutating func unmap() {
        for (i, p) in chunks.enumerated() {
            let offset = i * Self.slotsPerChunk * Self.slotBytes
            munmap(p, min(Self.slotsPerChunk * Self.slotBytes, arrayBytes - offset))
        }
        chunks.removeAll()
    }
}
