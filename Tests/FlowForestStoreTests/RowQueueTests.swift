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
}
