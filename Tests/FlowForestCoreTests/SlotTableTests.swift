@testable import FlowForestCore
import FlowForestTestSupport
import Testing

/// The flow tables' storage: a ``ChunkedArray`` of slots found through a
/// ``SlotIndex``, checked against a `Dictionary` under seeded random
/// inserts, lookups and removals (removals fill the hole with the last slot,
/// as the tracker and the ledger do).
@Suite("Slot index and chunked array")
struct SlotTableTests {
    /// Keys in slots, found through the index; hashes deliberately collide
    /// (a few dozen distinct values) so probe chains are long and removals shift.
    struct Table {
        var slots = ChunkedArray<UInt64>()
        var index = SlotIndex()

        static func hash(_ key: UInt64) -> Int { Int(key % 37) &* 0x9E37_79B9 }

        func position(of key: UInt64) -> Int? {
            index.find(hash: Self.hash(key)) { slots[$0] == key }
        }

        mutating func insert(_ key: UInt64) {
            do {
                let slots = self.slots
                index.insert(slot: slots.count, hash: Self.hash(key)) { Self.hash(slots[$0]) }
            }
            slots.append(key)
        }

        mutating func remove(_ key: UInt64) {
            guard let p = position(of: key) else { return }
            do {
                let slots = self.slots
                index.remove(slot: p, hash: Self.hash(key)) { Self.hash(slots[$0]) }
            }
            let last = slots.count - 1
            if slots.removeBySwappingLast(at: p) { index.move(from: last, to: p, hash: Self.hash(slots[p])) }
        }
    }

    @Test("every key is found at its slot after random inserts and removals")
    func againstDictionary() {
        let seed = FuzzSeed.current()
        var g = seed.generator()
        var table = Table()
        var truth: Set<UInt64> = []
        for step in 0..<FuzzSeed.iterations(20_000) {
            let key = UInt64.random(in: 0..<3_000, using: &g)
            if truth.contains(key) && Bool.random(using: &g) {
                table.remove(key)
                truth.remove(key)
            } else if !truth.contains(key) {
                table.insert(key)
                truth.insert(key)
            }
            if step % 997 == 0 || step < 200 {
                #expect(table.slots.count == truth.count && table.index.count == truth.count, "\(seed), step \(step)")
                for k in truth { #expect(table.position(of: k).map { table.slots[$0] } == k, "\(seed), step \(step), key \(k)") }
                #expect(table.position(of: 3_001) == nil, "\(seed)")
            }
        }
        for k in truth { table.remove(k) }
        #expect(table.slots.isEmpty && table.index.count == 0, "\(seed)")
    }

    @Test("a ledger slot, with its codes and times, is no larger than a bare record (docs/operations.md, Memory)")
    func ledgerSlotSize() {
        #expect(MemoryLayout<LedgerSlot>.stride == 296)
        #expect(MemoryLayout<LedgerSlot>.stride <= MemoryLayout<FlowRecord>.stride)
    }

    @Test("a chunked array past several chunks keeps every element and frees chunks as it shrinks")
    func chunks() {
        var a = ChunkedArray<Int>()
        for i in 0..<10_000 { a.append(i) }
        #expect(a.count == 10_000 && a[0] == 0 && a[4096] == 4096 && a[9_999] == 9_999)
        #expect(a.removeBySwappingLast(at: 5) && a[5] == 9_999 && a.count == 9_999)
        while !a.isEmpty { a.removeBySwappingLast(at: 0) }
        a.append(7)
        #expect(a.count == 1 && a[0] == 7)
    }
}
