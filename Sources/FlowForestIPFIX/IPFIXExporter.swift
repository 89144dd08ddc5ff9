public import CoreMetrics
public import FlowForestCore
import Foundation
public import Logging

/// Exports flow records as IPFIX to one collector from its own thread, so a
/// slow or absent collector never holds up capture or detection.
///
/// Each flow is exported at every active timeout (interim) and at its end,
/// with the packets and bytes since its previous export. Records wait in a
/// bounded queue: when it is full a live sensor drops them and counts the
/// loss (`flowforest_export_dropped_records_total`), while `analyze` waits.
/// Over UDP the templates go out at start and every ``templateInterval``
/// seconds (RFC 7011 §8.4); over TCP once per connection.
public final class IPFIXExporter: @unchecked Sendable {
    // @unchecked: the queue, tracker and flags are guarded by `condition`;
    // the encoder and socket belong to the export thread alone.
    public let destination: ExportDestination
    public let templateInterval: Double
    public let queueLimit: Int

    private let condition = NSCondition()
    private var queue: [ExportRecord] = []
    private var tracker = DeltaTracker()
    private var stopping = false
    private var finished = false
    private var encoder: IPFIXEncoder
    /// The encoder's, kept apart: callers count records by it on their own
    /// threads while the export thread mutates the encoder.
    private let biflow: Bool
    private let socket: CollectorSocket
    private let logger: Logger
    private var thread: Thread?

    /// TCP messages written but not yet acknowledged by the collector's host:
    /// where each ends in the connection's byte stream, and its records.
    /// Counted as sent once acknowledged, as dropped if the connection fails
    /// first (the export thread's alone).
    private var inFlight: [(end: UInt64, records: Int)] = []
    private var inFlightHead = 0

    private let messagesSent: Counter
    private let recordsSent: Counter
    private let sendErrors: Counter
    private let recordsDropped: Counter

    /// Resolves the collector (a wrong name or port is an error here, at
    /// start) and starts the export thread.
    public init(destination: ExportDestination, observationDomain: UInt32 = 1, biflow: Bool = false,
                templateInterval: Double = 60, queueLimit: Int = 200_000,
                metricsFactory: any MetricsFactory, logger: Logger) throws(ExportError) {
        self.destination = destination
        self.templateInterval = templateInterval
        self.queueLimit = queueLimit
        self.logger = logger
        encoder = IPFIXEncoder(observationDomain: observationDomain, biflow: biflow)
        self.biflow = biflow
        socket = try CollectorSocket(destination)
        let d = [("collector", destination.description)]
        messagesSent = Counter(label: "flowforest_export_messages_total", dimensions: d, factory: metricsFactory)
        recordsSent = Counter(label: "flowforest_export_records_total", dimensions: d, factory: metricsFactory)
        sendErrors = Counter(label: "flowforest_export_errors_total", dimensions: d, factory: metricsFactory)
        recordsDropped = Counter(label: "flowforest_export_dropped_records_total", dimensions: d, factory: metricsFactory)
        let thread = Thread { [unowned self] in
            nameCurrentThread("ff-ipfix")
            self.run()
        }
        self.thread = thread
        thread.start()
    }

    /// Hands a batch's records over for export. With `wait`, blocks while the
    /// queue is full (offline replay); otherwise drops and counts what does not fit.
    public func export(_ records: [FlowRecord], wait: Bool) {
        condition.lock()
        defer { condition.unlock() }
        for record in records {
            guard let export = tracker.export(record) else { continue }
            while wait && queue.count >= queueLimit && !finished { condition.wait() }
            if queue.count >= queueLimit || finished {
                recordsDropped.increment(by: biflowRecordCount(export))
                continue
            }
            queue.append(export)
        }
        condition.broadcast()
    }

    /// Sends what is queued, then stops the thread and closes the socket.
    public func finish() {
        condition.lock()
        stopping = true
        condition.broadcast()
        while !finished { condition.wait() }
        condition.unlock()
    }

    private func biflowRecordCount(_ r: ExportRecord) -> Int {
        biflow ? 1 : (r.forward.packets > 0 ? 1 : 0) + (r.reverse.packets > 0 ? 1 : 0)
    }

    private static func now() -> Double { Date().timeIntervalSince1970 }

