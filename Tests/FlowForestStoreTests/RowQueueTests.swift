import Testing
@testable import FlowForestStore

/// The store writer's queue: rows come out in the order they went in, with
/// the label of the array they came in, however batches cut across those
/// arrays.
@Suite("Store row queue")
struct RowQueueTests {
    @Test("rows leave in order with their segment's label, batches cutting across segments")
    func orderAndLabels() {
        var queue = RowQueue<Int>()
        var model: [(Int, String)] = []
        var next = 0
        // Segments of 0...40 rows and batches of 1...60 rows, interleaved.
        for round in 0..<400 {
            let size = (round * 7919) % 41
            let rows = Array(next..<next + size)
            next += size
            queue.append(contentsOf: rows, label: "s\(round % 3)")
            model += rows.map { ($0, "s\(round % 3)") }
            if round % 2 == 1 {
                let n = min((round * 104_729) % 60 + 1, queue.count)
                let batch = queue.prefix(n) { row, label in (row, label) }
                #expect(batch.map(\.0) == model.prefix(n).map(\.0))
                #expect(batch.map(\.1) == model.prefix(n).map(\.1))
                queue.removeFirst(n)
                model.removeFirst(n)
            }
            #expect(queue.count == model.count)
        }
        let rest = queue.prefix(queue.count)
        #expect(rest == model.map(\.0))
        queue.removeFirst(queue.count)
        #expect(queue.isEmpty && queue.prefix(10).isEmpty)
    }

    @Test("a queue that is never empty stays in order as taken segments are compacted away")
    func neverEmpty() {
        var queue = RowQueue<Int>()
        var next = 0, expected = 0
        // Two-row segments, one taken per round behind a backlog of about ten:
        // thousands of segments pass through without the queue running dry.
        for round in 0..<5_000 {
            queue.append(contentsOf: [next, next + 1], label: "s")
            next += 2
            guard round >= 10 else { continue }
            let batch = queue.prefix(2)
            #expect(batch == [expected, expected + 1])
            expected += 2
            queue.removeFirst(2)
            #expect(queue.count == next - expected)
        }
        #expect(queue.prefix(queue.count) == Array(expected..<next))
    }
}
