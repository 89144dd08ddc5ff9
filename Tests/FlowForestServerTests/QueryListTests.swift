@testable import FlowForestServer
import Testing

/// A list parameter (`severity=low,low,…`) becomes a query with each value
/// once, however often it repeats: the store's query never grows with it.
@Suite("Query lists")
struct QueryListTests {
    @Test("each value once, in its first order")
    func distinct() {
        #expect(API.distinct([3, 1, 3, 2, 1, 3]) == [3, 1, 2])
        #expect(API.distinct(Array(repeating: "critical", count: 40_000)) == ["critical"])
        #expect(API.distinct([Int]()) == [])
    }
}
