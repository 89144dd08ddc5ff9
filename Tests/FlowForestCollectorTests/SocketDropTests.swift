import FlowForestCollector
import Foundation
import Logging
import MetricsTestKit
import Testing

/// A collector that falls behind loses datagrams in the kernel, before it
/// reads them: the kernel's drop count comes with the next datagram read
/// (SO_RXQ_OVFL), so every datagram sent is either received or counted.
@Suite("Collector socket drops are counted")
struct SocketDropTests {
    @Test("datagrams sent to an unread, full socket queue: received + counted drops = sent")
    func dropsAreCounted() async throws {
        var logger = Logger(label: "socket-drops")
        logger.logLevel = .warning
        let metrics = TestMetrics()
        let port = RoundTripTests.freeUDPPort()
        let listen = "udp://127.0.0.1:\(port)"
        let source = try CollectorSource(endpoints: [CollectorEndpoint(listen)], pollIntervalNs: 20_000_000,
                                         metricsFactory: metrics, logger: logger)
        let sender = try DatagramSender(port: port)
        // Nobody reads yet: 28 MB overflows the receive queue (at most 2 × rmem_max, 8 MiB here).
        var sent = 0
        for _ in 0..<20_000 where sender.send() { sent += 1 }

        // The collector's thread starts here, not when a task gets a turn on a busy test pool.
        let stream = source.batches()
        let reader = Task { for try await _ in stream {} }
        // Version 99 from a new address: a stray datagram, which takes no exporter place.
        let received: @Sendable () -> Int64 = {
            metrics.counterTotal(label: "flowforest_collector_datagrams_total") + metrics.counterTotal(label: "flowforest_collector_stray_datagrams_total")
        }
        let dropped: @Sendable () -> Int64 = { metrics.counterTotal(label: "flowforest_collector_socket_drops_total", dimensions: [("listen", listen)]) }
        // The drop count rides on datagrams queued after the drops: one more is
        // sent until the books balance. On a thread of its own, as the
        // collector is: a test pool busy with other suites' CPU-bound work can
        // leave a task unscheduled for longer than the whole deadline.
        let initial = sent
        sent = await withCheckedContinuation { (done: CheckedContinuation<Int, Never>) in
            Thread {
                var sent = initial
                let deadline = Date().addingTimeInterval(90)
                while Date() < deadline && !(dropped() > 0 && received() + dropped() == Int64(sent)) {
                    if sender.send() { sent += 1 }
                    Thread.sleep(forTimeInterval: 0.05)
                }
                done.resume(returning: sent)
            }.start()
        }
        source.stop()
        try await reader.value
        #expect(dropped() > 0, "the queue overflowed: sent \(sent), received \(received())")
        #expect(received() + dropped() == Int64(sent), "sent \(sent), received \(received()), counted as dropped \(dropped())")
    }
}

/// One UDP socket sending the test's 1,400-byte datagrams of version 99
/// (each counted as a stray datagram, and decoded to nothing).
private final class DatagramSender: Sendable {
    private let fd: Int32
    private let port: UInt16
    private static let datagram = [UInt8(0), 99] + [UInt8](repeating: 0, count: 1398)

    init(port: UInt16) throws {
        fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        self.port = port
    }

    deinit { close(fd) }

    func send() -> Bool {
        var to = sockaddr_in()
        to.sin_family = sa_family_t(AF_INET)
        to.sin_port = port.bigEndian
        to.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &to) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                sendto(fd, Self.datagram, Self.datagram.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == Self.datagram.count
            }
        }
    }
}
