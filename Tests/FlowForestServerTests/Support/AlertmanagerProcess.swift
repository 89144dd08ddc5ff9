import FlowForestTestSupport
import Foundation

/// A real Debian `prometheus-alertmanager` on loopback, routing every alert
/// to a webhook receiver: one notification per incident (grouped by
/// `incident_id`), resolved ones too, no repeats within the test.
final class AlertmanagerProcess: @unchecked Sendable {
    static let binary = "/usr/bin/prometheus-alertmanager"
    let directory: URL
    let port: Int
    private var process: ChildProcess?

    init(receiver: String) throws {
        guard FileManager.default.isExecutableFile(atPath: Self.binary) else {
            throw TestFailure("\(Self.binary) missing: apt-get install prometheus-alertmanager (make deps)")
        }
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("flowforest-am-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        port = try ThrowawayPostgres.freePort()
        let config = """
            route:
              receiver: hook
              group_by: ['incident_id']
              group_wait: 1s
              group_interval: 1s
              repeat_interval: 1h
            receivers:
              - name: hook
                webhook_configs:
                  - url: \(receiver)
                    send_resolved: true
            """
        try config.write(to: directory.appendingPathComponent("alertmanager.yml"), atomically: true, encoding: .utf8)
    }

    var url: String { "http://127.0.0.1:\(port)" }

    /// Starts it (again, with the same storage: its notification log survives a restart) and waits until ready.
    func start() async throws {
        // Its log grows across restarts, for a failing test to show (``logTail``).
        let p = try ChildProcess.spawn(Self.binary, [
            "--config.file=\(directory.appendingPathComponent("alertmanager.yml").path)",
            "--storage.path=\(directory.appendingPathComponent("data").path)",
            "--web.listen-address=127.0.0.1:\(port)", "--cluster.listen-address=", "--log.level=debug",
        ], stderr: .appending(directory.appendingPathComponent("alertmanager.log").path))
        process = p
        let url = self.url
        try await waitFor("Alertmanager on \(url) to be ready", seconds: 30) {
            if let status = p.terminationStatus { throw TestFailure("alertmanager exited with \(status)") }
            return (try? await curl(["\(url)/-/ready"]))?.status == 200
        }
    }

    /// Stops it with SIGTERM (it saves its notification log) and waits for the exit.
    func stop() async {
        guard let p = process else { return }
        await p.stop(signal: SIGTERM, grace: 20)
        process = nil
    }

    /// Alertmanager's log over all its runs.
    var log: String {
        (try? String(contentsOf: directory.appendingPathComponent("alertmanager.log"), encoding: .utf8)) ?? ""
    }

    /// The end of ``log``, for a failure message.
    var logTail: String { String(log.suffix(6000)) }

    func remove() async {
        await stop()
        try? FileManager.default.removeItem(at: directory)
    }
}
