import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A connected socket to one collector. UDP "connects" only to fix the peer
/// (and learn of an unreachable port); TCP reconnects after a failure.
final class CollectorSocket {
    let destination: ExportDestination
    private let address: (storage: sockaddr_storage, length: socklen_t, family: Int32)
    private var fd: Int32 = -1
    /// Bytes written on the current connection (TCP).
    private(set) var bytesWritten: UInt64 = 0
    /// How many of them the collector's host had acknowledged when a send
    /// failure closed the connection (TCP): the rest went down with it.
    private(set) var acknowledgedAtClose: UInt64 = 0

    /// Resolves the collector now, so a wrong name is a start-up error.
    init(_ destination: ExportDestination) throws(ExportError) {
        self.destination = destination
        var hints = addrinfo()
        hints.ai_socktype = destination.transport == .udp ? Int32(SOCK_DGRAM.rawValue) : Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(destination.host, String(destination.port), &hints, &result)
        guard status == 0, let first = result else {
            throw .resolve(destination.host, String(cString: gai_strerror(status)))
        }
        defer { freeaddrinfo(result) }
        var storage = sockaddr_storage()
        withUnsafeMutableBytes(of: &storage) { dst in
            dst.copyMemory(from: UnsafeRawBufferPointer(start: first.pointee.ai_addr, count: Int(first.pointee.ai_addrlen)))
        }
        address = (storage, first.pointee.ai_addrlen, first.pointee.ai_family)
    }

    deinit { close() }

    var isConnected: Bool { fd >= 0 }

    /// Opens and connects the socket; TCP waits at most `timeout` seconds.
    func connect(timeout: Double = 2) throws(ExportError) {
        close()
        let type = destination.transport == .udp ? Int32(SOCK_DGRAM.rawValue) : Int32(SOCK_STREAM.rawValue)
        let s = socket(address.family, type | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard s >= 0 else { throw .socket(destination.description, String(cString: strerror(errno))) }
        var tv = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - Double(Int(timeout))) * 1e6))
        setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var storage = address.storage
        let rc = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(s, $0, address.length) }
        }
        guard rc == 0 else {
            let why = String(cString: strerror(errno))
            Glibc.close(s)
            throw .socket(destination.description, why)
        }
        fd = s
        bytesWritten = 0
    }

    /// Bytes written on this connection that the collector's host has
    /// acknowledged (TCP): the kernel's `tcpi_bytes_acked`, which a reset
    /// leaves as it was (the send queue's length does not: a reset empties it).
    func acknowledgedBytes() -> UInt64 {
        guard fd >= 0 else { return 0 }
        // struct tcp_info of linux/tcp.h (glibc's lacks the field); it only
        // ever grows, and tcpi_bytes_acked (Linux 4.1) sits at byte 120.
        var info = [UInt8](repeating: 0, count: 256)
        var length = socklen_t(info.count)
        let rc = info.withUnsafeMutableBytes { getsockopt(fd, Int32(IPPROTO_TCP), TCP_INFO, $0.baseAddress, &length) }
        guard rc == 0, length >= 128 else { return 0 }
        // The client's count includes its SYN (1 right after connecting).
        let acked = info.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 120, as: UInt64.self) }
        return min(acked > 0 ? acked - 1 : 0, bytesWritten)
    }

    /// Sends one whole message. A failure closes a TCP socket (the stream
    /// would be out of step); a UDP socket stays usable.
    func send(_ bytes: [UInt8]) throws(ExportError) {
        guard fd >= 0 else { throw .socket(destination.description, "not connected") }
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + sent, bytes.count - sent, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EINTR { continue }
                let why = String(cString: strerror(errno))
                if destination.transport == .tcp {
                    bytesWritten += UInt64(sent)
                    acknowledgedAtClose = acknowledgedBytes()
                    close()
                }
                throw .socket(destination.description, why)
            }
            sent += n
        }
        bytesWritten += UInt64(sent)
    }

    func close() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }
}
