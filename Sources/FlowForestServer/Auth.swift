import FlowForestCore
import FlowForestStore
import Foundation
import HTTPTypes
import Hummingbird
import Synchronization

/// Every request's context: who is asking, once authentication ran.
struct AppRequestContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    /// The authenticated credential, nil when none was presented.
    var principal: Principal?
    /// True when the principal came from a bearer token (ingest needs one),
    /// or is the anonymous admin of `--no-auth`.
    var viaToken = false
    /// True when the request carried an `Authorization` header: a browser
    /// cannot add one to a cross-site request, so these skip CSRF checks.
    var viaBearerHeader = false
    /// The session the principal came from, when it came from a cookie.
    var session: SessionStore.Session?
    /// Asks again whether the request's credential still stands (its token
    /// not revoked, its session not signed out, expired or its user
    /// removed), for responses that outlive the request: an event stream
    /// ends when it no longer does. Nil when nothing can be revoked (`--no-auth`).
    var stillAuthorized: (@Sendable () async -> Bool)?
    /// The peer's IP address, for login throttling ("unknown" in tests
    /// without a socket).
    var clientAddress: String

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        clientAddress = source.channel.remoteAddress?.ipAddress ?? "unknown"
    }

    /// Bodies are read explicitly with their own limits; this bounds the rest.
    var maxUploadSize: Int { 64 * 1024 }
}

/// Dashboard sessions: random ids in an HttpOnly cookie, held in memory (a
/// restart signs everyone out). Each session has its own CSRF token, which
/// state-changing requests made with the cookie must echo in `X-CSRF-Token`.
final class SessionStore: Sendable {
    struct Session: Sendable {
        var principal: Principal
        var credential: SessionCredential
        var csrfToken: String
        var expires: ContinuousClock.Instant
        /// When the store last confirmed the credential.
        var checked: ContinuousClock.Instant
    }

    /// At most this many live sessions; the oldest go first beyond it.
    static let maxSessions = 10_000
    /// Sessions one principal holds at most: past it its own oldest goes, so
    /// one credential signing in over and over cannot push everyone else's
    /// sessions out of the table.
    static let maxSessionsPerPrincipal = 32

    private let sessions = Mutex<[String: Session]>([:])
    let lifetime: Duration
    /// How long a session is trusted before its credential is asked of the store again.
    let recheck: Duration

    init(lifetime: Duration, recheck: Duration = .seconds(30)) {
        self.lifetime = lifetime
        self.recheck = recheck
    }

    static func randomHex(_ bytes: Int = 32) -> String {
        var g = SystemRandomNumberGenerator()
        return (0..<bytes).map { _ in String(format: "%02x", UInt8.random(in: .min ... .max, using: &g)) }.joined()
    }

    /// A new session: its id (the cookie value) and its CSRF token.
    func create(for principal: Principal, credential: SessionCredential) -> (id: String, csrfToken: String) {
        let id = Self.randomHex(), csrf = Self.randomHex()
        sessions.withLock { s in
            let now = ContinuousClock.now
            s = s.filter { $0.value.expires > now }
            let own = s.filter { $0.value.principal == principal }
            if own.count >= Self.maxSessionsPerPrincipal {
                for (key, _) in own.sorted(by: { $0.value.expires < $1.value.expires }).prefix(own.count - Self.maxSessionsPerPrincipal + 1) {
                    s[key] = nil
                }
            }
            if s.count >= Self.maxSessions {
                for (key, _) in s.sorted(by: { $0.value.expires < $1.value.expires }).prefix(s.count - Self.maxSessions + 1) { s[key] = nil }
            }
            s[id] = Session(principal: principal, credential: credential, csrfToken: csrf, expires: now + lifetime, checked: now)
        }
        return (id, csrf)
    }

    func session(for id: String) -> Session? {
        sessions.withLock { s in
            guard let session = s[id] else { return nil }
            guard session.expires > .now else {
                s[id] = nil
                return nil
            }
            return session
        }
    }

    func remove(_ id: String) { sessions.withLock { $0[id] = nil } }

    /// Notes that the store confirmed session `id`'s credential now.
    func confirmed(_ id: String) {
        sessions.withLock { s in s[id]?.checked = .now }
    }

    /// The session cookie for `id` (an empty value and max-age 0 clears it).
    func cookie(_ id: String, secure: Bool) -> Cookie {
        Cookie(name: SessionCookie.name, value: id, maxAge: id.isEmpty ? 0 : Int(lifetime.components.seconds), path: "/",
               secure: secure, httpOnly: true, sameSite: .strict)
    }
}

