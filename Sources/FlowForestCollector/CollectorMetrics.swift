import CoreMetrics
import FlowForestCore

/// One exporter's metric handles, created once when the exporter is first
/// seen (the number of exporters is bounded, so the number of series is too).
final class ExporterMetrics {
    let datagrams: [ExportVersion: Counter]
    let unknownVersionDatagrams: Counter
    let records: Counter
    let sequenceGaps: Counter
    let sequenceMissing: Counter
    let sequenceResets: Counter
    let duplicateRecords: Counter
    let domainsReplaced: Counter
    let waitingSets: Gauge
    let dropped: [DropReason: Counter]
    let malformed: [MalformedReason: Counter]
    let templateRefusals: Counter
    let samplingInterval: Gauge

    init(exporter: IPAddress, factory: any MetricsFactory) {
        let e = ("exporter", "\(exporter)")
        func counter(_ label: String, _ extra: [(String, String)] = []) -> Counter {
            Counter(label: label, dimensions: [e] + extra, factory: factory)
        }
        datagrams = Dictionary(uniqueKeysWithValues: ExportVersion.allCases.map {
            ($0, counter("flowforest_collector_datagrams_total", [("version", "\($0)")]))
        })
        unknownVersionDatagrams = counter("flowforest_collector_datagrams_total", [("version", "unknown")])
        records = counter("flowforest_collector_records_total")
        sequenceGaps = counter("flowforest_collector_sequence_gaps_total")
        sequenceMissing = counter("flowforest_collector_sequence_missing_total")
        sequenceResets = counter("flowforest_collector_sequence_resets_total")
        duplicateRecords = counter("flowforest_collector_duplicate_records_total")
        domainsReplaced = counter("flowforest_collector_domains_replaced_total")
        waitingSets = Gauge(label: "flowforest_collector_waiting_sets", dimensions: [e], factory: factory)
        dropped = Dictionary(uniqueKeysWithValues: DropReason.allCases.map {
            ($0, counter("flowforest_collector_dropped_sets_total", [("reason", $0.rawValue)]))
        })
        malformed = Dictionary(uniqueKeysWithValues: MalformedReason.allCases.map {
            ($0, counter("flowforest_collector_malformed_total", [("reason", $0.rawValue)]))
        })
        templateRefusals = counter("flowforest_collector_template_refusals_total")
        samplingInterval = Gauge(label: "flowforest_collector_sampling_interval", dimensions: [e], factory: factory)
        samplingInterval.record(1)
    }

    /// Removes the exporter's series: it gave up its place.
    func destroy() {
        for c in Array(datagrams.values) + Array(dropped.values) + Array(malformed.values) { c.destroy() }
        for c in [unknownVersionDatagrams, records, sequenceGaps, sequenceMissing, sequenceResets, duplicateRecords,
                  domainsReplaced, templateRefusals] { c.destroy() }
        waitingSets.destroy()
        samplingInterval.destroy()
    }

    /// Counts gaps in the sequence numbers confirmed lost, and what they held.
    func recordGaps(_ gaps: Int, missing: UInt64) {
        guard gaps > 0 else { return }
        sequenceGaps.increment(by: gaps)
        sequenceMissing.increment(by: Int(clamping: missing))
    }

    /// Counts what decoding one datagram found.
    func record(_ r: DecodeResult, held: Int) {
        if let version = r.version { datagrams[version]?.increment() } else { unknownVersionDatagrams.increment() }
        if r.records > 0 { records.increment(by: r.records) }
        recordGaps(r.sequenceGaps, missing: r.sequenceGap)
        if r.sequenceReset { sequenceResets.increment() }
        if r.duplicateRecords > 0 { duplicateRecords.increment(by: r.duplicateRecords) }
        if r.domainsReplaced > 0 { domainsReplaced.increment(by: r.domainsReplaced) }
        for reason in r.malformed { malformed[reason]?.increment() }
        for (reason, count) in r.dropped { dropped[reason]?.increment(by: count) }
        if r.templateRefusals > 0 { templateRefusals.increment(by: r.templateRefusals) }
        if let interval = r.samplingInterval { samplingInterval.record(Int64(clamping: interval)) }
        waitingSets.record(held)
    }
}
