import Testing
@testable import FlowForestDetection

/// A distinct-count set holds its first item inline and the rest in a
/// table; either way it must answer as one set.
@Suite("Distinct-count sets")
struct DistinctSetTests {
    @Test("items are found, refreshed, counted and forgotten by age wherever they are held")
    func behavesAsOneSet() {
        var set = DistinctSet()
        #expect(set.count == 0 && set[7] == nil)
        set[7] = 100
        #expect(set.count == 1 && set[7] == 100)
        set[7] = 150
        #expect(set.count == 1 && set[7] == 150, "a repeat refreshes, it is not a second item")
        for item in 8..<20 { set[UInt64(item)] = 200 + UInt64(item) }
        #expect(set.count == 13 && set[12] == 212 && set[7] == 150)
        // The inline item ages out first; later items keep their times.
        set.forget(seenBefore: 160)
        #expect(set.count == 12 && set[7] == nil && set[19] == 219)
        // A new item takes the free inline place; one held in the table stays there.
        set[50] = 300
        set[12] = 301
        #expect(set.count == 13 && set[50] == 300 && set[12] == 301)
        set.forget(seenBefore: 1000)
        #expect(set.count == 0 && set[50] == nil && set[12] == nil)
    }

    @Test("the three sets of an entity are independent")
    func threeSets() {
        var sets = DistinctSets()
        sets[0][1] = 10
        sets[1][1] = 20
        sets[2][2] = 30
        #expect(sets[0][1] == 10 && sets[1][1] == 20 && sets[2][1] == nil && sets[2][2] == 30)
        sets.forget(seenBefore: 15)
        #expect(sets[0].count == 0 && sets[1].count == 1 && sets[2].count == 1)
    }
}