/// What a dashboard session was signed in with, to ask the store whether it
/// still stands: a session ends when its user is removed (or re-added with
/// another password or role) or its token revoked, not 12 hours later.
enum SessionCredential: Sendable, Hashable {
    /// A user and the password hash it signed in against.
    case user(name: String, passwordHash: String)
    /// A sign-in link's token, by hash.
    case token(hash: String)
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
/// With `--no-auth` (loopback only) a request without either is the
/// anonymous admin; otherwise it has no principal and routes answer 401.
///
/// `GET /?token=fft_...` (the sign-in link printed at first start) signs the
/// browser in: a session for the token's principal, then a redirect to `/`
/// so the token leaves the address bar and history.
///
/// It names who is calling and refuses nothing but a malformed credential;
/// each route group's ``RequirePermission`` decides what the caller may do.
struct AuthMiddleware: RouterMiddleware {
    typealias Context = AppRequestContext
    let store: Store
    let sessions: SessionStore
    let noAuth: Bool
    let secureCookies: Bool
    let tokens = TokenCache()

    /// A bearer token's principal, asked of the store with a short deadline;
    /// while the store does not answer, one it confirmed recently.
    func authenticate(_ token: String) async throws -> Principal? {
        guard APIToken.isWellFormed(token) else { return nil }
        let hash = APIToken.hash(token)
        do {
            let principal = try await Store.$deadline.withValue(.now + TokenCache.lookupDeadline) {
                try await store.authenticateToken(hash: hash)
            }
            if let principal { tokens.confirmed(hash, principal) } else { tokens.forget(hash) }
            return principal
        } catch {
            if let principal = tokens.recent(hash) { return principal }
            throw Self.storeUnavailable(error)
        }
    }

    /// A failed credential lookup, as every other store failure answers: 503, try again shortly.
    static func storeUnavailable(_ error: any Error) -> APIError {
        APIError(.serviceUnavailable, "database unavailable: \(error)", headers: [.retryAfter: "5"])
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        if request.method == .get, request.uri.path == "/", let token = request.uri.queryParameters["token"] {
            // A link followed from another site would sign the browser in
            // as whoever owns the token (login CSRF): what the visitor then
            // does is done, and seen, as the link's owner. So it only asks
            // first; the answer is a same-origin navigation. Typed, pasted,
            // bookmarked or from a mail program, a browser sends `none`;
            // curl sends nothing.
            if let site = request.headers[CrossSiteGuard.fetchSite]?.lowercased(), site != "none", site != "same-origin" {
                return try await confirmSignIn(token: String(token))
            }
            return try await signIn(token: String(token))
        }
        if let header = request.headers[.authorization] {
            let parts = header.split(separator: " ", maxSplits: 1)
            guard parts.count == 2, parts[0].lowercased() == "bearer" else {
                throw APIError(.unauthorized, "Authorization must be 'Bearer <token>'", headers: [.wwwAuthenticate: "Bearer"])
            }
            let token = String(parts[1])
            guard let principal = try await authenticate(token) else {
                throw APIError(.unauthorized, "unknown or revoked API token", headers: [.wwwAuthenticate: "Bearer"])
            }
            context.principal = principal
            context.viaToken = true
            context.viaBearerHeader = true
            context.stillAuthorized = { [self] in
                do {
                    return try await authenticate(token) == principal
                } catch {
                    // A store that does not answer leaves the token standing, as a session stands.
                    return true
                }
            }
        } else if let cookie = request.cookies[SessionCookie.name], let session = sessions.session(for: cookie.value),
                  await stillStands(session, id: cookie.value) {
            context.principal = session.principal
            context.session = session
            let id = cookie.value
            context.stillAuthorized = { [self] in
                guard let current = sessions.session(for: id), current.principal == session.principal else { return false }
                return await stillStands(current, id: id)
            }
        } else if noAuth {
            context.principal = Principal(name: "anonymous", role: .admin)
            context.viaToken = true
        }
        return try await next(request, context)
    }

    /// False, and the session removed, when the store no longer holds the
    /// session's credential as it was signed in with. Asked once per
    /// ``SessionStore/recheck`` a session, with the token check's short
    /// deadline; while the store does not answer the session stands (its
    /// lifetime still bounds it), as a recently confirmed token does.
    func stillStands(_ session: SessionStore.Session, id: String) async -> Bool {
        guard ContinuousClock.now - session.checked >= sessions.recheck else { return true }
        let stands: Bool
        do {
            stands = try await Store.$deadline.withValue(.now + TokenCache.lookupDeadline) {
                switch session.credential {
                case .user(let name, let passwordHash):
                    let found = try await store.userCredential(name: name)
                    return found?.hash == passwordHash && found?.principal == session.principal
                case .token(let hash):
                    return try await store.authenticateToken(hash: hash) == session.principal
                }
            }
        } catch {
            return true
        }
        if stands { sessions.confirmed(id) } else { sessions.remove(id) }
        return stands
    }

    static let unknownLink = APIError(
        .unauthorized, "this sign-in link's token is unknown or revoked; ask an admin for a new one (`flowforest token add NAME --role admin`)")

