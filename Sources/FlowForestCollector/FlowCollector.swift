public import CoreMetrics
public import FlowForestCore
public import Logging

/// Turns exporters' datagrams into bidirectional flow records: decodes them
/// (``FlowDecoder``), merges each exporter's uniflows in its own
/// ``FlowTable`` by the rules of local capture, and counts everything per
/// exporter in metrics.
///
/// Each exporter gets its own table, so the same connection seen by two
/// routers stays two flows, each named after its exporter. Flow ids are
/// 2^52 + slot·2^32 + n (the exporter's slot, then its own count, which
/// wraps within its 2^32 rather than run into the next slot's), so they
/// never meet the ids of local capture in the same run and stay below 2^53,
/// exact as JavaScript numbers in the dashboard. Not thread-safe: one thread owns it.
///
/// An exporter holds one of ``CollectorLimits/maxExporters`` places from its
/// first datagram whose header reads. When a new exporter finds every
/// place taken, those silent for ``CollectorLimits/domainIdleNs`` with no
/// open flow and no held data give theirs up (their per-exporter series go;
/// their flows stay in the capture statistics), so exporters that left, or
/// addresses someone forged once, do not lock out the ones that come later.
public final class FlowCollector {
    struct Exporter {
        var table: FlowTable
        let metrics: ExporterMetrics
        /// When it last sent a datagram whose header read (the collector's clock).
        var lastValidNs: UInt64
    }

    public let configuration: FlowTableConfiguration
    private var decoder: FlowDecoder
    private var exporters: [IPAddress: Exporter] = [:]
    private let factory: any MetricsFactory
    private let logger: Logger
    private let refused: Counter
    private let stray: Counter
    private let exporterGauge: Gauge
    private var malformedDatagrams: UInt64 = 0
    /// The tables' statistics of exporters that gave up their place.
    private var retired = CaptureStatistics()
    /// The next exporter's slot in the flow ids (20 bits; a slot is reused
    /// only after 2^20 exporters, long after its flows ended).
    private var nextSlot: UInt64 = 0
    /// Flow records the exporters' sequence numbers say never arrived.
    private var missingRecords: UInt64 = 0

    public init(configuration: FlowTableConfiguration = FlowTableConfiguration(), limits: CollectorLimits = CollectorLimits(),
                metricsFactory: any MetricsFactory, logger: Logger) {
        self.configuration = configuration
        decoder = FlowDecoder(limits: limits)
        factory = metricsFactory
        self.logger = logger
        refused = Counter(label: "flowforest_collector_refused_datagrams_total", factory: metricsFactory)
        stray = Counter(label: "flowforest_collector_stray_datagrams_total", factory: metricsFactory)
        exporterGauge = Gauge(label: "flowforest_collector_exporters", factory: metricsFactory)
    }

    /// Flows open over every exporter.
    public var activeFlows: Int { exporters.values.reduce(0) { $0 + $1.table.activeCount } }

    /// The tables' statistics summed; `malformed` counts malformed datagrams,
    /// `missingRecords` the records lost between exporter and collector.
    public var statistics: CaptureStatistics {
        var s = CaptureStatistics()
        s += retired
        for e in exporters.values { s += e.table.statistics }
        s.malformed = malformedDatagrams
        s.missingRecords = missingRecords
        return s
    }

