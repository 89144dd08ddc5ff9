import FlowForestCore
import Foundation
import Synchronization

/// A flag the capture thread polls; set by `stop()` or when the consumer goes away.
final class StopFlag: Sendable {
    private let flag = Atomic<Bool>(false)
    func set() { flag.store(true, ordering: .releasing) }
    var isSet: Bool { flag.load(ordering: .acquiring) }
}

/// The per-packet work shared by file and live capture: parse, account,
/// and cut batches at poll boundaries. Lives on the capture thread only.
struct CaptureLoop {
    /// Batches the stream holds for a consumer that is behind. Past them the
    /// capture thread waits: a file is read no faster than the pipeline
    /// takes it (memory stays flat however large the file), and a live
    /// capture leaves packets in the kernel's buffer, whose drops are counted.
    /// It waits through a stop too, so the last batch, every open flow, is
    /// delivered; only a consumer that has gone (the stream terminated) ends
    /// the wait.
    static let bufferedBatches = 4

    var table: FlowTable
    let pollIntervalNs: UInt64
    let continuation: AsyncThrowingStream<FlowBatch, any Error>.Continuation
    var nextTickNs: UInt64 = 0
    var lastTimeNs: UInt64 = 0
    var interfaceNames: [UInt32: InterfaceName] = [:]

    init(configuration: FlowTableConfiguration, pollIntervalNs: UInt64, continuation: AsyncThrowingStream<FlowBatch, any Error>.Continuation) {
        self.table = FlowTable(configuration: configuration)
        self.pollIntervalNs = pollIntervalNs
        self.continuation = continuation
    }

    /// A stream of ``bufferedBatches`` for a capture thread to feed.
    static func makeStream() -> (AsyncThrowingStream<FlowBatch, any Error>, AsyncThrowingStream<FlowBatch, any Error>.Continuation) {
        AsyncThrowingStream<FlowBatch, any Error>.makeStream(bufferingPolicy: .bufferingOldest(bufferedBatches))
    }

    /// Parses and accounts one frame.
    @inline(__always)
    mutating func handle(_ frame: UnsafeRawBufferPointer, wireLength: Int, timestampNs: UInt64, parser: PacketParser) {
        switch parser.parse(frame, wireLength: wireLength, timestampNs: timestampNs) {
        case .packet(let packet): table.add(packet)
        case .unparsed(.notIP): table.countNotIP()
        case .unparsed: table.countMalformed()
        }
    }

    /// Emits a batch when `nowNs` has reached the next poll boundary.
    /// `progress` is evaluated only then: for a file it is an `ftell`, a
    /// system call, which per packet cost a sixth of `analyze`'s time.
    ///
    /// A clock that goes back more than a poll before the last boundary (a
    /// file's record stamped years ahead, then the file's own times again;
    /// captures merged out of order) polls on from the new time: left
    /// waiting for the file to catch up with the jump, nothing would be
    /// emitted, and no flow would end, for the rest of the file.
    mutating func tick(nowNs: UInt64, progress: @autoclosure () -> Double? = nil) {
        lastTimeNs = max(lastTimeNs, nowNs)
        if nextTickNs == 0 || nowNs + 2 * pollIntervalNs < nextTickNs {
            nextTickNs = nowNs + pollIntervalNs
            return
        }
        guard nowNs >= nextTickNs else { return }
        emit(table.advance(to: nowNs), nowNs: nowNs, progress: progress())
        nextTickNs = nowNs + pollIntervalNs
    }

    /// Ends every flow and the stream.
    mutating func finish(progress: Double? = nil) {
        var records = table.advance(to: lastTimeNs)
        records += table.flush()
        emit(records, nowNs: lastTimeNs, progress: progress)
        continuation.finish()
    }

    private mutating func emit(_ records: [FlowRecord], nowNs: UInt64, progress: Double?) {
        var named = records
        if !interfaceNames.isEmpty {
            for i in named.indices { named[i].interface = interfaceNames[named[i].interfaceIndex] ?? .none }
        }
        _ = continuation.yieldWhenRoom(FlowBatch(timeNs: nowNs, records: named, statistics: table.statistics, activeFlows: table.activeCount,
                                                 progress: progress)) {
            usleep(1000)
            return true
        }
    }
}
