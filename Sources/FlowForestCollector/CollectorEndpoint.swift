/// Where the collector listens: `udp://HOST:PORT`, IPv6 hosts in brackets
/// (`udp://[::]:2055`).
public struct CollectorEndpoint: Hashable, Sendable, CustomStringConvertible {
    public let host: String
    public let port: UInt16

    public var description: String { "udp://\(host.contains(":") ? "[\(host)]" : host):\(port)" }

    /// Parses an endpoint; the error says what is wrong with it.
    public init(_ text: String) throws(CollectorError) {
        guard text.lowercased().hasPrefix("udp://") else {
            throw .badEndpoint(text, "expected udp://HOST:PORT (NetFlow and IPFIX are collected over UDP)")
        }
        let rest = text.dropFirst(6)
        let host: Substring, portText: Substring
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]"), rest[rest.index(after: close)...].hasPrefix(":") else {
                throw .badEndpoint(text, "expected [IPv6]:PORT")
            }
            host = rest[rest.index(after: rest.startIndex)..<close]
            portText = rest[rest.index(close, offsetBy: 2)...]
        } else {
            guard let colon = rest.lastIndex(of: ":") else { throw .badEndpoint(text, "a port is needed, e.g. :2055") }
            host = rest[..<colon]
            portText = rest[rest.index(after: colon)...]
        }
        guard !host.isEmpty, !host.contains("/") else { throw .badEndpoint(text, "no host (0.0.0.0 listens on every address)") }
        guard !portText.isEmpty, portText.allSatisfy(\.isNumber), let port = UInt16(portText), port > 0 else {
            throw .badEndpoint(text, "the port must be 1-65535")
        }
        self.host = String(host)
        self.port = port
    }
}

/// What can go wrong starting the collector.
public enum CollectorError: Error, CustomStringConvertible, Equatable {
    case badEndpoint(String, String)
    case resolve(String, String)
    case socket(String, String)

    public var description: String {
        switch self {
        case let .badEndpoint(text, why): "--collect \(text): \(why)"
        case let .resolve(host, why): "--collect: cannot resolve \(host): \(why)"
        case let .socket(endpoint, why): "--collect \(endpoint): \(why)"
        }
    }
}