    /// Decodes one datagram from `exporter` (sent from its UDP `port`)
    /// received at `nowNs` and adds its flows.
    public func receive(_ datagram: [UInt8], from exporter: IPAddress, port: UInt16 = 0, at nowNs: UInt64) {
        var result = decoder.decode(datagram, from: exporter, port: port, receivedNs: nowNs)
        if result.refused, releaseSilentExporters(at: nowNs) > 0 {
            result = decoder.decode(datagram, from: exporter, port: port, receivedNs: nowNs)
        }
        guard !result.refused else {
            refused.increment()
            return
        }
        // A record that cannot be a flow (non-flow data, counts FlowForest
        // does not read) is counted by reason, and leaves its datagram well formed.
        if result.malformed.contains(where: { $0 != .unusableRecord }) { malformedDatagrams &+= 1 }
        // A newcomer's datagram whose header did not read: no place taken,
        // so no series of its own either.
        guard decoder.holdsPlace(exporter) else {
            stray.increment()
            return
        }
        missingRecords &+= result.sequenceGap
        if exporters[exporter] == nil { exporters[exporter] = newExporter(exporter, at: nowNs) }
        if result.headerRead { exporters[exporter]!.lastValidNs = nowNs }
        exporters[exporter]!.metrics.record(result, held: decoder.heldSets(from: exporter))
        if !result.flows.isEmpty {
            // Mutated in place through the dictionary: a copy of the table
            // would duplicate its storage on every datagram.
            let others = activeFlows - exporters[exporter]!.table.activeCount
            for flow in result.flows {
                let open = others + exporters[exporter]!.table.activeCount
                exporters[exporter]!.table.add(flow, allowNew: open < configuration.maxFlows, arrivedNs: nowNs)
            }
        }
        if let interval = result.samplingInterval {
            logger.debug("sampling interval", metadata: ["exporter": "\(exporter)", "interval": "\(interval)"])
        }
    }

    private func newExporter(_ address: IPAddress, at nowNs: UInt64) -> Exporter {
        let slot = nextSlot & 0xF_FFFF
        nextSlot += 1
        logger.info("new flow exporter", metadata: ["exporter": "\(address)"])
        exporterGauge.record(exporters.count + 1)
        return Exporter(table: FlowTable(configuration: configuration, firstID: 1 << 52 | slot << 32 | 1, idBits: 32),
                        metrics: ExporterMetrics(exporter: address, factory: factory), lastValidNs: nowNs)
    }

    /// Gives up the places of exporters silent for
    /// ``CollectorLimits/domainIdleNs`` with no open flow and no held data;
    /// returns how many.
    private func releaseSilentExporters(at nowNs: UInt64) -> Int {
        let idle = decoder.limits.domainIdleNs
        let silent = exporters.filter { address, e in
            FlowDecoder.silent(since: e.lastValidNs, now: nowNs, idleNs: idle) && e.table.activeCount == 0
                && decoder.heldSets(from: address) == 0
        }
        for (address, e) in silent {
            retired += e.table.statistics
            e.metrics.destroy()
            decoder.forget(exporter: address)
            exporters[address] = nil
            logger.info("silent flow exporter released", metadata: ["exporter": "\(address)"])
        }
        if !silent.isEmpty { exporterGauge.record(exporters.count) }
        return silent.count
    }

    /// Counts sequence gaps no late datagram filled, drops data held too
    /// long for its template, ends idle flows and returns the records due,
    /// by the collector's clock.
    public func advance(to nowNs: UInt64) -> [FlowRecord] {
        countExpiredGaps(now: nowNs)
        for (address, count) in decoder.expireHeld(now: nowNs) {
            guard let metrics = exporters[address]?.metrics else { continue }
            metrics.dropped[.noTemplate]?.increment(by: count)
            metrics.waitingSets.record(decoder.heldSets(from: address))
        }
        var out: [FlowRecord] = []
        for address in Array(exporters.keys) {
            out += exporters[address]!.table.advance(to: nowNs)
        }
        return out
    }

    /// Counts the sequence gaps no late datagram filled by `now` as missing records.
    private func countExpiredGaps(now: UInt64) {
        for (address, lost) in decoder.expireGaps(now: now) {
            missingRecords &+= lost.missing
            exporters[address]?.metrics.recordGaps(lost.gaps, missing: lost.missing)
        }
    }

    /// Ends every open flow (at shutdown), and counts the sequence gaps
    /// still held open for a late datagram: none can come now.
    public func flush() -> [FlowRecord] {
        countExpiredGaps(now: .max)
        var out: [FlowRecord] = []
        for address in Array(exporters.keys) {
            out += exporters[address]!.table.flush()
        }
        return out
    }
}
