import AsyncHTTPClient
import Foundation
import NIOCore

/// Posts one JSON body and reports whether the receiver took it (2xx).
///
/// Only the answer's status counts: its body is never read, so a receiver
/// answering with an endless body costs nothing. A post ends by its
/// deadline whatever the receiver does, a receiver that trickles its answer
/// a byte at a time included. A redirect is not followed: it is the
/// receiver's answer, and not a 2xx one, so the post fails and is retried,
/// rather than the body and its signature going to another host or a
/// bodyless GET counting as delivered.
struct HTTPPoster: Sendable {
    let timeout: Duration

    /// One client for every route, on NIO's shared event loops; it lives as
    /// long as the process, so it is never shut down.
    private static let client = HTTPClient(
        eventLoopGroup: HTTPClient.defaultEventLoopGroup,
        configuration: HTTPClient.Configuration(redirectConfiguration: .disallow, decompression: .disabled))

    init(timeout: Duration) {
        self.timeout = timeout
    }

    /// Why a post failed, for the log.
    struct Failure: Error, CustomStringConvertible {
        var description: String
        /// The receiver refused this body (a 4xx but those in ``retried``):
        /// posting it again would only be refused again, and would hold up
        /// everything queued behind it.
        var permanent = false
    }

    /// Posts `body`; gives up after ``timeout``, or at `deadline` when that comes first (shutdown).
    /// 4xx answers that are worth retrying: a timeout or rate limit (408,
    /// 429), and what a proxy or a wrong path answers (401, 403, 404), which
    /// an operator fixes, after which what waited goes through.
    static let retried: Set<UInt> = [401, 403, 404, 408, 429]

    func post(_ body: Data, to url: URL, headers: [String: String] = [:], before deadline: ContinuousClock.Instant? = nil) async throws(Failure) {
        let wait = deadline.map { min(timeout, max(.zero, $0 - .now)) } ?? timeout
        var request = HTTPClientRequest(url: url.absoluteString)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "User-Agent", value: "FlowForest")
        for (name, value) in headers { request.headers.replaceOrAdd(name: name, value: value) }
        request.body = .bytes(ByteBuffer(bytes: body))
        let status: UInt
        do {
            let response = try await Self.client.execute(request, deadline: .now() + TimeAmount(wait))
            status = response.status.code
            // The body is dropped unread: the client closes the connection.
        } catch let error as HTTPClientError where error == .deadlineExceeded || error == .readTimeout {
            throw Failure(description: "no answer within \(wait)")
        } catch {
            throw Failure(description: "\(error)")
        }
        guard (200..<300).contains(status) else {
            throw Failure(description: "HTTP \(status)", permanent: (400..<500).contains(status) && !Self.retried.contains(status))
        }
    }
}
