import Synchronization

/// The recent `stats` samples, oldest first, in a ring of fixed capacity
/// (an hour at one sample a second by default): `GET /api/stats/history`
/// serves it so a dashboard opened now draws the last hour at once.
///
/// The event hub's clock loop is its one writer; requests only read.
final class StatsHistory: Sendable {
    private struct Ring {
        var samples: [LiveStats] = []
        /// Where the next sample goes once the ring is full.
        var next = 0
    }

    /// Samples held at most.
    let capacity: Int
    private let ring = Mutex(Ring())

    /// - Parameter capacity: samples kept; at least 1.
    init(capacity: Int) {
        self.capacity = max(1, capacity)
    }

    /// Adds a sample; when full, the oldest gives way.
    func append(_ sample: LiveStats) {
        ring.withLock { r in
            if r.samples.count < capacity {
                r.samples.append(sample)
            } else {
                r.samples[r.next] = sample
                r.next = (r.next + 1) % capacity
            }
        }
    }

    /// Every sample held, oldest first.
    var samples: [LiveStats] {
        ring.withLock { r in Array(r.samples[r.next...] + r.samples[..<r.next]) }
    }
}
