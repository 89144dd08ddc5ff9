import CPcap
public import FlowForestCore
import Foundation
public import Logging

/// Reads a pcap or pcapng file through the same parser and flow table as
/// live capture. Time is packet time, so a file gives the same flows however
/// fast it is read.
public final class PcapFileSource: FlowSource {
    public let mode = "file"
    public let path: String
    public let configuration: FlowTableConfiguration
    public let pollIntervalNs: UInt64
    private let logger: Logger
    private let stopFlag = StopFlag()

    public init(path: String, configuration: FlowTableConfiguration = FlowTableConfiguration(), pollIntervalNs: UInt64 = 1_000_000_000, logger: Logger) {
        self.path = path
        self.configuration = configuration
        self.pollIntervalNs = pollIntervalNs
        self.logger = logger
    }

    public func stop() { stopFlag.set() }

    public func batches() -> AsyncThrowingStream<FlowBatch, any Error> {
        let (stream, continuation) = CaptureLoop.makeStream()
        let handle: PcapHandle
        do {
            handle = try PcapHandle.openFile(path)
        } catch {
            continuation.finish(throwing: error)
            return stream
        }
        let stop = stopFlag
        continuation.onTermination = { _ in stop.set() }
        let (path, configuration, poll) = (self.path, self.configuration, self.pollIntervalNs)
        logger.debug("reading capture file", metadata: ["path": "\(path)", "linktype": "\(handle.linkType)"])
        // pcap_next_ex blocks on file I/O: run it on its own thread, not the cooperative pool.
        let thread = Thread {
            nameCurrentThread("ff-pcap-file")
            PcapFileSource.read(handle, path: path, configuration: configuration, pollIntervalNs: poll, stop: stop, continuation: continuation)
        }
        thread.start()
        return stream
    }

    private static func read(_ handle: PcapHandle, path: String, configuration: FlowTableConfiguration, pollIntervalNs: UInt64,
                             stop: StopFlag, continuation: AsyncThrowingStream<FlowBatch, any Error>.Continuation) {
        var loop = CaptureLoop(configuration: configuration, pollIntervalNs: pollIntervalNs, continuation: continuation)
        let parser = PacketParser(linkType: handle.linkType)
        let fileSize = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.doubleValue ?? 0
        let file = pcap_file(handle.pointer)
        func progress() -> Double? {
            guard fileSize > 0, let file else { return nil }
            return min(1, Double(ftell(file)) / fileSize)
        }
        // Classic pcap (version 2.x) stores seconds in an unsigned 32-bit field.
        let classic = pcap_major_version(handle.pointer) == 2
        var header: UnsafeMutablePointer<pcap_pkthdr>?
        var data: UnsafePointer<UInt8>?
        while !stop.isSet {
            let status = pcap_next_ex(handle.pointer, &header, &data)
            if status == 1, let header, let data {
                guard let ts = timestampNs(header, classic: classic) else {
                    loop.table.countMalformed()
                    continue
                }
                loop.tick(nowNs: ts, progress: progress())
                loop.handle(UnsafeRawBufferPointer(start: data, count: Int(header.pointee.caplen)),
                            wireLength: Int(header.pointee.len), timestampNs: ts, parser: parser)
            } else if status == PCAP_ERROR_BREAK {
                break  // end of file
            } else {
                let message = handle.lastError
                continuation.finish(throwing: message.contains("truncated")
                    ? PcapError.truncatedFile(path, message) : PcapError.readFailed(path, message))
                return
            }
        }
        loop.finish(progress: 1)
    }
}
