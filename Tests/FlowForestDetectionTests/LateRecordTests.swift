import FlowForestCore
@testable import FlowForestDetection
import Foundation
import Testing

/// Flows reported long after their packets passed, as an exporter's records
/// arrive (after its idle or active timeout): their volume counts, as of when
/// it passed.
@Suite("Detection: flows reported late")
struct LateRecordTests {
    static let client = IPAddress("198.18.0.10")!
    static let outside = IPAddress("198.19.0.20")!
    static let t0: UInt64 = 1_800_000_000_000_000_000
    static let second: UInt64 = 1_000_000_000

    /// One ended TCP flow from `client`, first to last packet, `bytes` sent.
    static func flow(id: UInt64, from client: IPAddress = client, first: UInt64, last: UInt64, bytes: UInt64) -> FlowRecord {
        var forward = DirectionStats()
        forward.packets = bytes / 1_000
        forward.bytes = bytes
        forward.firstSeenNs = first
        forward.lastSeenNs = last
        forward.flags = [.syn, .ack, .fin]
        var reverse = DirectionStats()
        reverse.packets = bytes / 2_000
        reverse.bytes = bytes / 50
        reverse.firstSeenNs = first + 1_000_000
        reverse.lastSeenNs = last
        reverse.flags = [.syn, .ack, .fin]
        return FlowRecord(id: id, sourceAddress: client, destinationAddress: outside, sourcePort: UInt16(40_000 + id % 1000),
                          destinationPort: 443, ipProtocol: 6, interfaceName: "198.18.0.1%3", forward: forward, reverse: reverse,
                          state: .ended, endReason: .idle)
    }

    /// The client's bytes sent in each window after a poll at `now` of `records`.
    static func bytesSent(_ tracker: inout HostTracker, _ ledger: inout FlowLedger, _ records: [FlowRecord], now: UInt64,
                          of host: IPAddress = client, reporting: FlowReporting = .delayed) -> [Double] {
        // Delayed by default: these are an exporter's records; a first record is read the same either way.
        let changes = ledger.apply(records, origin: "collector", nowNs: now, reporting: reporting)
        let vectors = tracker.update(changes, flows: ledger, nowNs: now)
        guard let v = vectors.first(where: { $0.kind == .host && $0.address == host }) else { return [] }
        return FeatureSchema.halfLives.map { w in
            let column = FeatureSchema.index("bytes_sent_\(w.suffix)", in: .host)
            return FeatureSchema.host[column].display(v.vector[column])
        }
    }

    @Test("40 MB reported 20 s after a 40 s transfer: the windows hold what their decay left of it, not nothing and not a 1 s burst")
    func lateTransferCounts() throws {
        var tracker = HostTracker(), ledger = FlowLedger()
        // The tracker's first poll: an ordinary short flow of another host.
        _ = Self.bytesSent(&tracker, &ledger, [Self.flow(id: 1, from: IPAddress("198.18.0.11")!, first: Self.t0 - Self.second / 2,
                                                         last: Self.t0 - Self.second / 4, bytes: 5_000)], now: Self.t0)
        let (first, last, now) = (Self.t0 + 60 * Self.second, Self.t0 + 100 * Self.second, Self.t0 + 120 * Self.second)
        let windows = Self.bytesSent(&tracker, &ledger, [Self.flow(id: 2, first: first, last: last, bytes: 40_000_000)], now: now)
        try #require(windows.count == 3, "the client has a vector")
        // Each packet's bytes as the window would hold them had they been
        // counted when they passed: the mean of 2^(-age/h) over the transfer.
        for (w, h) in [1.0, 10, 100].enumerated() {
            let expected = 40_000_000 * stride(from: 20.0, to: 60, by: 0.001).reduce(0) { $0 + exp2(-$1 / h) } / 40_000
            #expect(abs(windows[w] - expected) <= max(1, expected * 0.01), "window \(w): \(windows[w]) vs \(expected)")
        }
        #expect(windows[2] > 25_000_000, "the 100 s window holds most of it: \(windows)")
        #expect(windows[0] < 10, "next to nothing of it in the last second: \(windows)")
    }

