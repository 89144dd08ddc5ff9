/// A first-in, first-out queue of rows waiting for the database.
///
/// The writer takes a batch off the front after every write; removing the
/// front of an `Array` moves everything behind it, which made draining a
/// queue of 200,000 flow records quadratic. Here taking a batch advances an
/// index, and the storage is compacted only once most of it is taken.
struct RowQueue<Element> {
    private var elements: [Element] = []
    private var head = 0

    var count: Int { elements.count - head }
    var isEmpty: Bool { count == 0 }

    mutating func append(contentsOf rows: some Sequence<Element>) { elements.append(contentsOf: rows) }

    /// The first `n` rows (fewer when fewer are queued), still queued.
    func prefix(_ n: Int) -> ArraySlice<Element> { elements[head..<head + min(n, count)] }

    /// Takes the first `n` rows off the queue.
    mutating func removeFirst(_ n: Int) {
        precondition(n <= count, "removing \(n) of \(count) queued rows")
        head += n
        if head == elements.count {
            elements.removeAll(keepingCapacity: true)
            head = 0
        } else if head >= 4096, head * 2 >= elements.count {
            elements.removeFirst(head)
            head = 0
        }
    }
}
