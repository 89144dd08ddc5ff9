import FlowForestCore
import FlowForestTestSupport
import Foundation
import Logging
@testable import PcapCapture
import Testing

/// Capture files whose record times cannot be a time: each of these trapped
/// `flowforest analyze` and `train` ("Negative value is not representable",
/// or an overflow past 2554). The file must read to its end with the bad
/// packet counted as malformed, or fail with a one-line error.
@Suite("Capture file timestamps")
struct CaptureFileTimestampTests {
    static func le32(_ v: UInt32) -> [UInt8] { withUnsafeBytes(of: v.littleEndian, Array.init) }
    static func le16(_ v: UInt16) -> [UInt8] { withUnsafeBytes(of: v.littleEndian, Array.init) }
    static func le64(_ v: UInt64) -> [UInt8] { withUnsafeBytes(of: v.littleEndian, Array.init) }

    static let frame: [UInt8] = {
        let b = PacketBuilder()
        return b.ethernet(etherType: 0x0800, payload: b.ipv4(src: PacketBuilder.a4, dst: PacketBuilder.b4, proto: 17,
                                                             l4: b.udp(sport: 5353, dport: 53, payload: 20)))
    }()
    static let goodSeconds: UInt32 = 1_764_063_455

    /// A classic pcap: a good packet, the hostile one, a good packet.
    static func classic(nanosecond: Bool, seconds: UInt32, fraction: UInt32) -> [UInt8] {
        var d = le32(nanosecond ? 0xA1B2_3C4D : 0xA1B2_C3D4) + le16(2) + le16(4) + le32(0) + le32(0) + le32(65535) + le32(1)
        for (s, f) in [(goodSeconds, UInt32(0)), (seconds, fraction), (goodSeconds + 1, UInt32(0))] {
            d += le32(s) + le32(f) + le32(UInt32(frame.count)) + le32(UInt32(frame.count)) + frame
        }
        return d
    }

    /// A pcapng section: one Ethernet interface (optionally with `if_tsresol`
    /// and `if_tsoffset`), then packets at the given raw times.
    static func pcapng(tsresol: UInt8? = nil, tsoffset: Int64? = nil, times: [UInt64]) -> [UInt8] {
        func block(_ type: UInt32, _ body: [UInt8]) -> [UInt8] {
            let padded = body + [UInt8](repeating: 0, count: (4 - body.count % 4) % 4)
            let length = UInt32(12 + padded.count)
            return le32(type) + le32(length) + padded + le32(length)
        }
        var d = block(0x0A0D_0D0A, le32(0x1A2B_3C4D) + le16(1) + le16(0) + le64(UInt64.max))
        var options: [UInt8] = []
        if let tsresol { options += le16(9) + le16(1) + [tsresol, 0, 0, 0] }
        if let tsoffset { options += le16(14) + le16(8) + le64(UInt64(bitPattern: tsoffset)) }
        if !options.isEmpty { options += le16(0) + le16(0) }
        d += block(1, le16(1) + le16(0) + le32(65535) + options)
        for t in times {
            d += block(6, le32(0) + le32(UInt32(t >> 32)) + le32(UInt32(t & 0xFFFF_FFFF))
                          + le32(UInt32(frame.count)) + le32(UInt32(frame.count)) + frame)
        }
        return d
    }

    enum Outcome { case read(CaptureStatistics), failed(String) }

    static func read(_ bytes: [UInt8]) async throws -> Outcome {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("flowforest-ts-\(getpid())-\(UUID().uuidString).pcap").path
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        var logger = Logger(label: "capture-file-test")
        logger.logLevel = .error
        var last = CaptureStatistics()
        do {
            for try await batch in PcapFileSource(path: path, logger: logger).batches() { last = batch.statistics }
        } catch {
            return .failed("\(error)")
        }
        return .read(last)
    }

    /// The two good packets are one flow; the hostile one is malformed, or the
    /// whole file is refused with a one-line error.
    static func expectSurvived(_ outcome: Outcome, _ name: String) {
        switch outcome {
        case .read(let s):
            #expect(s.malformed == 1, "\(name): \(s)")
            #expect(s.packetsAccounted == 2 && s.packetsSeen == 3, "\(name): \(s)")
        case .failed(let message):
            #expect(!message.isEmpty && !message.contains("\n"), "\(name): \(message)")
        }
    }

    @Test("classic pcap: ts_usec of 2^32-1, a fraction of a second or more",
          arguments: [(false, CaptureFileTimestampTests.goodSeconds, UInt32(0xFFFF_FFFF)), (false, CaptureFileTimestampTests.goodSeconds, UInt32(1_000_000)),
                      (true, CaptureFileTimestampTests.goodSeconds, UInt32(1_000_000_000)), (true, CaptureFileTimestampTests.goodSeconds, UInt32(0xFFFF_FFFF)),
                      (true, UInt32(0x8000_0000), UInt32(0xFFFF_FFFF))])
    func classicHostile(nanosecond: Bool, seconds: UInt32, fraction: UInt32) async throws {
        let outcome = try await Self.read(Self.classic(nanosecond: nanosecond, seconds: seconds, fraction: fraction))
        Self.expectSurvived(outcome, "\(nanosecond ? "ns" : "us") \(seconds).\(fraction)")
    }

