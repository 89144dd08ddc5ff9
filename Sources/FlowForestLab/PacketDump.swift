public import Foundation

/// tcpdump writing an interface's packets to a pcap file inside a lab
/// namespace, started and stopped on conditions.
///
/// Without immediate mode libpcap hands packets over a ring block at a time
/// (up to its timeout), and packets still in an open block when tcpdump is
/// interrupted are never written, though tcpdump counts them as "received by
/// filter". So the dump runs in immediate mode with per-packet flushing, and
/// ``finish(expecting:timeout:)`` stops it only once the file holds every
/// packet the caller expects.
public final class PacketDump: @unchecked Sendable {
    // @unchecked: all stored properties are immutable after init; Process is thread-safe for what is used.
    public let file: URL
    /// tcpdump's standard error: "listening on", and its counts at exit.
    public let log: URL
    private let lab: NetworkLab
    private let process: Process

    /// Starts tcpdump on `interface` in `namespace` and returns once it is
    /// listening. - Parameter snapLength: bytes kept per packet, 0 for all.
    public init(lab: NetworkLab, namespace: String, interface: String, file: URL, snapLength: Int = 0,
                bufferKiB: Int = 32768, timeout: Double = 15) throws {
        self.lab = lab
        self.file = file
        log = file.appendingPathExtension("log")
        process = try lab.spawn(in: namespace, [
            "tcpdump", "-i", interface, "-n", "--immediate-mode", "-U", "-B", "\(bufferKiB)", "-s", "\(snapLength)",
            "-w", file.path,
        ], stderr: log)
        let (process, log) = (self.process, self.log)
        try Wait.blockingUntil("tcpdump to listen on \(interface)", timeout: timeout,
                       detail: { Self.tail(log) }) {
            guard process.isRunning else { throw LabError.failed(command: ["tcpdump"], status: process.terminationStatus, stderr: Self.tail(log)) }
            return Wait.file(log, contains: "listening on")
        }
    }

    /// Complete packet records in the file so far (a record being written is not counted).
    public var packetsWritten: Int { (try? Self.countRecords(Data(contentsOf: file))) ?? 0 }

    /// Waits until the file holds at least `expected()` packets (re-read each
    /// poll, as interface counters are), then stops tcpdump with SIGINT and
    /// checks that it exited cleanly having dropped nothing.
    public func finish(expecting expected: () throws -> Int, timeout: Double = 20) throws {
        var want = 0
        try Wait.blockingUntil("tcpdump to write every packet to \(file.lastPathComponent)", timeout: timeout,
                       detail: { "\(packetsWritten) of \(want) written" }) {
            want = try expected()
            return packetsWritten >= want
        }
        let status = lab.stop(process, signal: SIGINT)
        let text = Self.tail(log)
        let dropped = text.split(separator: "\n").contains { $0.trimmingCharacters(in: .whitespaces) == "0 packets dropped by kernel" }
        guard status == 0, dropped else {
            throw LabError.failed(command: ["tcpdump", "-w", file.path], status: status, stderr: text)
        }
    }

    /// Counts whole records of a classic pcap file (either byte order).
    static func countRecords(_ data: Data) -> Int {
        guard data.count >= 24 else { return 0 }
        let bytes = [UInt8](data)
        let swapped = bytes[0] == 0xa1 || bytes[0] == 0xa2  // written big-endian
        func u32(_ at: Int) -> Int {
            let b = bytes[at..<at + 4].map(Int.init)
            return swapped ? (b[0] << 24 | b[1] << 16 | b[2] << 8 | b[3]) : (b[3] << 24 | b[2] << 16 | b[1] << 8 | b[0])
        }
        var offset = 24, count = 0
        while offset + 16 <= bytes.count {
            let next = offset + 16 + u32(offset + 8)
            guard next <= bytes.count else { break }
            count += 1
            offset = next
        }
        return count
    }

    private static func tail(_ url: URL) -> String {
        String(((try? String(contentsOf: url, encoding: .utf8)) ?? "").suffix(600)).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
