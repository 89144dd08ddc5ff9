public import Foundation

/// pmacct's NetFlow/IPFIX collector `nfacctd` (Debian's pmacct) on a loopback
/// UDP port, with its `print` plugin summing packets and bytes per direction
/// ("proto src sport dst dport") into a CSV file.
///
/// nfacctd's core process reads the socket and hands records to the print
/// plugin through a queue. Two things make "listening" and "socket drained"
/// the wrong conditions to wait on:
/// - records the core passes on before the plugin is in its loop are not
///   seen by it until the daemon exits (or never), although the core logs
///   that it is waiting for data and the socket is bound; so readiness is a
///   probe record (its own observation domain, in 192.0.2.0/24) sent until
///   the plugin has written it;
/// - on SIGINT (pmacct blocks SIGTERM) the plugin writes its cache and exits
///   without reading what is still queued; so the plugin writes every second,
///   appending (each write holds only what came since the last), and
///   ``finish(expectingPackets:timeout:)`` stops the daemon once the file's
///   packets add up to what was sent.
public final class Nfacctd {
    public let port: UInt16
    private let csv: URL
    private let peer: PeerProcess
    /// The probe's direction key, left out of the sums.
    static let probeKey = "17 192.0.2.1 1 192.0.2.2 2"

    /// Starts nfacctd in `directory` and returns once its plugin writes what arrives.
    public init(directory: URL, timeout: Double = 20) throws {
        port = try PeerProcess.freeUDPPort()
        csv = directory.appendingPathComponent("nfacctd.csv")
        let config = directory.appendingPathComponent("nfacctd.conf")
        try """
            daemonize: false
            nfacctd_ip: 127.0.0.1
            nfacctd_port: \(port)
            nfacctd_pipe_size: 8388608
            plugins: print[flows]
            aggregate[flows]: proto, src_host, src_port, dst_host, dst_port
            print_output[flows]: csv
            print_output_file[flows]: \(csv.path)
            print_output_file_append[flows]: true
            print_refresh_time[flows]: 1

            """.write(to: config, atomically: true, encoding: .utf8)
        peer = try PeerProcess.start("/usr/sbin/nfacctd", ["-f", config.path], log: directory.appendingPathComponent("nfacctd.log"))
        do {
            try peer.waitForLog("waiting for NetFlow/IPFIX data on 127.0.0.1:\(port)")
            try waitForProbe(timeout: timeout)
        } catch {
            peer.stop(signal: SIGINT)
            throw error
        }
    }

    private func written() -> DirectionTotals {
        (try? String(contentsOf: csv, encoding: .utf8)).flatMap { try? Self.totals($0) } ?? [:]
    }

    /// Sends the probe every half second until the plugin's file holds it.
    private func waitForProbe(timeout: Double) throws {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = port.bigEndian
        let message = Self.probeMessage()
        let deadline = Date().addingTimeInterval(timeout)
        var nextSend = Date()
        while written()[Self.probeKey] == nil {
            guard peer.process.isRunning, Date() < deadline else {
                throw PeerError("nfacctd's print plugin wrote no probe record within \(timeout) s: \(peer.output.suffix(800))")
            }
            if Date() >= nextSend {
                _ = withUnsafePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        sendto(fd, message, message.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                    }
                }
                nextSend = Date().addingTimeInterval(0.5)
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
    }

    /// One IPFIX message, observation domain 0xFFFF: a template (source and
    /// destination IPv4 address and port, protocol, packets, octets) and one
    /// record of 1 packet, 1 byte, UDP 192.0.2.1:1 -> 192.0.2.2:2.
    static func probeMessage() -> [UInt8] {
        func be16(_ v: Int) -> [UInt8] { [UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }
        func be32(_ v: Int) -> [UInt8] { be16(v >> 16) + be16(v & 0xFFFF) }
        let fields = [(8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (2, 8), (1, 8)]
        let template = be16(2) + be16(4 + 4 + fields.count * 4) + be16(256) + be16(fields.count) + fields.flatMap { be16($0.0) + be16($0.1) }
        let record = [192, 0, 2, 1, 192, 0, 2, 2] + be16(1) + be16(2) + [17] + be32(0) + be32(1) + be32(0) + be32(1)
        let data = be16(256) + be16(4 + record.count) + record
        let body = template + data
        return be16(10) + be16(16 + body.count) + be32(Int(Date().timeIntervalSince1970)) + be32(0) + be32(0xFFFF) + body
    }

    /// Waits until the plugin's file holds `expectingPackets` packets besides
    /// the probe (or `timeout` passes: the sums are then returned as they
    /// are, for the caller to compare), stops nfacctd with SIGINT and returns
    /// its sums per direction (``DirectionTotals``).
    public func finish(expectingPackets: UInt64, timeout: Double = 20) throws -> DirectionTotals {
        let deadline = Date().addingTimeInterval(timeout)
        func sums() -> DirectionTotals { written().filter { $0.key != Self.probeKey } }
        while Date() < deadline, peer.process.isRunning, sums().values.reduce(0, { $0 + $1.packets }) < expectingPackets {
            Thread.sleep(forTimeInterval: 0.05)
        }
        peer.stop(signal: SIGINT)
        let status = peer.process.waitUntilExit()
        guard status == 0 else { throw PeerError("nfacctd exited \(status): \(peer.output.suffix(800))") }
        return sums()
    }

    /// Stops nfacctd if it still runs (on a failed test).
    public func stop() { peer.stop(signal: SIGINT) }

    public var log: String { peer.output }

    /// The CSV's rows summed by key, columns found by the title row (pmacct
    /// orders them itself, not as `aggregate` lists them).
    static func totals(_ text: String) throws -> DirectionTotals {
        let lines = text.split(separator: "\n").map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
        guard let title = lines.first else { return [:] }
        let names = ["PROTOCOL", "SRC_IP", "SRC_PORT", "DST_IP", "DST_PORT", "PACKETS", "BYTES"]
        let columns = try names.map { name in
            guard let i = title.firstIndex(of: name) else { throw PeerError("nfacctd's CSV has no \(name) column: \(title)") }
            return i
        }
        var totals: DirectionTotals = [:]
        for row in lines.dropFirst() where row != title {
            let f = try columns.map { i in
                guard i < row.count else { throw PeerError("nfacctd wrote a short row: \(row)") }
                return row[i]
            }
            guard let packets = UInt64(f[5]), let bytes = UInt64(f[6]) else { throw PeerError("nfacctd wrote an unexpected row: \(row)") }
            guard let proto = Direction.protocolNumber(f[0]) else { throw PeerError("nfacctd wrote an unknown protocol: \(row)") }
            let key = Direction.key(proto, f[1], f[2], f[3], f[4])
            totals[key, default: (0, 0)].packets += packets
            totals[key, default: (0, 0)].bytes += bytes
        }
        return totals
    }
}
