import HTTPTypes
import Hummingbird

/// Headers every answer carries, errors included, so a browser treats the
/// dashboard as nothing but its own files: no framing by another site
/// (clickjacking an admin's acknowledgement or a suppression rule), no
/// script, style or connection from anywhere else, no content sniffing, no
/// referrer with the dashboard's URL (it names hosts and filters) leaving
/// for a link.
///
/// The dashboard keeps to the policy: its scripts and styles are files of
/// its own, and it sets element styles through the CSSOM, which
/// `style-src 'self'` allows, never through a `style` attribute.
struct SecurityHeaders: RouterMiddleware {
    typealias Context = AppRequestContext

    static let contentSecurityPolicy = [
        "default-src 'self'", "script-src 'self'", "style-src 'self'", "img-src 'self'",
        "connect-src 'self'", "object-src 'none'", "base-uri 'none'", "form-action 'self'", "frame-ancestors 'none'",
    ].joined(separator: "; ")

    static let fields: HTTPFields = [
        HTTPField.Name("Content-Security-Policy")!: contentSecurityPolicy,
        HTTPField.Name("X-Frame-Options")!: "DENY",
        HTTPField.Name("X-Content-Type-Options")!: "nosniff",
        HTTPField.Name("Referrer-Policy")!: "no-referrer",
    ]

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var response: Response
        do {
            response = try await next(request, context)
        } catch let error as APIError {
            response = try error.response(from: request, context: context)
        } catch let error as any HTTPResponseError {
            // Hummingbird's and NIO's own refusals (no such route, a body past
            // a limit) answer in the API's error shape too.
            let own = try error.response(from: request, context: context)
            let message = (error as? HTTPError)?.body ?? own.status.reasonPhrase.lowercased()
            var headers = own.headers
            headers[.contentType] = nil
            headers[.contentLength] = nil
            response = try APIError(own.status, message, headers: headers).response(from: request, context: context)
        } catch {
            // Any other failure would leave as the server's bare 500, without these headers.
            context.logger.error("request failed", metadata: ["error": "\(error)", "path": "\(request.uri.path)"])
            response = try APIError(.internalServerError, "internal error").response(from: request, context: context)
        }
        for field in Self.fields where response.headers[field.name] == nil { response.headers.append(field) }
        return response
    }
}
