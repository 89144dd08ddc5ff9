import FlowForestCore
import Testing
@testable import FlowForestDetection

/// The host tracker's tables hold entries densely and move the last one
/// into a removed entry's slot: checked against a `Dictionary` under seeded
/// random inserts, in-place changes, removals and sweeps.
@Suite("Tracker tables")
struct TrackerTableTests {
    /// An entry holding an array, as the tracker's statistics do.
    struct Entry: Equatable {
        var counters: [Double]
        var updates = 0
    }

    @Test("every entry is found under its key through inserts, in-place changes, removals and sweeps")
    func matchesADictionary() {
        var table = TrackerTable<IPAddress, Entry>()
        var model: [IPAddress: Entry] = [:]
        var random = SeededGenerator(seed: 14)
        // 12,000 addresses: lookups hit and removals happen often, and the
        // table spans several 4,096-entry chunks, gaining and freeing them.
        func address() -> IPAddress { IPAddress(ipv4: 0xC612_0000 | UInt32.random(in: 0..<12_000, using: &random)) }
        for step in 0..<120_000 {
            let key = address()
            switch Int.random(in: 0..<10, using: &random) {
            case 0..<5:
                if let slot = table.slot(of: key) {
                    table[slot].updates += 1
                    table[slot].counters[0] += 1
                    model[key]!.updates += 1
                    model[key]!.counters[0] += 1
                } else {
                    let slot = table.insert(Entry(counters: [Double(step), 0]), for: key)
                    #expect(table.key(at: slot) == key)
                    model[key] = Entry(counters: [Double(step), 0])
                }
            case 5..<8:
                if let slot = table.slot(of: key) {
                    table.remove(at: slot)
                    model[key] = nil
                }
            case 8:
                #expect(table[key: key] == model[key])
            default:
                if step % 97 == 0 {
                    table.removeAll { _, entry in entry.updates % 3 == 1 }
                    model = model.filter { $0.value.updates % 3 != 1 }
                }
            }
        }
        #expect(table.count == model.count)
        for slot in table.slots { #expect(model[table.key(at: slot)] == table[slot]) }
        for (key, entry) in model { #expect(table[key: key] == entry) }
    }

    @Test("an entry changed in place is not copied: its array stays the one it was stored with")
    func changesInPlace() {
        var table = TrackerTable<IPAddress, Entry>()
        let key = IPAddress(ipv4: 0xC612_0001)
        let slot = table.insert(Entry(counters: [0, 0, 0]), for: key)
        let stored = table[slot].counters.withUnsafeBufferPointer { UInt(bitPattern: $0.baseAddress) }
        // After each change: a copy and a freed original can alternate between
        // two buffers, so the address after an even number of changes proves nothing.
        for change in 1...3 {
            table[slot].counters[1] += 1
            let now = table[slot].counters.withUnsafeBufferPointer { UInt(bitPattern: $0.baseAddress) }
            #expect(now == stored, "change \(change) through the table copied the entry's counters")
        }
        #expect(table[slot].counters == [0, 3, 0])
    }
}
