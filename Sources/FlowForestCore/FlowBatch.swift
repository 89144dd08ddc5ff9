/// When a source reports a flow's packets: what says over which span a
/// record's new traffic passed.
public enum FlowReporting: Sendable, Hashable {
    /// Within a poll of their passing (live capture, capture files): a
    /// record's new packets passed since the source's previous poll.
    case asSeen
    /// When someone else reports them (an exporter after its timeouts, an
    /// ingest agent after filling its buffer): a record's new packets passed
    /// at any time after the flow's previous last packet.
    case delayed
}

/// What a capture source emits once per poll: flow records that changed,
/// reached their active timeout, or ended, plus cumulative statistics.
public struct FlowBatch: Sendable {
    /// The source's clock at the end of the poll, ns since the epoch (packet
    /// time when reading a file).
    public var timeNs: UInt64
    public var records: [FlowRecord]
    public var statistics: CaptureStatistics
    /// Flows open at the end of the poll.
    public var activeFlows: Int
    /// Share of the input read, 0...1, when the source is a file.
    public var progress: Double?
    /// How long reading the capture state took, for sources that poll it
    /// (the eBPF drainer reading the kernel map).
    public var pollDurationNs: UInt64?
    /// Overflow aggregates that changed in this poll (eBPF only): packets
    /// the data plane folded instead of admitting them as flows.
    public var aggregates: [FlowAggregate]
    /// Entries of the kernel flow map at the end of the poll (eBPF only):
    /// fewer than ``activeFlows`` when flows came through the ring buffer.
    public var mapEntries: Int?
    /// When the source reports packets: within a poll, or delayed.
    public var reporting: FlowReporting

    public init(timeNs: UInt64, records: [FlowRecord], statistics: CaptureStatistics, activeFlows: Int,
                progress: Double? = nil, pollDurationNs: UInt64? = nil, aggregates: [FlowAggregate] = [],
                reporting: FlowReporting = .asSeen) {
        self.aggregates = aggregates
        self.reporting = reporting
        self.timeNs = timeNs
        self.records = records
        self.statistics = statistics
        self.activeFlows = activeFlows
        self.progress = progress
        self.pollDurationNs = pollDurationNs
    }
}

/// A source of flow batches: a live interface (libpcap or eBPF), a capture
/// file, or remote ingest.
public protocol FlowSource: Sendable {
    /// A short name for logs and metrics (`pcap`, `tc`, `xdp`, `socket`, `file`).
    var mode: String { get }
    /// Starts the capture and yields one batch per poll until the input ends
    /// or ``stop()`` is called; the last batch carries every open flow as
    /// ended. Errors (no such interface, truncated file, ...) end the stream.
    /// If the consumer goes away instead, the source detaches without a
    /// final batch. Call once per source.
    func batches() -> AsyncThrowingStream<FlowBatch, any Error>

    /// Asks the capture to finish: it detaches, flushes open flows into a
    /// final batch and ends the stream. Safe to call from any thread (a
    /// signal handler's task included) and more than once.
    func stop()
}

extension AsyncThrowingStream.Continuation where Failure == any Error, Element: Sendable {
    /// Yields into a stream made with `.bufferingOldest(n)`, waiting while
    /// it is full (with n = 0, until the consumer asks for an element): a stage that passes batches on pulls the next one only
    /// when its consumer has room, so a slow pipeline holds its capture
    /// back (which then counts in the kernel or folds) instead of queueing
    /// every batch. Returns false when the stream has ended.
    public func yieldWhenRoom(_ element: Element) async -> Bool {
        var pending = element
        while true {
            switch offer(pending) { case .full(let back): pending = back; case .done(let taken): return taken }
            guard (try? await Task.sleep(for: .milliseconds(5))) != nil else { return false }
        }
    }

    /// The same for a source's own thread: while the stream is full it
    /// calls `waiting`, which does the thread's work meanwhile (reading a
    /// ring buffer or a socket for a few milliseconds) and returns false to
    /// give up. Returns false when the stream has ended or `waiting` gave up.
    public func yieldWhenRoom(_ element: Element, waiting: () -> Bool) -> Bool {
        var pending = element
        while true {
            switch offer(pending) { case .full(let back): pending = back; case .done(let taken): return taken }
            guard waiting() else { return false }
        }
    }

    /// What one yield did: done (taken, or not when the stream has ended),
    /// or the buffer was full and the element comes back.
    private enum Offer { case done(Bool), full(Element) }

    private func offer(_ element: Element) -> Offer {
        switch yield(element) {
        case .enqueued: return .done(true)
        case .terminated: return .done(false)
        case .dropped(let back): return .full(back)
        @unknown default: return .done(true)
        }
    }
}