    private func run() {
        var nextTemplate = 0.0
        var nextConnect = 0.0
        while true {
            condition.lock()
            // With TCP messages awaiting acknowledgement, wake now and then to count them.
            let tick = inFlightHead < inFlight.count ? 0.1 : 3600
            while queue.isEmpty && !stopping && Self.now() < nextTemplate {
                if !condition.wait(until: Date(timeIntervalSince1970: min(nextTemplate, Self.now() + tick))) { break }
            }
            let batch = queue
            queue.removeAll(keepingCapacity: true)
            let stop = stopping
            condition.broadcast()
            condition.unlock()

            let now = Self.now()
            if !socket.isConnected && now >= nextConnect {
                do {
                    try socket.connect()
                    nextTemplate = 0
                } catch {
                    nextConnect = now + 1
                    logger.warning("IPFIX collector unreachable; retrying", metadata: ["collector": "\(destination)", "error": "\(error)"])
                }
            }
            let exportTime = UInt32(clamping: Int64(now))
            if socket.isConnected && now >= nextTemplate {
                send(encoder.templateMessage(exportTime: exportTime), records: 0)
                nextTemplate = destination.transport == .udp ? now + templateInterval : .infinity
            }
            if !batch.isEmpty {
                for message in encoder.dataMessages(batch, exportTime: exportTime) {
                    guard socket.isConnected else {
                        recordsDropped.increment(by: message.records)
                        continue
                    }
                    send(message.bytes, records: message.records)
                }
            }
            if destination.transport == .tcp, socket.isConnected, inFlightHead < inFlight.count {
                settle(acknowledged: socket.acknowledgedBytes())
            }
            if stop {
                condition.lock()
                let drained = queue.isEmpty
                condition.unlock()
                if drained {
                    settleAtEnd(within: 2)
                    condition.lock()
                    if queue.isEmpty {
                        socket.close()
                        finished = true
                        condition.broadcast()
                        condition.unlock()
                        return
                    }
                    condition.unlock()
                }
            }
            if !socket.isConnected {
                // Wait out the reconnect delay rather than spin.
                nextTemplate = max(nextConnect, Self.now() + 0.05)
            }
        }
    }

    private func send(_ bytes: [UInt8], records: Int) {
        do {
            try socket.send(bytes)
            guard destination.transport == .tcp else {
                messagesSent.increment()
                recordsSent.increment(by: records)
                return
            }
            inFlight.append((socket.bytesWritten, records))
            settle(acknowledged: socket.acknowledgedBytes())
        } catch {
            sendErrors.increment()
            recordsDropped.increment(by: records)
            if destination.transport == .tcp { settle(acknowledged: socket.acknowledgedAtClose, connectionLost: true) }
            logger.warning("IPFIX send failed", metadata: ["collector": "\(destination)", "error": "\(error)"])
        }
    }

    /// Counts the TCP messages the collector's host acknowledged as sent;
    /// with `connectionLost`, the rest as dropped: a closed connection's
    /// send queue is thrown away, so counting them at write would claim
    /// records no collector ever received.
    private func settle(acknowledged: UInt64, connectionLost: Bool = false) {
        while inFlightHead < inFlight.count, inFlight[inFlightHead].end <= acknowledged {
            messagesSent.increment()
            recordsSent.increment(by: inFlight[inFlightHead].records)
            inFlightHead += 1
        }
        if connectionLost {
            recordsDropped.increment(by: inFlight[inFlightHead...].reduce(0) { $0 + $1.records })
            inFlightHead = inFlight.count
        }
        // Compacted once half is settled, not only when all is: a slow
        // collector that always has a message unacknowledged would otherwise
        // grow the list by one entry per message for as long as it runs.
        // What stays is bounded by the socket's send buffer.
        if inFlightHead > 0, inFlightHead * 2 >= inFlight.count {
            inFlight.removeFirst(inFlightHead)
            inFlightHead = 0
        }
    }

    /// Before the socket closes at the end: waits up to `seconds` for the
    /// collector's host to acknowledge what was written, then counts the rest dropped.
    private func settleAtEnd(within seconds: Double) {
        guard destination.transport == .tcp else { return }
        let deadline = Self.now() + seconds
        settle(acknowledged: socket.acknowledgedBytes())
        while inFlightHead < inFlight.count, socket.isConnected, Self.now() < deadline {
            usleep(10_000)
            settle(acknowledged: socket.acknowledgedBytes())
        }
        settle(acknowledged: socket.acknowledgedBytes(), connectionLost: true)
    }
}
