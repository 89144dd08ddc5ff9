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
        wake = (fds[0], fds[1])
        collector = FlowCollector(configuration: configuration, limits: limits, metricsFactory: metricsFactory, logger: logger)
        for endpoint in endpoints { logger.info("collecting NetFlow/IPFIX", metadata: ["listen": "\(endpoint)"]) }
    }

    deinit {
        for fd in sockets { close(fd) }
        close(wake.read)
        close(wake.write)
    }

    public func batches() -> AsyncThrowingStream<FlowBatch, any Error> {
        let (stream, continuation) = AsyncThrowingStream<FlowBatch, any Error>.makeStream(bufferingPolicy: .unbounded)
        let thread = Thread { [self] in
            run(continuation)
        }
        thread.name = "flowforest-collect"
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
            if now >= nextPoll {
                continuation.yield(batch(records: collector.advance(to: now), at: now))
                nextPoll = max(nextPoll + pollIntervalNs, now + 1_000_000)
                continue
            }
            let timeoutMs = Int32(clamping: (nextPoll - now + 999_999) / 1_000_000)
            guard poll(&pollFDs, nfds_t(pollFDs.count), timeoutMs) > 0 else { continue }
            for i in 0..<sockets.count where pollFDs[i].revents & Int16(POLLIN) != 0 {
                drain(sockets[i], buffer: &buffer)
            }
        }
        let now = Self.nowNs()
        var records = collector.advance(to: now)
        records += collector.flush()
        continuation.yield(batch(records: records, at: now))
        continuation.finish()
    }

    /// Reads what is queued on one socket, at most 4096 datagrams, so one
    /// busy exporter cannot hold off the poll.
    private func drain(_ fd: Int32, buffer: inout [UInt8]) {
        for _ in 0..<4096 {
            var storage = sockaddr_storage()
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let n = buffer.withUnsafeMutableBytes { b in
                withUnsafeMutablePointer(to: &storage) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        recvfrom(fd, b.baseAddress, b.count, Int32(MSG_DONTWAIT), $0, &length)
                    }
                }
            }
            guard n >= 0 else { return }
            guard let exporter = UDPSocket.address(storage) else { continue }
            collector.receive(Array(buffer[0..<n]), from: exporter, at: Self.nowNs())
        }
    }

    private func batch(records: [FlowRecord], at now: UInt64) -> FlowBatch {
        FlowBatch(timeNs: now, records: records, statistics: collector.statistics, activeFlows: collector.activeFlows)
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

    /// The sender's address of a datagram.
    static func address(_ storage: sockaddr_storage) -> IPAddress? {
        var s = storage
        switch Int32(s.ss_family) {
        case AF_INET:
            return withUnsafeBytes(of: &s) { raw in
                let sin = raw.load(as: sockaddr_in.self)
                return IPAddress(ipv4: UInt32(bigEndian: sin.sin_addr.s_addr))
            }
        case AF_INET6:
            return withUnsafeBytes(of: &s) { raw in
                let sin6 = raw.load(as: sockaddr_in6.self)
                return withUnsafeBytes(of: sin6.sin6_addr) { IPAddress(bytes: Array($0)) }
            }
        default:
            return nil
        }
    }
}