    /// A page asking whether to sign in as the link's token, for a link
    /// followed from another site: nothing is signed in until its link,
    /// on this site, is followed.
    func confirmSignIn(token: String) async throws -> Response {
        // Only a token's own characters are written back into the page.
        guard token.utf8.count <= 100, token.utf8.allSatisfy({ c in
                  c == UInt8(ascii: "_") || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(c)
                      || (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(c) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(c)
              }),
              let principal = try await authenticateLink(token) else {
            throw Self.unknownLink
        }
        let page = """
            <!doctype html><html lang="en"><head><meta charset="utf-8"><title>Sign in to FlowForest</title></head>
            <body><p>This sign-in link was opened from another site. Sign in to FlowForest as
            <strong>\(principal.name)</strong> (\(principal.role.rawValue))?</p>
            <p><a href="/?token=\(token)">Sign in as \(principal.name)</a></p></body></html>
            """
        return Response(status: .ok, headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-store",
                                               HTTPField.Name("Referrer-Policy")!: "no-referrer"],
                        body: .init(byteBuffer: ByteBuffer(string: page)))
    }

    /// The principal a sign-in link's token names, if it may read the dashboard.
    private func authenticateLink(_ token: String) async throws -> Principal? {
        let found: Principal?
        do { found = try await store.authenticateToken(token) } catch { throw Self.storeUnavailable(error) }
        guard let principal = found else { return nil }
        // An agent token only sends traffic: a dashboard session of it could read nothing.
        guard principal.role.permissions.contains(.read) else {
            throw APIError(.forbidden, "this sign-in link's token is an agent token, which cannot read the dashboard; use a viewer or admin token")
        }
        return principal
    }

    func signIn(token: String) async throws -> Response {
        guard let principal = try await authenticateLink(token) else {
            throw Self.unknownLink
        }
        let (id, _) = sessions.create(for: principal, credential: .token(hash: APIToken.hash(token)))
        var response = Response(status: .seeOther, headers: [.location: "/", .cacheControl: "no-store", HTTPField.Name("Referrer-Policy")!: "no-referrer"])
        response.setCookie(sessions.cookie(id, secure: secureCookies))
        return response
    }
}

/// Tokens the store confirmed lately, by hash. A token check asks the store
/// with a deadline of seconds; while the store does not answer (a hung or
/// unreachable PostgreSQL), a token it confirmed within ``grace`` is still
/// accepted, so a scrape or health check with a viewer token keeps working
/// through a database outage and reports it, instead of waiting out the
/// query timeout. A token revoked just before an outage can pass until the
/// store answers again, ``grace`` at most.
final class TokenCache: Sendable {
    static let lookupDeadline: Duration = .seconds(2)
    let grace: Duration
    let capacity: Int
    private let entries = Mutex<[String: (principal: Principal, confirmed: ContinuousClock.Instant)]>([:])

    init(grace: Duration = .seconds(600), capacity: Int = 1024) {
        self.grace = grace
        self.capacity = capacity
    }

    func confirmed(_ hash: String, _ principal: Principal) {
        let now = ContinuousClock.now
        entries.withLock { e in
            if e[hash] == nil, e.count >= capacity, let oldest = e.min(by: { $0.value.confirmed < $1.value.confirmed })?.key {
                e[oldest] = nil
            }
            e[hash] = (principal, now)
        }
    }

    func forget(_ hash: String) {
        _ = entries.withLock { $0.removeValue(forKey: hash) }
    }

    /// The principal of a token confirmed within ``grace``.
    func recent(_ hash: String) -> Principal? {
        entries.withLock { e in
            guard let entry = e[hash], ContinuousClock.now - entry.confirmed < grace else { return nil }
            return entry.principal
        }
    }
}

/// Cross-site request defence for the API's route group: a state-changing
/// request (POST, PUT, PATCH, DELETE) that did not come with an
/// `Authorization` header must come from this origin (a matching `Origin`,
/// or `Sec-Fetch-Site: same-origin`) and, when authenticated by a session
/// cookie, carry the session's CSRF token in `X-CSRF-Token`. A request with
/// a bearer token is exempt: a browser cannot add that header cross-site.
struct CrossSiteGuard: RouterMiddleware {
    typealias Context = AppRequestContext
    static let csrfHeader = HTTPField.Name("X-CSRF-Token")!
    static let fetchSite = HTTPField.Name("Sec-Fetch-Site")!
    static let unsafeMethods: [HTTPRequest.Method] = [.post, .put, .patch, .delete]

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard Self.unsafeMethods.contains(request.method), !context.viaBearerHeader else {
            return try await next(request, context)
        }
        let origin = request.headers[.origin]
        let site = request.headers[Self.fetchSite]?.lowercased()
        if let origin, !Self.sameOrigin(origin, authority: request.head.authority) {
            throw APIError(.forbidden, "cross-site request refused: Origin \(API.quoted(origin)) is not this server")
        }
        if let site, site != "same-origin", site != "none" {
            throw APIError(.forbidden, "cross-site request refused: Sec-Fetch-Site is \(API.quoted(site))")
        }
        if let session = context.session {
            guard origin != nil || site != nil else {
                throw APIError(.forbidden, "a request signed in by cookie must send Origin (or Sec-Fetch-Site: same-origin)")
            }
            guard let sent = request.headers[Self.csrfHeader],
                  PasswordHash.constantTimeEqual(Array(sent.utf8), Array(session.csrfToken.utf8)) else {
                throw APIError(.forbidden, "missing or wrong X-CSRF-Token: take it from the sign-in response or GET /api/session")
            }
        }
        return try await next(request, context)
    }

