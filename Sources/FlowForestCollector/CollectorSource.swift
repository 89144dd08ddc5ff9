public import CoreMetrics
public import FlowForestCore
import Foundation
public import Logging
#if canImport(Glibc)
import Glibc
#endif

/// A ``FlowSource`` that collects NetFlow v5, v9 and IPFIX over UDP: one
/// thread owns the sockets and the ``FlowCollector`` and yields a batch
/// every poll interval, the way a capture source does, so collected flows
/// go through the same detection, store, API and metrics.
///
/// The sockets are bound in `init`, so a port in use is an error at start.
public final class CollectorSource: FlowSource, @unchecked Sendable {
    // @unchecked: the sockets and collector belong to the collector thread;
    // `stopping` is guarded by `lock`, and the wake pipe is written from any thread.
    public let endpoints: [CollectorEndpoint]
    public let pollIntervalNs: UInt64
    public var mode: String { "collect" }

    private let sockets: [Int32]
    /// Per socket: datagrams the kernel dropped because the receive queue was
    /// full, counted in `flowforest_collector_socket_drops_total{listen}`.
    private let socketDrops: [SocketDrops]
    private let wake: (read: Int32, write: Int32)
    private let collector: FlowCollector
    private let logger: Logger
    private let lock = NSLock()
    private var stopping = false

    /// Binds every endpoint; throws if one cannot be bound.
    public init(endpoints: [CollectorEndpoint], configuration: FlowTableConfiguration = FlowTableConfiguration(),
                limits: CollectorLimits = CollectorLimits(), pollIntervalNs: UInt64 = 1_000_000_000,
                metricsFactory: any MetricsFactory, logger: Logger) throws(CollectorError) {
        self.endpoints = endpoints
        self.pollIntervalNs = max(pollIntervalNs, 10_000_000)
        self.logger = logger
        var bound: [Int32] = []
        for endpoint in endpoints {
            do {
                bound.append(try UDPSocket.bind(endpoint))
            } catch {
                for fd in bound { close(fd) }
                throw error
            }
        }
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else {
            for fd in bound { close(fd) }
            throw .socket("wake pipe", String(cString: strerror(errno)))
        }
        for fd in fds {
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        }
        sockets = bound
        socketDrops = endpoints.map {
            SocketDrops(counter: Counter(label: "flowforest_collector_socket_drops_total", dimensions: [("listen", $0.description)],
                                         factory: metricsFactory))
        }
        wake = (fds[0], fds[1])
        collector = FlowCollector(configuration: configuration, limits: limits, metricsFactory: metricsFactory, logger: logger)
        for endpoint in endpoints { logger.info("collecting NetFlow/IPFIX", metadata: ["listen": "\(endpoint)"]) }
    }

    deinit {
        for fd in sockets { close(fd) }
        close(wake.read)
        close(wake.write)
    }

    /// Batches the stream holds for a consumer that is behind. The collector
    /// thread waits for room rather than queueing more, reading datagrams
    /// into its bounded flow table meanwhile; past the table's limit and the
    /// socket's queue, losses are counted where they happen.
    public static let bufferedBatches = 1

    public func batches() -> AsyncThrowingStream<FlowBatch, any Error> {
        let (stream, continuation) = AsyncThrowingStream<FlowBatch, any Error>.makeStream(
            bufferingPolicy: .bufferingOldest(Self.bufferedBatches))
        let thread = Thread { [self] in
            nameCurrentThread("ff-collect")
            run(continuation)
        }
        continuation.onTermination = { [weak self] _ in self?.stop() }
        thread.start()
        return stream
    }

    public func stop() {
        lock.lock()
        stopping = true
        lock.unlock()
        var byte: UInt8 = 1
        _ = write(wake.write, &byte, 1)
    }

    private var isStopping: Bool {
        lock.lock()
        defer { lock.unlock() }
        return stopping
    }

