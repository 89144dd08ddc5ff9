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
/// 2^52 + slot·2^32 + n (the exporter's slot, then its own count), so they
/// never meet the ids of local capture in the same run and stay below 2^53,
/// exact as JavaScript numbers in the dashboard. Not thread-safe: one thread owns it.
public final class FlowCollector {
    struct Exporter {
        var table: FlowTable
        let metrics: ExporterMetrics
    }

    public let configuration: FlowTableConfiguration
    private var decoder: FlowDecoder
    private var exporters: [IPAddress: Exporter] = [:]
    private let factory: any MetricsFactory
    private let logger: Logger
    private let refused: Counter
    private let exporterGauge: Gauge
    private var malformedDatagrams: UInt64 = 0
    /// Flow records the exporters' sequence numbers say never arrived.
    private var missingRecords: UInt64 = 0

    public init(configuration: FlowTableConfiguration = FlowTableConfiguration(), limits: CollectorLimits = CollectorLimits(),
                metricsFactory: any MetricsFactory, logger: Logger) {
        self.configuration = configuration
        decoder = FlowDecoder(limits: limits)
        factory = metricsFactory
        self.logger = logger
        refused = Counter(label: "flowforest_collector_refused_datagrams_total", factory: metricsFactory)
        exporterGauge = Gauge(label: "flowforest_collector_exporters", factory: metricsFactory)
    }

    /// Flows open over every exporter.
    public var activeFlows: Int { exporters.values.reduce(0) { $0 + $1.table.activeCount } }

    /// The tables' statistics summed; `malformed` counts malformed datagrams,
    /// `missingRecords` the records lost between exporter and collector.
    public var statistics: CaptureStatistics {
        var s = CaptureStatistics()
        for e in exporters.values { s += e.table.statistics }
        s.malformed = malformedDatagrams
        s.missingRecords = missingRecords
        return s
    }

    /// Decodes one datagram from `exporter` (sent from its UDP `port`)
    /// received at `nowNs` and adds its flows.
    public func receive(_ datagram: [UInt8], from exporter: IPAddress, port: UInt16 = 0, at nowNs: UInt64) {
        let result = decoder.decode(datagram, from: exporter, port: port, receivedNs: nowNs)
        guard !result.refused else {
            refused.increment()
            return
        }
        if !result.malformed.isEmpty { malformedDatagrams &+= 1 }
        missingRecords &+= result.sequenceGap
        if exporters[exporter] == nil { exporters[exporter] = newExporter(exporter) }
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

    private func newExporter(_ address: IPAddress) -> Exporter {
        let slot = UInt64(exporters.count)
        logger.info("new flow exporter", metadata: ["exporter": "\(address)"])
        exporterGauge.record(exporters.count + 1)
        return Exporter(table: FlowTable(configuration: configuration, firstID: 1 << 52 | slot << 32 | 1),
                        metrics: ExporterMetrics(exporter: address, factory: factory))
    }

    /// Drops data held too long for its template, ends idle flows and
    /// returns the records due, by the collector's clock.
    public func advance(to nowNs: UInt64) -> [FlowRecord] {
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

    /// Ends every open flow (at shutdown).
    public func flush() -> [FlowRecord] {
        var out: [FlowRecord] = []
        for address in Array(exporters.keys) {
            out += exporters[address]!.table.flush()
        }
        return out
    }
}
