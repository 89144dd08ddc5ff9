import FlowForestCore
import Foundation

/// `analyze`'s ended flows, each written in its output form to a temporary
/// file as it ends, and read back in first-seen order once the file is
/// done. Memory grows by one 32-byte entry a flow (its sort key and place in
/// the file), not by its record and text (several hundred bytes), so a
/// capture of millions of flows lists them all. The file is unlinked as soon
/// as it is created: nothing is left behind, however the run ends.
final class FlowSpool {
    private struct Entry {
        var firstSeenNs: UInt64
        var id: UInt64
        var offset: UInt64
        var length: UInt32
    }

    private let fd: Int32
    private var entries: [Entry] = []
    private var pending: [UInt8] = []
    private var written: UInt64 = 0

    /// Flows spooled.
    var count: Int { entries.count }

    init() throws {
        let directory = NSTemporaryDirectory().hasSuffix("/") ? NSTemporaryDirectory() : NSTemporaryDirectory() + "/"
        var path = Array((directory + "flowforest-analyze-XXXXXX").utf8CString)
        fd = mkstemp(&path)
        guard fd >= 0 else {
            throw FlowSpoolError("cannot create a temporary file in \(directory) (set TMPDIR to a writable directory): \(String(cString: strerror(errno)))")
        }
        unlink(path)
    }

    deinit { close(fd) }

    /// Keeps `text`, the output of `flow`.
    func append(_ flow: FlowRecord, text: [UInt8]) throws {
        entries.append(Entry(firstSeenNs: flow.firstSeenNs, id: flow.id, offset: written + UInt64(pending.count), length: UInt32(text.count)))
        pending += text
        if pending.count >= 1 << 20 { try flush() }
    }

    /// Hands every flow's text to `body`, in first-seen order (then by id).
    func forEachInOrder(_ body: (ArraySlice<UInt8>) throws -> Void) throws {
        try flush()
        entries.sort { ($0.firstSeenNs, $0.id) < ($1.firstSeenNs, $1.id) }
        var buffer = [UInt8](repeating: 0, count: 4096)
        for e in entries {
            let n = Int(e.length)
            if buffer.count < n { buffer = [UInt8](repeating: 0, count: n) }
            let read = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, n, off_t(e.offset)) }
            guard read == n else { throw FlowSpoolError("reading the temporary flow file back: \(String(cString: strerror(errno)))") }
            try body(buffer[0..<n])
        }
    }

    private func flush() throws {
        var done = 0
        while done < pending.count {
            let n = pending[done...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw FlowSpoolError("writing the temporary flow file: \(String(cString: strerror(errno)))") }
            done += n
        }
        written += UInt64(pending.count)
        pending.removeAll(keepingCapacity: true)
    }
}

struct FlowSpoolError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