    /// True when `origin` (`scheme://host[:port]`) names the host and port the request was sent to.
    static func sameOrigin(_ origin: String, authority: String?) -> Bool {
        guard let authority, let scheme = origin.range(of: "://") else { return false }
        let host = origin[scheme.upperBound...]
        guard !host.contains("/") else { return false }
        func withPort(_ a: Substring) -> String {
            let lower = a.lowercased()
            if lower.hasSuffix("]") || !lower.contains(":") {
                return lower + (origin.lowercased().hasPrefix("https:") ? ":443" : ":80")
            }
            return lower
        }
        return withPort(host) == withPort(Substring(authority))
    }
}

/// Refuses requests whose `Host` is a name this server was not told it has,
/// so a DNS-rebinding page (`http://rebind.evil.example:8080/`, resolving to
/// 127.0.0.1) cannot read the API in the victim's browser. IP literals are
/// always accepted (rebinding needs a name); names are `localhost`, the
/// `--listen` host, and each `--allowed-host`. The port is not compared, so
/// SSH port forwards keep working.
struct HostGuard: RouterMiddleware {
    typealias Context = AppRequestContext
    let names: Set<String>

    init(listenHost: String, allowedHosts: [String]) {
        var names: Set<String> = ["localhost"]
        names.insert(listenHost.lowercased())
        for name in allowedHosts { names.insert(Self.hostPart(name).lowercased()) }
        self.names = names
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let authority = request.head.authority, !authority.isEmpty else { return try await next(request, context) }
        let host = Self.hostPart(authority).lowercased()
        let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        guard IPAddress(bare) != nil || names.contains(host) || names.contains(bare) else {
            throw APIError(.misdirectedRequest, "Host \(API.quoted(authority)) is not a name of this server; start it with --allowed-host \(API.quoted(host)) if it is")
        }
        return try await next(request, context)
    }

    /// `name:port`, `[v6]:port` or a bare name, without the port. Anything
    /// else after a bracketed address (`[::1]evil.example`) keeps the whole
    /// text, which then names no address and no allowed host.
    static func hostPart(_ authority: String) -> String {
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { return authority }
            let rest = authority[authority.index(after: close)...]
            guard rest.isEmpty || (rest.hasPrefix(":") && rest.dropFirst().allSatisfy(\.isASCII) && rest.dropFirst().allSatisfy(\.isNumber))
            else { return authority }
            return String(authority[...close])
        }
        if authority.filter({ $0 == ":" }).count == 1, let colon = authority.firstIndex(of: ":") {
            return String(authority[..<colon])
        }
        return authority
    }
}

enum SessionCookie {
    static let name = "flowforest_session"
}

extension AppRequestContext {
    /// Who made the request (401 without credentials), in a route whose
    /// group's ``RequirePermission`` already let it through.
    func authenticated() throws -> Principal {
        guard let principal else {
            throw APIError(.unauthorized, "authentication required: send 'Authorization: Bearer <token>' or sign in", headers: [.wwwAuthenticate: "Bearer"])
        }
        return principal
    }

    /// The principal if its role allows `permission`: 401 without
    /// credentials, 403 with a role that does not allow it.
    func require(_ permission: Permission) throws -> Principal {
        let principal = try authenticated()
        guard principal.role.allows(permission) else {
            let needs = Role.allCases.filter { $0.allows(permission) }.map(\.rawValue).joined(separator: " or ")
            throw APIError(.forbidden, "\(principal.name) is a \(principal.role.rawValue); this needs the \(needs) role")
        }
        return principal
    }
}

/// Refuses a request whose caller lacks `permission`: 401 with no
/// credential, 403 with a role that does not allow it. Added to a route
/// group, so every route in it is guarded without a check of its own.
struct RequirePermission: RouterMiddleware {
    typealias Context = AppRequestContext
    let permission: Permission

    init(_ permission: Permission) { self.permission = permission }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        _ = try context.require(permission)
        return try await next(request, context)
    }
}
