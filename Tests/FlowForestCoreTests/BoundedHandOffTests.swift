import FlowForestCore
import Synchronization
import Testing

/// A stage that passes batches on (the flow printer and exporters, the
/// merge of capture and collection) holds its source back while its
/// consumer is busy, instead of queueing what the source produces.
@Suite("Bounded hand-off between stages")
struct BoundedHandOffTests {
    /// Ten elements through a stream of `buffer` to a consumer that takes
    /// 30 ms over each: what it received, and how many elements the
    /// producer had handed over beyond those at most.
    static func slowConsumer(buffer: Int) async throws -> (received: [Int], mostAhead: Int) {
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: Int.self, bufferingPolicy: .bufferingOldest(buffer))
        let produced = Atomic<Int>(0)
        let producer = Task {
            for i in 0..<10 {
                guard await continuation.yieldWhenRoom(i) else { return }
                produced.store(i + 1, ordering: .sequentiallyConsistent)
            }
            continuation.finish()
        }
        var received: [Int] = []
        var mostAhead = 0
        for try await value in stream {
            received.append(value)
            try await Task.sleep(for: .milliseconds(30))
            mostAhead = max(mostAhead, produced.load(ordering: .sequentiallyConsistent) - received.count)
        }
        await producer.value
        return (received, mostAhead)
    }

    @Test("a producer stays at most one element ahead of a slow consumer, and nothing is lost", .timeLimit(.minutes(1)))
    func producerWaits() async throws {
        let (received, mostAhead) = try await Self.slowConsumer(buffer: 1)
        #expect(received == Array(0..<10))
        // Taken: the latest; buffered: at most one more; the producer waits on the next.
        #expect(mostAhead <= 2, "the producer ran \(mostAhead) elements ahead")
    }

    @Test("with no buffer a producer hands each element over only when the consumer asks, and nothing is lost",
          .timeLimit(.minutes(1)))
    func rendezvous() async throws {
        let (received, mostAhead) = try await Self.slowConsumer(buffer: 0)
        #expect(received == Array(0..<10))
        // Taken: the latest; the producer waits with the next one, none is buffered.
        #expect(mostAhead == 0, "the producer ran \(mostAhead) elements ahead")
    }

    @Test("a producer stops waiting when the consumer goes away", .timeLimit(.minutes(1)))
    func consumerGone() async {
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: Int.self, bufferingPolicy: .bufferingOldest(1))
        #expect(await continuation.yieldWhenRoom(1))
        let waiting = Task { await continuation.yieldWhenRoom(2) }
        _ = stream  // never read
        continuation.finish()
        #expect(await waiting.value == false)
    }
}
