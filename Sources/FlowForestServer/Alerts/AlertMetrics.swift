import CoreMetrics
import Foundation

/// The metric handles of one alert destination, made once.
struct AlertMetrics: Sendable {
    let sent: Counter
    let failed: Counter
    let dropped: Counter
    let pending: Gauge

    /// The `destination` label of each of one kind's routes: the URL's host
    /// and port, never its path (a chat service's webhook path is its
    /// secret) or query; a second route to the same host and port is
    /// `host:port#2`, and so on, so no two routes share a series.
    static func destinations(_ urls: [URL]) -> [String] {
        var seen: [String: Int] = [:]
        return urls.map { url in
            let base = "\(url.host ?? "?")" + (url.port.map { ":\($0)" } ?? "")
            seen[base, default: 0] += 1
            return seen[base]! == 1 ? base : "\(base)#\(seen[base]!)"
        }
    }

    /// - Parameters: `kind` is `alertmanager` or `webhook`; `destination`
    ///   one of ``destinations(_:)``.
    init(kind: String, destination: String, factory: any MetricsFactory) {
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
