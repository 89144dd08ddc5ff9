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

    /// The most keys of `keys` that share one of `buckets` buckets under `hasher`.
    static func fullestBucket(_ keys: [some TrackerKey], _ hasher: TableHasher, buckets: Int) -> Int {
        var load = [Int](repeating: 0, count: buckets)
        for key in keys { load[key.hash(with: hasher) & (buckets - 1)] += 1 }
        return load.max()!
    }

    @Test("the keyed hash spreads the neighbouring addresses a flood forges, and each table draws its own keys")
    func spreadsForgedAddresses() {
        // 65,536 keys into as many buckets: random placement fills the fullest
        // bucket with about 8 (balls into bins). A /16 of IPv4 sources; IPv4
        // addresses that share their low 16 bits; IPv6 /64s that differ only
        // in their network half.
        let v4 = (0..<65_536).map { IPAddress(ipv4: 0xC613_0000 | UInt32($0)) }
        let strided = (0..<65_536).map { IPAddress(ipv4: UInt32($0) << 16 | 1) }
        let v6 = (0..<65_536).map { IPAddress(high: 0x2001_0db8_0000_0000 | UInt64($0) << 16, low: 1) }
        let pairs = (0..<65_536).map { i in
            BeaconScore.PairKey(source: IPAddress(ipv4: 0xC613_0000 | UInt32(i >> 4)), service: .init(
                destination: IPAddress(ipv4: 0xC612_0001), port: UInt16(1000 + i & 15), ipProtocol: 6))
        }
        let hasher = TableHasher()
        #expect(Self.fullestBucket(v4, hasher, buckets: 65_536) <= 16)
        #expect(Self.fullestBucket(strided, hasher, buckets: 65_536) <= 16)
        #expect(Self.fullestBucket(v6, hasher, buckets: 65_536) <= 16)
        #expect(Self.fullestBucket(pairs, hasher, buckets: 65_536) <= 16)
        let other = TableHasher()
        #expect(v4.prefix(64).filter { $0.hash(with: hasher) == $0.hash(with: other) }.count == 0)
    }
}
