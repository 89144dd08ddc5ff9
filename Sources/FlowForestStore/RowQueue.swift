/// A first-in, first-out queue of rows waiting for the database, held as
/// the arrays they were queued in.
///
/// A poll's flow records are queued as the pipeline's own array, shared
/// rather than copied, and freed once its last row is written: a poll that
/// ends a hundred thousand flows at once (a flood's flows timing out
/// together) costs its records once, not once more for the queue, and the
/// queue keeps no buffer sized for its largest backlog. Taking a batch
/// off the front advances an offset, so draining a long queue stays linear.
///
/// Each segment carries a label its rows share (the sensor of a poll's
/// flows), so a row needs no copy of it.
struct RowQueue<Element> {
    private var segments: [(rows: [Element], label: String)] = []
    /// Index of the first segment not yet taken, and rows of it already taken.
    private var headSegment = 0
    private var offset = 0
    /// Rows queued.
    private(set) var count = 0

    var isEmpty: Bool { count == 0 }

    /// Queues `rows` as they are (the array is shared, not copied).
    mutating func append(contentsOf rows: [Element], label: String = "") {
        guard !rows.isEmpty else { return }
        segments.append((rows, label))
        count += rows.count
    }

    /// The first `n` rows (fewer when fewer are queued), still queued, each
    /// made with its segment's label.
    func prefix<T>(_ n: Int, _ make: (Element, String) -> T) -> [T] {
        var out: [T] = []
        out.reserveCapacity(min(n, count))
        var s = headSegment, start = offset
        while out.count < n && s < segments.count {
            let segment = segments[s]
            let end = min(segment.rows.count, start + n - out.count)
            for row in segment.rows[start..<end] { out.append(make(row, segment.label)) }
            s += 1
            start = 0
        }
        return out
    }

    /// The first `n` rows (fewer when fewer are queued), still queued.
    func prefix(_ n: Int) -> [Element] { prefix(n) { row, _ in row } }

    /// Takes the first `n` rows off the queue.
    mutating func removeFirst(_ n: Int) {
        precondition(n <= count, "removing \(n) of \(count) queued rows")
        count -= n
        var left = n
        while left > 0 {
            let inHead = segments[headSegment].rows.count - offset
            if left < inHead {
                offset += left
                return
            }
            left -= inHead
            // A written segment's rows are freed now, not when the queue compacts.
            segments[headSegment].rows = []
            headSegment += 1
            offset = 0
        }
        if headSegment == segments.count {
            segments.removeAll()
            headSegment = 0
        } else if headSegment >= 1024, headSegment * 2 >= segments.count {
            segments.removeFirst(headSegment)
            headSegment = 0
        }
    }
}
