import Foundation
import Hummingbird

/// Refuses requests no route should see, before authentication and the
/// dashboard's file server.
///
/// The file server decodes `%00` into the path and then opens it as a C
/// string, so `/app.js%00.html` would serve `app.js`; a path with an encoded
/// control character is refused outright instead. A documented path asked
/// with a method it does not answer gets 405 and `Allow` (the router would
/// say 404), and TRACE, TRACK and CONNECT get 405 on every path, so scanners
/// see them refused.
struct RequestGuard: RouterMiddleware {
    typealias Context = AppRequestContext

    static let refusedMethods: Set<String> = ["TRACE", "TRACK", "CONNECT"]
    let routes = RouteTable()

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if Self.refusedMethods.contains(request.method.rawValue.uppercased()) {
            throw APIError(.methodNotAllowed, "method \(request.method.rawValue) is not supported", headers: [.allow: "GET, HEAD, POST"])
        }
        if let allowed = routes.methods(for: request.uri.path), !allowed.contains(request.method),
           !(request.method == .head && allowed.contains(.get)) {
            throw APIError(.methodNotAllowed, "\(request.uri.path) does not answer \(request.method.rawValue)",
                           headers: [.allow: allowed.map(\.rawValue).joined(separator: ", ")])
        }
        guard Self.isAcceptablePath(request.uri.path) else {
            throw APIError(.badRequest, "the request path holds an encoded control character")
        }
        return try await next(request, context)
    }

    /// False when the path, percent-decoded, holds a NUL or other control
    /// character, or its percent-encoding is broken.
    static func isAcceptablePath(_ path: String) -> Bool {
        guard let decoded = path.removingPercentEncoding else { return !path.contains("%") }
        return !decoded.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7F }
    }
}
