import FlowForestCore
import FlowForestIPFIX
import FlowForestTestSupport
import Foundation
import Logging
import MetricsTestKit
import Testing

/// IPFIX over TCP counts a record as sent once the collector's host has
/// acknowledged it, and as dropped when the connection goes down first:
/// a reset throws away the kernel's send queue, so counting at write would
/// claim records no collector received.
@Suite("IPFIX export over TCP", .serialized)
struct TCPExportTests {
    /// A collector in Python: reads the stream (`all`: to its end; `cut`:
    /// with a small receive buffer, N bytes, then a reset), then prints the
    /// data records in the complete messages it read.
    static let collector = #"""
import socket, struct, sys
mode, cut = sys.argv[1], int(sys.argv[2])
l = socket.socket()
# cut: a small buffer, so little is acknowledged unread; all: the largest,
# so the kernel acknowledges everything even while this process is starved.
l.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096 if mode == "cut" else 1 << 22)
l.bind(("127.0.0.1", 0)); l.listen(1)
print(l.getsockname()[1], flush=True)
c, _ = l.accept(); c.settimeout(60)
data = b""
while mode == "all" or len(data) < cut:
    b = c.recv(65536 if mode == "all" else min(65536, cut - len(data)))
    if not b: break
    data += b
rcvbuf = c.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
if mode == "cut":
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close(); l.close()
lengths, records, off = {}, 0, 0
while off + 16 <= len(data):
    length = struct.unpack("!H", data[off + 2:off + 4])[0]
    if length < 16 or off + length > len(data): break
    s = off + 16
    while s + 4 <= off + length:
        sid, slen = struct.unpack("!HH", data[s:s + 4])
        if sid == 2:
            t = s + 4
            while t + 4 <= s + slen:
                tid, count = struct.unpack("!HH", data[t:t + 4]); t += 4; size = 0
                for _ in range(count):
                    fid, flen = struct.unpack("!HH", data[t:t + 4]); t += 8 if fid & 0x8000 else 4; size += flen
                lengths[tid] = size
        elif sid >= 256:
            records += (slen - 4) // lengths[sid]
        s += slen
    off += length
print("records", records, "rcvbuf", rcvbuf, flush=True)
"""#

    /// The collector's count of data records received, and its receive buffer.
    static func received(_ server: ScriptServer) -> (records: Int, rcvbuf: Int) {
        let report = server.report()
        return (server.value("records", in: report), server.value("rcvbuf", in: report))
    }

    /// `count` one-direction flows: one uniflow record each.
    static func records(_ count: Int) -> [FlowRecord] {
        (0..<count).map { flow(id: UInt64($0), sport: UInt16(10_000 + $0 % 50_000), fwd: (3, 300), rev: (0, 0)) }
    }

    static func export(_ count: Int, to port: Int, metrics: TestMetrics) throws {
        var logger = Logger(label: "tcp-export")
        logger.logLevel = .critical
        let exporter = try IPFIXExporter(destination: ExportDestination("tcp://127.0.0.1:\(port)"), metricsFactory: metrics, logger: logger)
        exporter.export(records(count), wait: true)
        exporter.finish()
    }

    static func counter(_ metrics: TestMetrics, _ label: String, _ port: Int) throws -> Int64 {
        try metrics.expectCounter(label, [("collector", "tcp://127.0.0.1:\(port)")]).totalValue
    }

    @Test("a collector that reads everything: every record counted sent, none dropped")
    func reads() throws {
        let server = try ScriptServer(Self.collector, arguments: ["all", "0"])
        defer { server.stop() }
        let port = server.port
        let metrics = TestMetrics()
        // About 220 kB: within the collector's receive buffer, however slowly it reads.
        try Self.export(5_000, to: port, metrics: metrics)
        #expect(Self.received(server).records == 5_000)
        #expect(try Self.counter(metrics, "flowforest_export_records_total", port) == 5_000)
        #expect(try Self.counter(metrics, "flowforest_export_dropped_records_total", port) == 0)
    }

    @Test("a collector that resets after a little: records it never got are dropped, not sent")
    func resets() throws {
        let server = try ScriptServer(Self.collector, arguments: ["cut", "100000"])
        defer { server.stop() }
        let port = server.port
        let metrics = TestMetrics()
        try Self.export(50_000, to: port, metrics: metrics)
        let (got, rcvbuf) = Self.received(server)
        let sent = try Self.counter(metrics, "flowforest_export_records_total", port)
        let dropped = try Self.counter(metrics, "flowforest_export_dropped_records_total", port)
        #expect(sent + dropped == 50_000, "\(sent) sent + \(dropped) dropped")
        // Acknowledged is what the collector read, give or take what its
        // receive window held: bytes in its buffer unread (acknowledged, never
        // read) or read but not yet acknowledged when the reset went out (a
        // delayed ACK; counted dropped, as the exporter cannot know). Records
        // are 40 bytes or more, so that window holds at most rcvbuf / 40.
        let window = rcvbuf / 40 + 50
        #expect(got > 1000 && abs(Int(sent) - got) <= window,
                "\(sent) counted sent; the collector read \(got) with a \(rcvbuf)-byte receive buffer")
        #expect(sent < 50_000 - window, "a reset after \(got) records read left nothing counted dropped")
    }
}
