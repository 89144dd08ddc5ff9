import Foundation

/// Loopback UDP for the collector benchmark: free ports, the kernel's view
/// of a receiving socket (/proc/net/udp), and a sender that keeps that
/// socket's queue short so no datagram is dropped.
enum UDPSocketTable {
    struct Socket { var receiveQueue: Int; var drops: Int }

    /// The IPv4 UDP socket bound to `port`, if any: its queued bytes and drops.
    static func socket(port: UInt16) throws -> Socket? {
        let table = try String(contentsOfFile: "/proc/net/udp", encoding: .utf8)
        let suffix = String(format: ":%04X", port)
        for line in table.split(separator: "\n").dropFirst() {
            let f = line.split(separator: " ", omittingEmptySubsequences: true)
            guard f.count > 12, f[1].hasSuffix(suffix) else { continue }
            let queues = f[4].split(separator: ":")
            guard queues.count == 2, let rx = Int(queues[1], radix: 16), let drops = Int(f[f.count - 1]) else { continue }
            return Socket(receiveQueue: rx, drops: drops)
        }
        return nil
    }

    static func freePort() throws -> UInt16 { try freePort(type: Int32(SOCK_DGRAM.rawValue)) }
    static func freeTCPPort() throws -> UInt16 { try freePort(type: Int32(SOCK_STREAM.rawValue)) }

    private static func freePort(type: Int32) throws -> UInt16 {
        let fd = Glibc.socket(AF_INET, type, 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard fd >= 0, bound else { throw BenchError("no free port on 127.0.0.1") }
        return UInt16(bigEndian: address.sin_port)
    }

    /// Sends every datagram to 127.0.0.1:`port`, pausing while the
    /// receiver's queue holds more than `highWater` bytes until it is below half that.
    static func send(_ datagrams: [[UInt8]], port: UInt16, highWater: Int = 1 << 20) throws {
        let fd = Glibc.socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { throw BenchError("socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = port.bigEndian
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        guard connected else { throw BenchError("connect: \(String(cString: strerror(errno)))") }
        for (i, datagram) in datagrams.enumerated() {
            if i % 16 == 0, let queue = try socket(port: port)?.receiveQueue, queue > highWater {
                while let q = try socket(port: port)?.receiveQueue, q > highWater / 2 { usleep(50) }
            }
            let sent = datagram.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, 0) }
            guard sent == datagram.count else { throw BenchError("send: \(String(cString: strerror(errno)))") }
        }
    }
}
