import FlowForestCore
import Foundation

/// A serial executor with a thread of its own: the ``Pipeline`` actor runs
/// there, not on Swift's cooperative pool.
///
/// The cooperative pool has one thread per core. A poll of a busy network
/// keeps the pipeline scoring for hundreds of milliseconds without a
/// suspension point; on the pool that holds one of two threads (on a 2-core
/// host) and, with the store's work on the other, `/api/health` and the
/// dashboard waited for the batch to end. On a thread of its own the
/// pipeline shares the cores through the kernel's scheduler, which gives the
/// HTTP server's threads their turn within milliseconds.
///
/// The thread ends once the executor is gone (the pipeline released).
public final class PipelineThread: SerialExecutor, @unchecked Sendable {
    /// The queue the thread drains; shared with the thread, so the thread
    /// holds no reference to the executor and can see it go.
    private final class Queue: @unchecked Sendable {
        let condition = NSCondition()
        var jobs: [UnownedJob] = []
        var stopped = false
        /// The executor, unowned: a job waiting here keeps its actor, and so
        /// the executor, alive until it has run.
        var executor: UnownedSerialExecutor?
    }

    private let queue = Queue()

    /// Starts the thread, named `name` in `ps` and `top` (the kernel keeps 15 bytes).
    public init(name: String = "ff-pipeline") {
        let queue = self.queue
        queue.executor = UnownedSerialExecutor(ordinary: self)
        let thread = Thread {
            nameCurrentThread(name)
            Self.drain(queue)
        }
        thread.start()
    }

    deinit {
        queue.condition.lock()
        queue.stopped = true
        queue.condition.signal()
        queue.condition.unlock()
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        queue.condition.lock()
        queue.jobs.append(job)
        queue.condition.signal()
        queue.condition.unlock()
    }

    public func asUnownedSerialExecutor() -> UnownedSerialExecutor {
        UnownedSerialExecutor(ordinary: self)
    }

    /// Runs jobs in the order they came until the executor is gone and no job is left.
    private static func drain(_ queue: Queue) {
        while true {
            queue.condition.lock()
            while queue.jobs.isEmpty && !queue.stopped { queue.condition.wait() }
            let jobs = queue.jobs
            queue.jobs.removeAll(keepingCapacity: true)
            let stop = queue.stopped && jobs.isEmpty
            queue.condition.unlock()
            if stop { return }
            for job in jobs { job.runSynchronously(on: queue.executor!) }
        }
    }
}
