import FlowForestStore
import Foundation
import Hummingbird
import Synchronization

/// Every request's context: who is asking, once authentication ran.
struct AppRequestContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    /// The authenticated credential, nil when none was presented.
    var principal: Principal?
    /// True when the principal came from a bearer token (ingest needs one).
    var viaToken = false

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
    }

    /// Bodies are read explicitly with their own limits; this bounds the rest.
    var maxUploadSize: Int { 64 * 1024 }
}

/// Dashboard sessions: random ids in an HttpOnly cookie, held in memory (a
/// restart signs everyone out).
final class SessionStore: Sendable {
    struct Session: Sendable {
        var principal: Principal
        var expires: ContinuousClock.Instant
    }

    private let sessions = Mutex<[String: Session]>([:])
    let lifetime: Duration

    init(lifetime: Duration) {
        self.lifetime = lifetime
    }

    func create(for principal: Principal) -> String {
        var g = SystemRandomNumberGenerator()
        let id = (0..<32).map { _ in String(format: "%02x", UInt8.random(in: .min ... .max, using: &g)) }.joined()
        sessions.withLock { s in
            let now = ContinuousClock.now
            s = s.filter { $0.value.expires > now }
            s[id] = Session(principal: principal, expires: now + lifetime)
        }
        return id
    }

    func principal(for id: String) -> Principal? {
        sessions.withLock { s in
            guard let session = s[id] else { return nil }
            guard session.expires > .now else {
                s[id] = nil
                return nil
            }
            return session.principal
        }
    }

    func remove(_ id: String) { sessions.withLock { $0[id] = nil } }
}

/// A JSON error body `{"error": "..."}` with a status.
struct APIError: HTTPResponseError {
    var status: HTTPResponse.Status
    var message: String
    var headers: HTTPFields = [:]

    init(_ status: HTTPResponse.Status, _ message: String, headers: HTTPFields = [:]) {
        self.status = status
        self.message = message
        self.headers = headers
    }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        let body = try JSONEncoder().encode(["error": message])
        var fields = headers
        fields[.contentType] = "application/json; charset=utf-8"
        return Response(status: status, headers: fields, body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }
}

/// Finds the principal of a request: a bearer token, else a session cookie.
/// With no credential configured (allowed on loopback only) every request
/// is the anonymous admin.
struct AuthMiddleware: RouterMiddleware {
    typealias Context = AppRequestContext
    let store: Store
    let sessions: SessionStore
    let openAccess: OpenAccess

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        if let header = request.headers[.authorization] {
            let parts = header.split(separator: " ", maxSplits: 1)
            guard parts.count == 2, parts[0].lowercased() == "bearer" else {
                throw APIError(.unauthorized, "Authorization must be 'Bearer <token>'", headers: [.wwwAuthenticate: "Bearer"])
            }
            guard let principal = try await store.authenticateToken(String(parts[1])) else {
                throw APIError(.unauthorized, "unknown or revoked API token", headers: [.wwwAuthenticate: "Bearer"])
            }
            context.principal = principal
            context.viaToken = true
        } else if let cookie = request.cookies[SessionCookie.name], let principal = sessions.principal(for: cookie.value) {
            context.principal = principal
        } else if await openAccess.isOpen() {
            context.principal = Principal(name: "anonymous", role: .admin)
            context.viaToken = true
        }
        return try await next(request, context)
    }
}

/// Whether the server runs without credentials: only on loopback, and only
/// while none exist (rechecked every few seconds, so adding the first token
/// turns authentication on without a restart).
actor OpenAccess {
    private let store: Store
    private let loopback: Bool
    private var cached: (open: Bool, at: ContinuousClock.Instant)?

    init(store: Store, loopback: Bool) {
        self.store = store
        self.loopback = loopback
    }

    func isOpen() async -> Bool {
        guard loopback else { return false }
        if let cached, ContinuousClock.now - cached.at < .seconds(5) { return cached.open }
        let open = ((try? await store.credentialCount()) ?? 1) == 0
        cached = (open, .now)
        return open
    }
}

enum SessionCookie {
    static let name = "flowforest_session"
}

extension AppRequestContext {
    /// The principal if it has at least `role`: 401 without credentials, 403 with too few rights.
    func require(_ role: Role) throws -> Principal {
        guard let principal else {
            throw APIError(.unauthorized, "authentication required: send 'Authorization: Bearer <token>' or sign in", headers: [.wwwAuthenticate: "Bearer"])
        }
        guard principal.role >= role else {
            throw APIError(.forbidden, "\(principal.name) is a \(principal.role.rawValue); this needs the \(role.rawValue) role")
        }
        return principal
    }
}
