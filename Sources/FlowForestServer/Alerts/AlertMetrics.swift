import CoreMetrics
import Foundation

/// The metric handles of one alert destination, made once.
struct AlertMetrics: Sendable {
    let sent: Counter
    let failed: Counter
    let dropped: Counter
    let pending: Gauge

    /// - Parameter destination: `alertmanager` or `webhook`, and the URL's host and port.
    init(kind: String, url: URL, factory: any MetricsFactory) {
        let destination = "\(url.host ?? "?")" + (url.port.map { ":\($0)" } ?? "")
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