    @Test("a transfer reported as it ends, 5 s after its first packet, keeps its last seconds in the 1 s window")
    func justEnded() throws {
        var tracker = HostTracker(), ledger = FlowLedger()
        _ = Self.bytesSent(&tracker, &ledger, [], now: Self.t0)
        let now = Self.t0 + 30 * Self.second
        let windows = Self.bytesSent(&tracker, &ledger, [Self.flow(id: 3, first: now - 5 * Self.second, last: now, bytes: 10_000_000)],
                                     now: now)
        try #require(windows.count == 3)
        // 2 MB a second for 5 s: the 1 s window holds about 2 MB / ln 2 of it.
        #expect(windows[0] > 2_000_000 && windows[0] < 3_500_000, "\(windows)")
        #expect(windows[2] > 9_000_000 && windows[2] <= 10_000_000, "\(windows)")
    }

    @Test("a flow that began before the tracker's first poll is history: no volume")
    func olderThanTrackerIsHistory() throws {
        var tracker = HostTracker(), ledger = FlowLedger()
        let windows = Self.bytesSent(&tracker, &ledger, [Self.flow(id: 4, first: Self.t0 - 60 * Self.second,
                                                                  last: Self.t0 - Self.second, bytes: 40_000_000)], now: Self.t0)
        #expect(windows == [0, 0, 0], "\(windows)")
    }

