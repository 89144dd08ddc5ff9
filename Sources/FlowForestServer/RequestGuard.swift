import Foundation
import HTTPTypes
import Hummingbird

/// Refuses requests no route should see, before authentication and the
/// dashboard's file server.
///
/// The file server decodes `%00` into the path and then opens it as a C
/// string, so `/app.js%00.html` would serve `app.js`; a path with an encoded
/// control character is refused outright instead. A documented path asked
/// with a method it does not answer gets 405 and `Allow` (the router would
/// say 404), and TRACE and CONNECT get 405 on every path, so scanners see
/// them refused. HEAD on a documented GET path never reaches it:
/// ``HeadAsGet`` has turned it into a GET.
struct RequestGuard: RouterMiddleware {
    typealias Context = AppRequestContext

    /// TRACK too, although the HTTP parser already refuses it (400) before
    /// any middleware runs.
    static let refusedMethods: Set<String> = ["TRACE", "TRACK", "CONNECT"]
    let routes = RouteTable()

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let allowed = routes.methods(for: request.uri.path)
        if Self.refusedMethods.contains(request.method.rawValue.uppercased()) {
            // Paths outside the table are the dashboard's files: GET and HEAD.
            throw APIError(.methodNotAllowed, "method \(request.method.rawValue) is not supported",
                           headers: [.allow: Self.allowHeader(allowed ?? [.get])])
        }
        if let allowed, !allowed.contains(request.method) {
            throw APIError(.methodNotAllowed, "\(request.uri.path) does not answer \(request.method.rawValue)",
                           headers: [.allow: Self.allowHeader(allowed)])
        }
        guard Self.isAcceptablePath(request.uri.path) else {
            throw APIError(.badRequest, "the request path holds an encoded control character")
        }
        return try await next(request, context)
    }

    /// The `Allow` value for a path answering `methods`: HEAD wherever GET is.
    static func allowHeader(_ methods: [HTTPRequest.Method]) -> String {
        var names = methods.map(\.rawValue)
        if let get = names.firstIndex(of: "GET"), !names.contains("HEAD") { names.insert("HEAD", at: get + 1) }
        return names.joined(separator: ", ")
    }

    /// False when the path, percent-decoded, holds a NUL or other control
    /// character, or its percent-encoding is broken.
    static func isAcceptablePath(_ path: String) -> Bool {
        guard let decoded = path.removingPercentEncoding else { return !path.contains("%") }
        return !decoded.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7F }
    }
}

/// Answers HEAD on a documented GET path as GET without the body. The
/// router has no HEAD routes and runs its middleware only after it has
/// chosen a route, so the method is changed before the router sees it.
struct HeadAsGet<Base: HTTPResponder>: HTTPResponder where Base.Context == AppRequestContext {
    let base: Base
    let routes = RouteTable()

    func respond(to request: Request, context: AppRequestContext) async throws -> Response {
        guard request.method == .head, routes.methods(for: request.uri.path)?.contains(.get) == true else {
            return try await base.respond(to: request, context: context)
        }
        var head = request.head
        head.method = .get
        let response = try await base.respond(to: Request(head: head, body: request.body), context: context)
        return Response(status: response.status, headers: response.headers)
    }
}
