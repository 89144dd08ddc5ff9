import Testing
@testable import FlowForestDetection

/// The tracker's per-entity lists hold their first element inline: checked
/// against `Array` under seeded random appends, inserts, changes and
/// removals, the operations the tracker uses.
@Suite("Inline-first arrays")
struct InlineFirstArrayTests {
    @Test("every operation matches Array's", arguments: [1, 2, 3])
    func matchesArray(seed: UInt64) {
        var rng = SeededGenerator(seed: seed)
        var list = InlineFirstArray<Int>(), model: [Int] = []
        for step in 0..<20_000 {
            let value = Int.random(in: 0..<50, using: &rng)
            switch Int.random(in: 0..<8, using: &rng) {
            case 0, 1:
                list.append(value)
                model.append(value)
            case 2:
                let i = Int.random(in: 0...model.count, using: &rng)
                list.insert(value, at: i)
                model.insert(value, at: i)
            case 3 where !model.isEmpty:
                let i = Int.random(in: 0..<model.count, using: &rng)
                list[i] += value
                model[i] += value
            case 4:
                let k = Int.random(in: 0...model.count + 1, using: &rng)
                list.removeFirst(k)
                model.removeFirst(min(k, model.count))
            case 5:
                list.removeAll { $0 % 7 == value % 7 }
                model.removeAll { $0 % 7 == value % 7 }
            case 6 where model.count > 12:
                list.removeAll(keepingCapacity: value % 2 == 0)
                model.removeAll()
            default:
                break
            }
            #expect(Array(list) == model, "step \(step)")
            #expect(list.count == model.count && list.last == model.last && list.first == model.first, "step \(step)")
            if Array(list) != model { return }
        }
    }

    @Test("an emptied list equals a new one, whatever it held")
    func emptiedEqualsNew() {
        var list = InlineFirstArray([1, 2, 3])
        list.removeAll { _ in true }
        #expect(list == InlineFirstArray<Int>())
        list = InlineFirstArray([4, 5])
        list.removeFirst(2)
        #expect(list == InlineFirstArray<Int>() && list.isEmpty)
    }
}
