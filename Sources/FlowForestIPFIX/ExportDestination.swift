import Foundation

/// Where IPFIX goes: `udp://HOST:PORT` or `tcp://HOST:PORT` (IPv6 hosts in
/// brackets, `udp://[2001:db8::1]:4739`).
public struct ExportDestination: Hashable, Sendable, CustomStringConvertible {
    public enum Transport: String, Sendable { case udp, tcp }

    public let transport: Transport
    public let host: String
    public let port: UInt16

    public var description: String { "\(transport.rawValue)://\(host.contains(":") ? "[\(host)]" : host):\(port)" }

    /// Parses a destination; the error says what is wrong with it.
    public init(_ text: String) throws(ExportError) {
        guard let schemeEnd = text.range(of: "://") else {
            throw .badDestination(text, "expected udp://HOST:PORT or tcp://HOST:PORT")
        }
        guard let transport = Transport(rawValue: text[..<schemeEnd.lowerBound].lowercased()) else {
            throw .badDestination(text, "the transport must be udp or tcp")
        }
        let rest = text[schemeEnd.upperBound...]
        let host: Substring, portText: Substring
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]"), rest[rest.index(after: close)...].hasPrefix(":") else {
                throw .badDestination(text, "expected [IPv6]:PORT")
            }
            host = rest[rest.index(after: rest.startIndex)..<close]
            portText = rest[rest.index(close, offsetBy: 2)...]
        } else {
            guard let colon = rest.lastIndex(of: ":") else { throw .badDestination(text, "a port is needed, e.g. :4739") }
            host = rest[..<colon]
            portText = rest[rest.index(after: colon)...]
        }
        guard !host.isEmpty, !host.contains("/") else { throw .badDestination(text, "no host") }
        guard portText.allSatisfy(\.isNumber), let port = UInt16(portText), port > 0 else {
            throw .badDestination(text, "the port must be 1-65535")
        }
        self.transport = transport
        self.host = String(host)
        self.port = port
    }
}

/// What can go wrong exporting.
public enum ExportError: Error, CustomStringConvertible, Equatable {
    case badDestination(String, String)
    case resolve(String, String)
    case socket(String, String)

    public var description: String {
        switch self {
        case let .badDestination(text, why): "--export-ipfix \(text): \(why)"
        case let .resolve(host, why): "cannot resolve IPFIX collector \(host): \(why)"
        case let .socket(destination, why): "IPFIX export to \(destination): \(why)"
        }
    }
}