    private static func nowNs() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    /// The collector thread: reads datagrams until the next poll is due,
    /// then advances the tables and yields a batch.
    private func run(_ continuation: AsyncThrowingStream<FlowBatch, any Error>.Continuation) {
        var pollFDs = sockets.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
        pollFDs.append(pollfd(fd: wake.read, events: Int16(POLLIN), revents: 0))
        var buffer = [UInt8](repeating: 0, count: 65_536)
        var nextPoll = Self.nowNs() + pollIntervalNs
        while !isStopping {
            let now = Self.nowNs()
            // The wall clock stepped back (NTP, a restored VM): poll on the
            // new clock rather than wait out the step.
            if nextPoll > now + pollIntervalNs { nextPoll = now + pollIntervalNs }
            if now >= nextPoll {
                guard deliver(batch(records: collector.advance(to: now), at: now), continuation,
                              pollFDs: &pollFDs, buffer: &buffer) else { return }
                let after = Self.nowNs()
                nextPoll = max(nextPoll + pollIntervalNs, after + 1_000_000)
                continue
            }
            let timeoutMs = Int32(clamping: (nextPoll - now + 999_999) / 1_000_000)
            receive(&pollFDs, timeoutMs: timeoutMs, buffer: &buffer)
        }
        let now = Self.nowNs()
        var records = collector.advance(to: now)
        records += collector.flush()
        _ = deliver(batch(records: records, at: now), continuation, pollFDs: &pollFDs, buffer: &buffer)
        continuation.finish()
    }

    /// Waits up to `timeoutMs` for datagrams and reads what is queued.
    private func receive(_ pollFDs: inout [pollfd], timeoutMs: Int32, buffer: inout [UInt8]) {
        guard poll(&pollFDs, nfds_t(pollFDs.count), timeoutMs) > 0 else { return }
        for i in 0..<sockets.count where pollFDs[i].revents & Int16(POLLIN) != 0 {
            drain(sockets[i], drops: socketDrops[i], buffer: &buffer)
        }
    }

    /// Hands `batch` to the consumer, waiting while the stream holds
    /// ``bufferedBatches`` already; datagrams are still read meanwhile, so
    /// the socket queue does not overflow while the pipeline catches up.
    /// Returns false when the consumer is gone.
    private func deliver(_ batch: FlowBatch, _ continuation: AsyncThrowingStream<FlowBatch, any Error>.Continuation,
                         pollFDs: inout [pollfd], buffer: inout [UInt8]) -> Bool {
        continuation.yieldWhenRoom(batch) {
            // Once stopping, the wake pipe stays readable and poll would return at once.
            if isStopping { usleep(5_000) } else { receive(&pollFDs, timeoutMs: 5, buffer: &buffer) }
            return true
        }
    }

    /// Reads what is queued on one socket, at most 4096 datagrams, so one
    /// busy exporter cannot hold off the poll.
    private func drain(_ fd: Int32, drops: SocketDrops, buffer: inout [UInt8]) {
        var control = [UInt8](repeating: 0, count: 64)
        for _ in 0..<4096 {
            var storage = sockaddr_storage()
            var dropCount: UInt32?
            let n = UDPSocket.receive(fd, into: &buffer, from: &storage, control: &control, drops: &dropCount)
            guard n >= 0 else { return }
            if let dropCount { drops.saw(dropCount) }
            guard let (exporter, port) = UDPSocket.address(storage) else { continue }
            collector.receive(Array(buffer[0..<n]), from: exporter, port: port, at: Self.nowNs())
        }
    }

    private func batch(records: [FlowRecord], at now: UInt64) -> FlowBatch {
        FlowBatch(timeNs: now, records: records, statistics: collector.statistics, activeFlows: collector.activeFlows,
                  reporting: .delayed)
    }
}

/// Binding and addressing of the collector's UDP sockets.
enum UDPSocket {
    static func bind(_ endpoint: CollectorEndpoint) throws(CollectorError) -> Int32 {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_DGRAM.rawValue)
        hints.ai_flags = AI_PASSIVE
        var result: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(endpoint.host, String(endpoint.port), &hints, &result)
        guard status == 0, let first = result else { throw .resolve(endpoint.host, String(cString: gai_strerror(status))) }
        defer { freeaddrinfo(result) }
        let fd = socket(first.pointee.ai_family, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .socket(endpoint.description, String(cString: strerror(errno))) }
        // A large receive buffer rides out bursts between polls; the kernel caps it at rmem_max.
        var size: Int32 = 8 * 1024 * 1024
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        // Datagrams carry the socket's drop count (full queue), so no loss goes uncounted.
        var on: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, &on, socklen_t(MemoryLayout<Int32>.size))
        if first.pointee.ai_family == AF_INET6 {
            // Accept IPv4 too on [::], as the mapped addresses every record uses.
            var off: Int32 = 0
            setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &off, socklen_t(MemoryLayout<Int32>.size))
        }
        guard Glibc.bind(fd, first.pointee.ai_addr, first.pointee.ai_addrlen) == 0 else {
            let why = String(cString: strerror(errno))
            close(fd)
            throw .socket(endpoint.description, why)
        }
        return fd
    }

    /// The sender's address and port of a datagram.
    static func address(_ storage: sockaddr_storage) -> (IPAddress, UInt16)? {
        var s = storage
        switch Int32(s.ss_family) {
        case AF_INET:
            return withUnsafeBytes(of: &s) { raw in
                let sin = raw.load(as: sockaddr_in.self)
                return (IPAddress(ipv4: UInt32(bigEndian: sin.sin_addr.s_addr)), UInt16(bigEndian: sin.sin_port))
            }
        case AF_INET6:
            return withUnsafeBytes(of: &s) { raw in
                let sin6 = raw.load(as: sockaddr_in6.self)
                let port = UInt16(bigEndian: sin6.sin6_port)
                return withUnsafeBytes(of: sin6.sin6_addr) { IPAddress(bytes: Array($0)) }.map { ($0, port) }
            }
        default:
            return nil
        }
    }
}

