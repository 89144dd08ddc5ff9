public import Foundation

/// Where incidents are sent (`--alertmanager`, `--webhook`), checked at start.
public struct AlertConfiguration: Sendable {
    /// Alertmanager base URLs (`--alertmanager`, repeatable: each member of an HA pair gets every alert).
    public var alertmanagers: [URL] = []
    /// Webhook URLs (`--webhook`, repeatable) and the HMAC key their bodies are signed with.
    public var webhooks: [URL] = []
    public var webhookSecret: [UInt8] = []
    /// Where alert links point: the dashboard as people reach it (`--external-url`; default the `--listen` address).
    public var externalURL: String?
    /// While an incident is open its alert is posted again this often, so
    /// Alertmanager keeps it firing (its resolve timeout is 5 minutes by default).
    public var repostInterval: Duration = .seconds(60)
    /// Notifications held per destination while it is unreachable; beyond
    /// it the oldest are dropped, counted in `flowforest_alerts_dropped_total`.
    public var maxPending = 10_000
    /// Bytes of webhook bodies held per destination at most (an incident's
    /// body carries up to 1,000 anomaly ids and 512 addresses); beyond it the
    /// oldest are dropped and counted the same way.
    public var maxPendingBytes = 64 << 20
    /// Back-off between failed posts: doubling from the first to the last.
    public var retryDelay: Duration = .milliseconds(500)
    public var maxRetryDelay: Duration = .seconds(30)
    /// How long one post may take.
    public var requestTimeout: Duration = .seconds(10)
    /// How long each route may go on delivering at shutdown, after the
    /// writer's final flush (which gives up after 15 s): the routes run
    /// side by side, so both fit systemd's 30 s `TimeoutStopSec`.
    public var shutdownGrace: Duration = .seconds(10)

    public init() {}

    /// The routes of `--alertmanager`, `--webhook`, `--webhook-secret-file`
    /// and `--external-url`, each checked: a bad URL, or a secret file that
    /// is missing, unreadable or empty, is an error naming the option.
    public static func make(alertmanagers: [String], webhooks: [String], secretFile: String?,
                            externalURL: String?) throws(AlertConfigurationError) -> AlertConfiguration {
        var c = AlertConfiguration()
        for text in alertmanagers { c.alertmanagers.append(try parseURL(text, option: "--alertmanager")) }
        for text in webhooks { c.webhooks.append(try parseURL(text, option: "--webhook")) }
        switch (c.webhooks.isEmpty, secretFile) {
        case (false, nil): throw .webhookWithoutSecret
        case (true, .some): throw .secretWithoutWebhook
        case (false, .some(let path)): c.webhookSecret = try loadSecret(path: path)
        case (true, nil): break
        }
        if let externalURL {
            let url = try parseURL(externalURL, option: "--external-url")
            c.externalURL = url.absoluteString.hasSuffix("/") ? String(url.absoluteString.dropLast()) : url.absoluteString
        }
        return c
    }

    /// True when no route is configured.
    public var isEmpty: Bool { alertmanagers.isEmpty && webhooks.isEmpty }

    /// An `http` or `https` URL with a host, or an error naming `option`.
    public static func parseURL(_ text: String, option: String) throws(AlertConfigurationError) -> URL {
        guard let components = URLComponents(string: text), let scheme = components.scheme?.lowercased(),
              ["http", "https"].contains(scheme), let host = components.host, !host.isEmpty, let url = components.url else {
            throw .badURL(option: option, text: text)
        }
        return url
    }

    /// Longest key file read (a key is a line of text).
    static let maxSecretBytes = 4096
    /// Shortest key taken: an HMAC key guessable by trying short ones signs nothing.
    static let minSecretBytes = 16

    /// The webhook key from `path`: its bytes without trailing white space.
    /// An unreadable, empty, short or oversized file is an error, and so is
    /// one other users may read (the key signs every alert).
    public static func loadSecret(path: String) throws(AlertConfigurationError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { throw .unreadableSecret(path: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else {
            throw .unreadableSecret(path: path, reason: "not a regular file")
        }
        guard st.st_mode & 0o007 == 0 else { throw .exposedSecret(path: path) }
        var text = [UInt8](repeating: 0, count: maxSecretBytes + 1)
        var count = 0
        while count < text.count {
            let n = text.withUnsafeMutableBytes { read(fd, $0.baseAddress! + count, $0.count - count) }
            if n < 0, errno == EINTR { continue }
            guard n >= 0 else { throw .unreadableSecret(path: path, reason: String(cString: strerror(errno))) }
            if n == 0 { break }
            count += n
        }
        guard count <= maxSecretBytes else { throw .badSecretLength(path: path, detail: "longer than \(maxSecretBytes) bytes") }
        var end = count
        while end > 0, [0x20, 0x09, 0x0A, 0x0D].contains(text[end - 1]) { end -= 1 }
        guard end > 0 else { throw .emptySecret(path: path) }
        guard end >= minSecretBytes else { throw .badSecretLength(path: path, detail: "shorter than \(minSecretBytes) bytes") }
        return Array(text[..<end])
    }
}

/// A route option that cannot work, reported before anything starts.
public enum AlertConfigurationError: Error, CustomStringConvertible, Equatable {
    case badURL(option: String, text: String)
    case unreadableSecret(path: String, reason: String)
    case emptySecret(path: String)
    case exposedSecret(path: String)
    case badSecretLength(path: String, detail: String)
    case webhookWithoutSecret
    case secretWithoutWebhook

    public var description: String {
        switch self {
        case .badURL(let option, let text):
            return "\(option): expected an http:// or https:// URL with a host, got \(text.debugDescription)"
        case .unreadableSecret(let path, let reason):
            return "--webhook-secret-file \(path): cannot read it (\(reason))"
        case .emptySecret(let path):
            return "--webhook-secret-file \(path): the file is empty; put the shared HMAC key in it"
        case .exposedSecret(let path):
            return "--webhook-secret-file \(path): other users can read it; chmod o-rwx it (or give it with systemd's LoadCredential=)"
        case .badSecretLength(let path, let detail):
            return "--webhook-secret-file \(path): the key is \(detail); use 16 to 4096 bytes, e.g. `openssl rand -hex 32`"
        case .webhookWithoutSecret:
            return "--webhook needs --webhook-secret-file: every webhook body is signed (X-FlowForest-Signature)"
        case .secretWithoutWebhook:
            return "--webhook-secret-file given without --webhook"
        }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
