import ArgumentParser
import FlowForestCore
import FlowForestServer

/// Where `run` sends incidents.
struct AlertOptions: ParsableArguments {
    @Option(name: .customLong("alertmanager"),
            help: "Alertmanager base URL (e.g. http://127.0.0.1:9093): every incident is posted to its v2 API, re-posted while open, resolved on close. Repeat for each member of an HA pair.")
    var alertmanagers: [String] = []

    @Option(name: .customLong("webhook"),
            help: "URL every incident change is posted to as JSON, signed with --webhook-secret-file (X-FlowForest-Signature: sha256=<hex HMAC-SHA256>). Repeatable.")
    var webhooks: [String] = []

    @Option(name: .customLong("webhook-secret-file"), help: "File holding the webhook HMAC key (trailing white space ignored).")
    var webhookSecretFile: String?

    @Option(name: .customLong("external-url"),
            help: "The dashboard's URL as people reach it, for links in alerts (default: the --listen address).")
    var externalURL: String?

    /// The checked routes; a bad URL or secret file fails with one line naming the option.
    func configuration() throws -> AlertConfiguration {
        do {
            return try AlertConfiguration.make(alertmanagers: alertmanagers, webhooks: webhooks, secretFile: webhookSecretFile,
                                               externalURL: externalURL)
        } catch {
            throw failure(error.description)
        }
    }
}

/// Suppression rules kept in configuration management.
struct SuppressOptions: ParsableArguments {
    @Option(name: .customLong("suppress"),
            help: "JSON file of suppression rules ([{\"actor\": \"198.18.0.0/15\", \"ports\": [22], \"label\": \"port scan\", \"reason\": \"…\"}]): matching anomalies are stored, marked suppressed, and raise no incident or alert.")
    var suppressFile: String?

    /// The file's rules; a missing or malformed file fails with one line naming the rule and field.
    func rules(nowMs: Int64) throws -> [Suppression] {
        guard let suppressFile else { return [] }
        do {
            return try SuppressionInput.load(path: suppressFile, nowMs: nowMs)
        } catch {
            throw failure(error.description)
        }
    }
}