/// The kernel's count of datagrams one socket dropped for a full receive
/// queue, as the SO_RXQ_OVFL control message reports it with each datagram
/// (a running 32-bit total), turned into counter increments.
final class SocketDrops {
    // Used by the collector thread only.
    private let counter: Counter
    private var last: UInt32 = 0

    init(counter: Counter) {
        self.counter = counter
    }

    func saw(_ total: UInt32) {
        // Wrapping subtraction: the kernel's total is 32 bits and wraps.
        let new = total &- last
        // The kernel's total only grows; a smaller one is old news.
        guard new > 0, new < UInt32.max / 2 else { return }
        counter.increment(by: Int(new))
        last = total
    }
}

extension UDPSocket {
    /// One datagram with recvmsg: its length (-1 when none is queued), its
    /// sender, and the socket's drop total when the kernel attached it.
    static func receive(_ fd: Int32, into buffer: inout [UInt8], from storage: inout sockaddr_storage,
                        control: inout [UInt8], drops: inout UInt32?) -> Int {
        let controlCount = control.count
        let (n, controlLength) = buffer.withUnsafeMutableBytes { b in
            control.withUnsafeMutableBytes { c in
                withUnsafeMutablePointer(to: &storage) { name in
                    var iov = iovec(iov_base: b.baseAddress, iov_len: b.count)
                    return withUnsafeMutablePointer(to: &iov) { iovPointer in
                        var message = msghdr()
                        message.msg_name = UnsafeMutableRawPointer(name)
                        message.msg_namelen = socklen_t(MemoryLayout<sockaddr_storage>.size)
                        message.msg_iov = iovPointer
                        message.msg_iovlen = 1
                        message.msg_control = c.baseAddress
                        message.msg_controllen = controlCount
                        let n = recvmsg(fd, &message, Int32(MSG_DONTWAIT))
                        return (n, n >= 0 ? Int(message.msg_controllen) : 0)
                    }
                }
            }
        }
        if n >= 0 { drops = dropTotal(control, length: min(controlLength, controlCount)) }
        return n
    }

    /// The SO_RXQ_OVFL value among control messages (struct cmsghdr: a
    /// size_t length, int level, int type, then data aligned to size_t).
    static func dropTotal(_ control: [UInt8], length: Int) -> UInt32? {
        let header = MemoryLayout<Int>.size + 2 * MemoryLayout<Int32>.size
        let align = MemoryLayout<Int>.size
        var offset = 0
        return control.withUnsafeBytes { raw -> UInt32? in
            while offset + header <= length {
                let cmsgLength = raw.loadUnaligned(fromByteOffset: offset, as: Int.self)
                let level = raw.loadUnaligned(fromByteOffset: offset + align, as: Int32.self)
                let type = raw.loadUnaligned(fromByteOffset: offset + align + 4, as: Int32.self)
                guard cmsgLength >= header, cmsgLength <= length - offset else { return nil }
                let data = (offset + header + align - 1) / align * align
                if level == SOL_SOCKET, type == SO_RXQ_OVFL, data + 4 <= offset + cmsgLength {
                    return raw.loadUnaligned(fromByteOffset: data, as: UInt32.self)
                }
                offset += (cmsgLength + align - 1) / align * align
            }
            return nil
        }
    }
}
