import CPcap
public import FlowForestCore
import Foundation
public import Logging

/// Live capture through libpcap on one or more interfaces: the fallback when
/// eBPF cannot be loaded. One thread polls every handle and feeds one flow
/// table, so a flow crossing two interfaces is still one flow.
public final class PcapLiveSource: FlowSource {
    public let mode = "pcap"
    public let interfaces: [String]
    public let configuration: FlowTableConfiguration
    public let pollIntervalNs: UInt64
    /// Bytes kept per packet: every header the parser reads, however deep
    /// (``PacketParser/deepestHeaderBytes``). Most packets are shorter and
    /// are kept whole; a cut at a few hundred bytes would let IPv6
    /// extension headers (SRv6 segment lists, destination options padding)
    /// hide a flow's ports, making its packets malformed here while eBPF
    /// counts them in flows.
    public static let snapLength = Int32(PacketParser.deepestHeaderBytes)
    /// Default kernel buffer per interface; large, so bursts wait instead of
    /// dropping. Packets are kept whole up to the snap length, so it holds
    /// about 42,000 full-size frames, 500,000 of 64 bytes.
    public static let defaultBufferBytes: Int32 = 64 << 20
    /// libpcap's read timeout: the longest a ring block waits before the
    /// kernel hands it over unfilled.
    static let blockTimeoutMs: Int32 = 100
    public let promiscuous: Bool
    /// Kernel buffer per interface, in bytes.
    public let bufferBytes: Int32
    private let logger: Logger
    private let handles: [PcapHandle]
    private let stopFlag = StopFlag()

    /// Opens every interface now, so a missing interface or a permission
    /// problem is reported before anything starts.
    public init(interfaces: [String], configuration: FlowTableConfiguration = FlowTableConfiguration(),
                pollIntervalNs: UInt64 = 1_000_000_000, promiscuous: Bool = true,
                bufferBytes: Int32 = PcapLiveSource.defaultBufferBytes, logger: Logger) throws {
        self.interfaces = interfaces
        self.bufferBytes = bufferBytes
        self.configuration = configuration
        self.pollIntervalNs = pollIntervalNs
        self.promiscuous = promiscuous
        self.logger = logger
        handles = try interfaces.map {
            try PcapHandle.openLive($0, snapLength: Self.snapLength, bufferBytes: bufferBytes, promiscuous: promiscuous, timeoutMs: Self.blockTimeoutMs)
        }
    }

    public func stop() { stopFlag.set() }

    public func batches() -> AsyncThrowingStream<FlowBatch, any Error> {
        let (stream, continuation) = CaptureLoop.makeStream()
        let stop = stopFlag
        continuation.onTermination = { _ in stop.set() }
        let (handles, configuration, poll) = (self.handles, self.configuration, self.pollIntervalNs)
        logger.info("capturing with libpcap", metadata: ["interfaces": "\(interfaces.joined(separator: ","))"])
        for name in interfaces where name.utf8.count > InterfaceName.localCapacity {
            logger.warning("interface name longer than \(InterfaceName.localCapacity) bytes: flows name it by its start",
                           metadata: ["interface": "\(name)", "shown_as": "\(InterfaceName(local: name).name(interfaceIndex: 0) ?? "")"])
        }
        // Blocking poll()/pcap_dispatch run on their own thread, off the cooperative pool.
        let thread = Thread {
            nameCurrentThread("ff-pcap")
            PcapLiveSource.capture(handles, configuration: configuration, pollIntervalNs: poll, stop: stop, continuation: continuation)
        }
        thread.start()
        return stream
    }

    /// Context handed through pcap_dispatch's user pointer.
    private final class DispatchContext {
        var loop: CaptureLoop
        var parser: PacketParser
        init(loop: CaptureLoop, parser: PacketParser) {
            self.loop = loop
            self.parser = parser
        }
    }

    private static func capture(_ handles: [PcapHandle], configuration: FlowTableConfiguration, pollIntervalNs: UInt64,
                                stop: StopFlag, continuation: AsyncThrowingStream<FlowBatch, any Error>.Continuation) {
        var errbuf = [CChar](repeating: 0, count: Int(PCAP_ERRBUF_SIZE))
        var fds: [pollfd] = []
        var parsers: [PacketParser] = []
        var names: [UInt32: String] = [:]
        for handle in handles {
            _ = pcap_setnonblock(handle.pointer, 1, &errbuf)
            fds.append(pollfd(fd: pcap_get_selectable_fd(handle.pointer), events: Int16(POLLIN), revents: 0))
            let index = if_nametoindex(handle.name)
            names[index] = handle.name
            parsers.append(PacketParser(linkType: handle.linkType, interfaceIndex: index))
        }
        var loop = CaptureLoop(configuration: configuration, pollIntervalNs: pollIntervalNs, continuation: continuation)
        loop.interfaceNames = names.mapValues(InterfaceName.init(local:))
        loop.guardsStepBack = false
        let context = DispatchContext(loop: loop, parser: parsers[0])
        let user = Unmanaged.passUnretained(context).toOpaque()
        loop.tick(nowNs: wallClockNs())
        context.loop = loop
        /// Publishes the kernel's drop counts; returns the packets the kernel
        /// put in the rings so far (passed its filter and not dropped).
        @discardableResult
        func updateDrops() -> UInt64 {
            var capture: UInt64 = 0, interface: UInt64 = 0, ringed: UInt64 = 0
            for handle in handles {
                let c = handle.counts()
                capture += c.capture
                interface += c.interface
                ringed += c.received &- c.capture
            }
            context.loop.table.setCaptureDrops(capture, interfaceDrops: interface)
            return ringed
        }
        /// Hands every packet ready on each handle to the loop (the callback
        /// runs on this thread); the first failing handle, if any.
        func drainReady() -> PcapHandle? {
            for (i, handle) in handles.enumerated() {
                context.parser = parsers[i]
                let n = pcap_dispatch(handle.pointer, -1, { user, header, bytes in
                    guard let user, let header, let bytes else { return }
                    let ctx = Unmanaged<DispatchContext>.fromOpaque(user).takeUnretainedValue()
                    guard let ts = timestampNs(header) else { ctx.loop.table.countMalformed(); return }
                    ctx.loop.handle(UnsafeRawBufferPointer(start: bytes, count: Int(header.pointee.caplen)),
                                    wireLength: Int(header.pointee.len), timestampNs: ts, parser: ctx.parser)
                }, user)
                if n < 0 { return handle }
            }
            return nil
        }
        while !stop.isSet {
            _ = poll(&fds, nfds_t(fds.count), 100)
            if let failed = drainReady() {
                continuation.finish(throwing: PcapError.activateFailed(failed.name, failed.lastError))
                return
            }
            updateDrops()
            context.loop.tick(nowNs: wallClockNs())
        }
        // Read what the kernel still holds before the final flush. A ring
        // block is handed over only once full or after the handle's timeout,
        // so packets in the open block are waited for: until every packet the
        // kernel ringed has been read, for at most a few block timeouts.
        let deadline = wallClockNs() + 4 * UInt64(PcapLiveSource.blockTimeoutMs) * 1_000_000
        while true {
            _ = drainReady()
            let ringed = updateDrops()
            if context.loop.table.statistics.packetsSeen >= ringed || wallClockNs() >= deadline { break }
            _ = poll(&fds, nfds_t(fds.count), PcapLiveSource.blockTimeoutMs)
        }
        context.loop.finish(atNs: wallClockNs())
        withExtendedLifetime(context) {}
    }
}