    @Test("a flow quiet for eleven minutes at a source with hour-long timeouts is held: its keep-alive does not bring its total again")
    func quietOpenFlowCountedOnce() throws {
        // A source that may go an hour without reporting an open flow.
        let silence = 3_600 * Self.second
        var tracker = HostTracker(), ledger = FlowLedger(longestSilenceNs: silence)
        #expect(ledger.forgetAfterNs == 2 * silence)
        _ = Self.bytesSent(&tracker, &ledger, [], now: Self.t0)
        // 10 GB in its first minute, reported as it goes.
        let start = Self.t0 + Self.second
        var open = Self.flow(id: 6, first: start, last: start + 60 * Self.second, bytes: 10_000_000_000)
        open.state = .active
        open.endReason = nil
        let first = Self.bytesSent(&tracker, &ledger, [open], now: start + 61 * Self.second)
        #expect(first[2] > 1e9, "counted when it came: \(first)")
        // Eleven quiet minutes, polled every 10 s; then a keep-alive brings the running total.
        let quietEnd = start + 61 * Self.second + 660 * Self.second
        for t in stride(from: start + 71 * Self.second, through: quietEnd, by: Int(10 * Self.second)) {
            _ = Self.bytesSent(&tracker, &ledger, [], now: t)
        }
        #expect(ledger[open.id] != nil, "the ledger still holds the quiet flow")
        var back = open
        back.forward.packets += 1
        back.forward.bytes += 60
        back.forward.lastSeenNs = quietEnd + Self.second
        let again = Self.bytesSent(&tracker, &ledger, [back], now: quietEnd + 2 * Self.second)
        // What the 100 s window still holds of the first count, decayed over 662 s, and the keep-alive's 60 bytes.
        let left = first[2] * exp2(-662.0 / 100)
        #expect(again[0] < 1e3 && again[1] < 1e3 && abs(again[2] - left) < left * 0.01 + 1e3,
                "the 10 GB are not counted a second time: \(again), \(left) left of the first count")
    }

    @Test("a piece 30 minutes long (an exporter's active timeout) counts the share its span leaves in each window, not nothing")
    func longPieceCounts() throws {
        var tracker = HostTracker(), ledger = FlowLedger()
        _ = Self.bytesSent(&tracker, &ledger, [], now: Self.t0)
        // The tracker has run an hour; the piece covers the last 30 minutes, reported 5 s after.
        let now = Self.t0 + 3_600 * Self.second
        let (first, last) = (now - 1_805 * Self.second, now - 5 * Self.second)
        let windows = Self.bytesSent(&tracker, &ledger, [Self.flow(id: 7, first: first, last: last, bytes: 1_800_000_000)], now: now)
        try #require(windows.count == 3)
        for (w, h) in [1.0, 10, 100].enumerated() {
            // 1 MB a second from 1805 s to 5 s ago, each second decayed by its age.
            let expected = 1_000_000 * stride(from: 5.0, to: 1_805, by: 0.01).reduce(0) { $0 + exp2(-$1 / h) } / 100
            #expect(abs(windows[w] - expected) <= max(1, expected * 0.01), "window \(w): \(windows[w]) vs \(expected)")
        }
        #expect(windows[2] > 100_000_000, "the 100 s window holds about 100 s of it: \(windows)")
    }

    /// The open flow `id` from `client` with running totals: `bytes` sent from `first` to `last`.
    static func open(id: UInt64, first: UInt64, last: UInt64, bytes: UInt64) -> FlowRecord {
        var r = flow(id: id, first: first, last: last, bytes: bytes)
        r.state = .active
        r.endReason = nil
        return r
    }

    @Test("an exporter's pieces of one flow, 10 s each and 2 s late, merged by the collector: each spreads over its span, as if seen live")
    func delayedPiecesSpread() throws {
        var tracker = HostTracker(), ledger = FlowLedger()
        _ = Self.bytesSent(&tracker, &ledger, [], now: Self.t0)
        // 1 MB a second from t0 + 10 s for 60 s, reported as six pieces.
        let start = Self.t0 + 10 * Self.second
        var windows: [Double] = []
        for piece in UInt64(1)...6 {
            let last = start + piece * 10 * Self.second
            windows = Self.bytesSent(&tracker, &ledger, [Self.open(id: 8, first: start, last: last, bytes: piece * 10_000_000)],
                                     now: last + 2 * Self.second)
        }
        try #require(windows.count == 3)
        for (w, h) in [1.0, 10, 100].enumerated() {
            // Every second of the 60 decayed from when it passed to now (2 s after the last).
            let expected = 1_000_000 * stride(from: 2.0, to: 62, by: 0.001).reduce(0) { $0 + exp2(-$1 / h) } / 1_000
            #expect(abs(windows[w] - expected) <= max(1, expected * 0.01), "window \(w): \(windows[w]) vs \(expected)")
        }
        #expect(windows[0] < 1_000_000, "no 10 MB burst in the last second: \(windows)")
    }

    @Test("a flow from live capture quiet for a minute, then 5 MB in its last second: whole in the 1 s window, not spread over the minute")
    func liveBurstWhole() throws {
        var tracker = HostTracker(), ledger = FlowLedger()
        _ = Self.bytesSent(&tracker, &ledger, [], now: Self.t0, reporting: .asSeen)
        let start = Self.t0 + Self.second
        _ = Self.bytesSent(&tracker, &ledger, [Self.open(id: 9, first: start, last: start, bytes: 1_000)], now: start + Self.second,
                           reporting: .asSeen)
        let burst = start + 61 * Self.second
        let windows = Self.bytesSent(&tracker, &ledger, [Self.open(id: 9, first: start, last: burst, bytes: 5_001_000)],
                                     now: burst + Self.second / 2, reporting: .asSeen)
        try #require(windows.count == 3)
        #expect(windows[0] > 4_999_000 && windows[0] < 5_001_000, "\(windows)")
    }

    @Test("a flow first reported within 3 s of its first packet counts whole, as live capture reports it")
    func onTimeCountsWhole() throws {
        var tracker = HostTracker(), ledger = FlowLedger()
        _ = Self.bytesSent(&tracker, &ledger, [], now: Self.t0)
        let now = Self.t0 + 10 * Self.second
        let windows = Self.bytesSent(&tracker, &ledger, [Self.flow(id: 5, first: now - 2 * Self.second, last: now - Self.second,
                                                                  bytes: 1_000_000)], now: now)
        #expect(windows.allSatisfy { abs($0 - 1_000_000) < 1 }, "\(windows)")
    }

    @Test("shares: a moment's traffic decays by each half-life; a span's share lies between its ends' and never above 1")
    func sharesBounded() {
        let now = Self.t0
        let moment = WindowShares(spreadFrom: now - 10 * Self.second, to: now - 10 * Self.second, now: now)
        for (w, h) in [1.0, 10, 100].enumerated() { #expect(abs(moment.values[w] - exp2(-10 / h)) < 1e-12) }
        let span = WindowShares(spreadFrom: now - 30 * Self.second, to: now - 10 * Self.second, now: now)
        for (w, h) in [1.0, 10, 100].enumerated() {
            #expect(span.values[w] < exp2(-10 / h) && span.values[w] > exp2(-30 / h))
        }
        // Stamped ahead of now (an exporter's clock): taken as now, all of it.
        let ahead = WindowShares(spreadFrom: now + Self.second, to: now + 2 * Self.second, now: now)
        #expect(ahead.values[0] == 1 && ahead.values[2] == 1)
    }
}
