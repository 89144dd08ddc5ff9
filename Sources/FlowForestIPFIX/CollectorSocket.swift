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
                if destination.transport == .tcp { close() }
                throw .socket(destination.description, why)
            }
            sent += n
        }
    }

    func close() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }
}
