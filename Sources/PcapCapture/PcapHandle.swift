import CPcap
import FlowForestCore
import Foundation

/// Owns one `pcap_t`. Created on the caller's thread, then used only by the
/// capture thread that reads from it, and closed by that thread.
final class PcapHandle: @unchecked Sendable {
    // @unchecked: the pointer is handed once to the capture thread and never shared after.
    let pointer: OpaquePointer
    let name: String
    let linkType: LinkType

    private init(pointer: OpaquePointer, name: String) throws {
        self.pointer = pointer
        self.name = name
        let dlt = pcap_datalink(pointer)
        guard let type = LinkType(rawValue: dlt) else {
            pcap_close(pointer)
            throw PcapError.unsupportedLinkType(name, dlt)
        }
        linkType = type
    }

    /// The stdio buffer of a file's `FILE`, freed after `pcap_close` closed the file.
    private var fileBuffer: UnsafeMutableRawPointer?

    deinit {
        pcap_close(pointer)
        free(fileBuffer)
    }

    /// libpcap reads a file through stdio, whose default buffer (4 KiB)
    /// cost a `read` for every 4 KiB: about a fifth of `analyze`'s time on
    /// a large file went to those calls.
    static let fileBufferBytes = 1 << 20

    /// Opens a pcap or pcapng file with nanosecond timestamps.
    static func openFile(_ path: String) throws -> PcapHandle {
        guard FileManager.default.fileExists(atPath: path) else { throw PcapError.fileNotFound(path) }
        guard let file = fopen(path, "rb") else { throw PcapError.readFailed(path, "\(path): \(String(cString: strerror(errno)))") }
        let buffer = malloc(fileBufferBytes)
        setvbuf(file, buffer?.assumingMemoryBound(to: CChar.self), _IOFBF, fileBufferBytes)
        var errbuf = [CChar](repeating: 0, count: Int(PCAP_ERRBUF_SIZE))
        guard let p = pcap_fopen_offline_with_tstamp_precision(file, UInt32(PCAP_TSTAMP_PRECISION_NANO), &errbuf) else {
            fclose(file)
            free(buffer)
            let message = String(decoding: errbuf.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if message.contains("truncated") { throw PcapError.truncatedFile(path, message) }
            if message.contains("format") || message.contains("magic") || message.contains("pcapng") {
                throw PcapError.notACaptureFile(path, message)
            }
            throw PcapError.readFailed(path, message)
        }
        do {
            let handle = try PcapHandle(pointer: p, name: path)
            handle.fileBuffer = buffer
            return handle
        } catch {
            free(buffer)  // the failed init closed the file
            throw error
        }
    }

    /// Opens a live interface: large kernel buffer, immediate mode off (the
    /// kernel batches packets into blocks, which is what keeps drops low),
    /// nanosecond timestamps where the kernel offers them.
    static func openLive(_ interface: String, snapLength: Int32, bufferBytes: Int32, promiscuous: Bool, timeoutMs: Int32) throws -> PcapHandle {
        var errbuf = [CChar](repeating: 0, count: Int(PCAP_ERRBUF_SIZE))
        guard if_nametoindex(interface) != 0 else { throw PcapError.noSuchInterface(interface) }
        guard let p = pcap_create(interface, &errbuf) else {
            throw PcapError.activateFailed(interface, String(decoding: errbuf.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        pcap_set_snaplen(p, snapLength)
        pcap_set_buffer_size(p, bufferBytes)
        pcap_set_promisc(p, promiscuous ? 1 : 0)
        pcap_set_timeout(p, timeoutMs)
        pcap_set_immediate_mode(p, 0)
        _ = pcap_set_tstamp_precision(p, Int32(PCAP_TSTAMP_PRECISION_NANO))
        let status = pcap_activate(p)
        if status < 0 {
            let detail = String(cString: pcap_geterr(p))
            pcap_close(p)
            switch status {
            case PCAP_ERROR_NO_SUCH_DEVICE: throw PcapError.noSuchInterface(interface)
            case PCAP_ERROR_PERM_DENIED: throw PcapError.permissionDenied(interface)
            default: throw PcapError.activateFailed(interface, detail)
            }
        }
        return try PcapHandle(pointer: p, name: interface)
    }

    /// The kernel's counts so far: packets that passed its filter (read or
    /// still in the ring, plus those dropped), dropped because the ring was
    /// full, and dropped by the interface.
    func counts() -> (received: UInt64, capture: UInt64, interface: UInt64) {
        var stats = pcap_stat()
        guard pcap_stats(pointer, &stats) == 0 else { return (0, 0, 0) }
        return (UInt64(stats.ps_recv), UInt64(stats.ps_drop), UInt64(stats.ps_ifdrop))
    }

    var lastError: String { String(cString: pcap_geterr(pointer)) }
}

/// Nanoseconds since the epoch from a pcap header opened with nanosecond
/// precision, or `nil` when the time is impossible.
///
/// libpcap copies a file's record header into a `timeval` as is: a classic
/// pcap `ts_sec` of 0x80000000 or more (2038-01-19 to 2106) arrives as a
/// negative `tv_sec`, which `classic` (a classic pcap file, whose seconds
/// are an unsigned 32-bit field) reads back as the time it is; the fraction
/// may be any 32-bit value (times 1000 for a microsecond file), and a pcapng
/// time of 2^64-1 or a negative `if_tsoffset` gives a `tv_sec` far outside
/// the epoch. Such a packet is malformed, never a reason to trap.
@inline(__always)
func timestampNs(_ header: UnsafePointer<pcap_pkthdr>, classic: Bool = false) -> UInt64? {
    var seconds = Int64(header.pointee.ts.tv_sec)
    if classic && seconds < 0 && seconds >= -(1 << 31) { seconds += 1 << 32 }
    return timestampNs(seconds: seconds, fraction: Int64(header.pointee.ts.tv_usec))
}

/// Seconds and nanoseconds to ns since the epoch, `nil` unless the fraction
/// is below a second and the result is before ``Timestamp/endNs``.
@inline(__always)
func timestampNs(seconds: Int64, fraction: Int64) -> UInt64? {
    guard seconds >= 0, fraction >= 0, fraction < 1_000_000_000 else { return nil }
    let (whole, overflow) = UInt64(seconds).multipliedReportingOverflow(by: 1_000_000_000)
    guard !overflow else { return nil }
    let (ns, carry) = whole.addingReportingOverflow(UInt64(fraction))
    guard !carry, ns < Timestamp.endNs else { return nil }
    return ns
}

/// Wall-clock time, ns since the epoch.
func wallClockNs() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return timestampNs(seconds: Int64(ts.tv_sec), fraction: Int64(ts.tv_nsec)) ?? 0
}
