import CoreMetrics
import Foundation

/// The metric handles of one alert destination, made once.
struct AlertMetrics: Sendable {
    let sent: Counter
    let failed: Counter
    let dropped: Counter
    let pending: Gauge

    /// - Parameters: `kind` is `alertmanager` or `webhook`; the destination
    ///   label is the URL's host, port and path (two hooks on one server are
    ///   two series), never its query or credentials.
    init(kind: String, url: URL, factory: any MetricsFactory) {
        let path = url.path == "/" ? "" : url.path
        let destination = "\(url.host ?? "?")" + (url.port.map { ":\($0)" } ?? "") + path
        let dimensions = [("kind", kind), ("destination", destination)]
        sent = Counter(label: "flowforest_alerts_sent_total", dimensions: dimensions, factory: factory)
        failed = Counter(label: "flowforest_alerts_failed_total", dimensions: dimensions, factory: factory)
        dropped = Counter(label: "flowforest_alerts_dropped_total", dimensions: dimensions, factory: factory)
        pending = Gauge(label: "flowforest_alerts_pending", dimensions: dimensions, factory: factory)
        sent.increment(by: 0)
        failed.increment(by: 0)
        dropped.increment(by: 0)
        pending.record(0)
    }
}
