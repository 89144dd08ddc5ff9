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
    /// The capture's clock: the latest time seen, or an earlier one it stepped back to (see ``tick(nowNs:progress:)``).
    private(set) var clockNs: UInt64 = 0
    /// Packets (ticks) since the last poll.
    private var packetsSincePoll = 0
    /// The clock stepped back since the last poll: the next waits for ``stepBackRun(openFlows:)`` packets.
    private var steppedBack = false
    /// Whether a step back holds the next poll back (files: their times are the sender's).
    var guardsStepBack = true
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

    /// Emits a batch when the capture's clock has reached the next poll
    /// boundary. `progress` is evaluated only then: for a file it is an
    /// `ftell`, a system call, which per packet cost a sixth of `analyze`'s time.
    ///
    /// The clock is the latest time seen; a time more than two polls behind
    /// it (a file's record stamped years ahead, then the file's own times;
    /// captures merged out of order) moves it back at once, so polls go on
    /// from there: left waiting for the file to catch up with the jump,
    /// nothing would be emitted, and no flow would end, for the rest of the
    /// file. Each poll walks the whole flow table, so after a step back a
    /// file's next poll also waits for ``stepBackRun(openFlows:)`` packets:
    /// times alternating between two clocks, or a forged record every few
    /// packets, would otherwise force a walk of every open flow every few
    /// packets. Live capture ticks with the wall clock, which no sender
    /// sets, and polls on at once (`guardsStepBack` false).
    mutating func tick(nowNs: UInt64, progress: @autoclosure () -> Double? = nil) {
        packetsSincePoll &+= 1
        if clockNs == 0 {
            clockNs = nowNs
            nextTickNs = nowNs + pollIntervalNs
            return
        }
        if nowNs + 2 * pollIntervalNs < clockNs {
            clockNs = nowNs
            nextTickNs = nowNs + pollIntervalNs
            steppedBack = guardsStepBack
            return
        }
        clockNs = max(clockNs, nowNs)
        guard clockNs >= nextTickNs else { return }
        guard !steppedBack || packetsSincePoll >= Self.stepBackRun(openFlows: table.activeCount) else { return }
        emit(table.advance(to: clockNs), nowNs: clockNs, progress: progress())
        nextTickNs = clockNs + pollIntervalNs
        steppedBack = false
        packetsSincePoll = 0
    }

    /// Packets after a step back before the next poll: an eighth of the
    /// open flows (at least 16), so the polls a hostile file can force cost
    /// at most about eight flows' walk per packet.
    static func stepBackRun(openFlows: Int) -> Int { max(16, openFlows / 8) }

    /// Ends every flow and the stream, at `nowNs` (live capture: the wall
    /// clock) or else at the capture's clock, which a lone record stamped
    /// far ahead does not hold once the times behind it moved it back.
    mutating func finish(atNs nowNs: UInt64? = nil, progress: Double? = nil) {
        let end = nowNs ?? clockNs
        var records = table.advance(to: end)
        records += table.flush()
        emit(records, nowNs: end, progress: progress)
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