    @Test("classic pcap seconds from 2^31 up (2038-01-19 to 2106, an unsigned field) are the times they say",
          arguments: [UInt32(0x8000_0000), UInt32(0xFFFF_FFFF)])
    func classicAfter2038(seconds: UInt32) async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("flowforest-2038-\(getpid())-\(seconds).pcap").path
        try Data(Self.classic(nanosecond: false, seconds: seconds, fraction: 7)).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        var logger = Logger(label: "capture-file-test")
        logger.logLevel = .error
        var records: [FlowRecord] = []
        var last = CaptureStatistics()
        for try await batch in PcapFileSource(path: path, logger: logger).batches() {
            records += batch.records.filter { $0.state == .ended }
            last = batch.statistics
        }
        #expect(last.malformed == 0 && last.packetsAccounted == 3, "\(last)")
        let late = UInt64(seconds) * 1_000_000_000 + 7_000
        #expect(records.contains { $0.firstSeenNs == late && $0.lastSeenNs == late }, "\(records.map(\.firstSeenNs))")
    }

    @Test("classic pcap with good times reads every packet (the fixture itself is sound)")
    func classicGood() async throws {
        guard case .read(let s) = try await Self.read(Self.classic(nanosecond: false, seconds: Self.goodSeconds, fraction: 5)) else {
            Issue.record("a good file failed"); return
        }
        #expect(s.malformed == 0 && s.packetsAccounted == 3)
    }

    @Test("pcapng: a negative if_tsoffset, and times of 2^64-1 at microsecond and nanosecond resolution",
          arguments: [(UInt8?.none, Int64?.some(-4_000_000_000)), (UInt8?.none, Int64?.some(Int64.min)),
                      (UInt8?.none, Int64?.some(Int64.max)), (UInt8?.some(9), Int64?.none), (UInt8?.none, Int64?.none)])
    func pcapngHostile(tsresol: UInt8?, tsoffset: Int64?) async throws {
        let unit: UInt64 = tsresol == 9 ? 1_000_000_000 : 1_000_000
        let good = UInt64(Self.goodSeconds) * unit
        // With an offset the middle packet is ordinary and the offset makes it
        // impossible; without one its raw time is.
        let hostile = tsoffset == nil ? UInt64.max : good
        let bytes = Self.pcapng(tsresol: tsresol, tsoffset: tsoffset, times: [good, hostile, good + unit])
        let outcome = try await Self.read(bytes)
        if tsoffset != nil, case .read(let s) = outcome {
            // The offset applies to every packet of the interface: all three are impossible.
            #expect(s.malformed == 3 && s.packetsAccounted == 0, "\(s)")
        } else {
            Self.expectSurvived(outcome, "pcapng resol \(String(describing: tsresol)) offset \(String(describing: tsoffset))")
        }
    }

    @Test("the checked conversion refuses what libpcap can hand over", arguments: [
        (Int64(-1), Int64(0)), (Int64(0), Int64(-1000)), (Int64(0), Int64(1_000_000_000)), (Int64.max, Int64(0)),
        (Int64(18_446_744_073), Int64(709_551_615)), (Timestamp.endSeconds, Int64(0)), (Int64.min, Int64.min)])
    func conversion(seconds: Int64, fraction: Int64) {
        #expect(timestampNs(seconds: seconds, fraction: fraction) == nil)
    }

    @Test("the checked conversion keeps every real time")
    func conversionGood() {
        #expect(timestampNs(seconds: 0, fraction: 0) == 0)
        #expect(timestampNs(seconds: Int64(Self.goodSeconds), fraction: 999_999_999) == UInt64(Self.goodSeconds) * 1_000_000_000 + 999_999_999)
        #expect(timestampNs(seconds: Timestamp.endSeconds - 1, fraction: 999_999_999) == Timestamp.endNs - 1)
    }

    /// A classic pcap file of UDP packets from a4 to b4 port 53, one source port per flow, written record by record.
    struct UDPFile {
        private var bytes = le32(0xA1B2_C3D4) + le16(2) + le16(4) + le32(0) + le32(0) + le32(65535) + le32(1)
        private(set) var packets = 0

        mutating func add(seconds: UInt32, micros: UInt32 = 0, sport: UInt16) {
            let b = PacketBuilder()
            let frame = b.ethernet(etherType: 0x0800, payload: b.ipv4(src: PacketBuilder.a4, dst: PacketBuilder.b4, proto: 17,
                                                                      l4: b.udp(sport: sport, dport: 53, payload: 20)))
            bytes += le32(seconds) + le32(micros) + le32(UInt32(frame.count)) + le32(UInt32(frame.count)) + frame
            packets += 1
        }

        /// The batches `PcapFileSource` reads from the file (written, read, removed).
        func batches(_ name: String) async throws -> [FlowBatch] {
            let path = FileManager.default.temporaryDirectory.appendingPathComponent("flowforest-\(name)-\(getpid()).pcap").path
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            defer { try? FileManager.default.removeItem(atPath: path) }
            var logger = Logger(label: "capture-file-test")
            logger.logLevel = .error
            var batches: [FlowBatch] = []
            for try await batch in PcapFileSource(path: path, logger: logger).batches() { batches.append(batch) }
            return batches
        }
    }

    @Test("one record stamped in 2106 amid a file's own times: polls go on after it and flows still end by their timeouts")
    func jumpAheadAndBack() async throws {
        // A new flow every 100 ms for 30 s (one source port each), the hostile record after 3 s.
        var file = UDPFile()
        for i in 0..<300 {
            file.add(seconds: Self.goodSeconds + UInt32(i / 10), micros: UInt32(i % 10) * 100_000, sport: UInt16(20000 + i))
            if i == 30 { file.add(seconds: 0xFFFF_FFFF, sport: 9_999) }
        }
        let batches = try await file.batches("jump")
        let fileEnd = UInt64(Self.goodSeconds + 30) * 1_000_000_000
        let afterJump = batches.dropLast().filter { $0.timeNs > UInt64(Self.goodSeconds + 3) * 1_000_000_000 && $0.timeNs <= fileEnd }
        #expect(afterJump.count >= 20, "polls after the jump: \(batches.map(\.timeNs))")
        // The 15 s idle timeout ends the flows of the file's first seconds while it is read, not only at its end.
        let idleEnded = batches.dropLast().flatMap(\.records).filter { $0.state == .ended && $0.lastSeenNs < fileEnd }
        #expect(idleEnded.count >= 40, "\(idleEnded.count) flows ended before the file did")
        // The record stamped in 2106 idles from the file's clock too, rather than stay until the file ends.
        #expect(batches.dropLast().flatMap(\.records).contains { $0.state == .ended && $0.lastSeenNs > fileEnd })
        #expect(batches.last?.statistics.packetsAccounted == 301)
    }

    @Test("times alternating between two clocks 3 s apart: polls stay few (each walks every open flow), every packet is counted")
    func alternatingClocks() async throws {
        // 2,000 flows open at the file's start, then 4,000 packets stamped 10 s and 7 s later in turn:
        // 7 s is more than two polls behind 10 s, so every other packet steps the clock back.
        var file = UDPFile()
        for i in 0..<2_000 { file.add(seconds: Self.goodSeconds, sport: UInt16(10_000 + i)) }
        for i in 0..<4_000 { file.add(seconds: Self.goodSeconds + (i % 2 == 0 ? 10 : 7), sport: 9_000) }
        let batches = try await file.batches("alternate")
        // A poll at most once per an eighth of the open flows' packets after
        // a step back; a poll every other packet (2,000) before.
        #expect(batches.count < 40, "\(batches.count) polls")
        #expect(batches.last?.statistics.packetsAccounted == 6_000)
        // The file ends at its own clock, not a later one.
        #expect(batches.last?.timeNs ?? 0 <= UInt64(Self.goodSeconds + 10) * 1_000_000_000)
    }

    @Test("a flow whose first packet is stamped in 2106, then lasting 200 s at the file's own times, still gets its interim records")
    func farFutureFirstPacket() async throws {
        var file = UDPFile()
        file.add(seconds: 0xFFFF_FFFF, sport: 5000)
        for i in 0..<200 { file.add(seconds: Self.goodSeconds + UInt32(i), sport: 5000) }
        let records = try await file.batches("first-ahead").flatMap(\.records)
        // The 60 s active timeout: interim records while the 200 s run, not only its end.
        let interim = records.filter { $0.state == .interim }
        #expect(interim.count >= 2, "\(records.map(\.state))")
        #expect(records.last?.state == .ended && records.last?.packets == 201)
    }

    @Test("a record stamped in 2106 every ten packets of a file's own minute: the clock still follows the file, flows still end by their timeouts")
    func periodicFarFuture() async throws {
        // A new flow every 100 ms for 60 s; after every tenth, a record stamped in 2106.
        var file = UDPFile()
        for i in 0..<600 {
            file.add(seconds: Self.goodSeconds + UInt32(i / 10), micros: UInt32(i % 10) * 100_000, sport: UInt16(20_000 + i))
            if i % 10 == 9 { file.add(seconds: 0xFFFF_FFFF, sport: 9_999) }
        }
        let batches = try await file.batches("periodic")
        let fileEnd = UInt64(Self.goodSeconds + 60) * 1_000_000_000
        // The 15 s idle timeout ends the first seconds' flows while the file is read.
        let idleEnded = batches.dropLast().flatMap(\.records).filter { $0.state == .ended && $0.lastSeenNs < fileEnd && $0.sourcePort != 9_999 }
        #expect(idleEnded.count >= 200, "\(idleEnded.count) flows ended before the file did")
        #expect(batches.last?.statistics.packetsAccounted == UInt64(file.packets))
        #expect(batches.count < 200, "\(batches.count) polls")
    }
}
