import Foundation
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// An HTTP receiver on loopback that keeps every POST to `/hook` (body and
/// headers, names lower-cased), answering `failStatus` (503: an outage) to the first
/// `failFirst` of them: the webhook end of Alertmanager, or a FlowForest webhook.
final class HookReceiver: Sendable {
    struct Post: Sendable {
        var body: Data
        var headers: [String: String]
    }

    private let posts = Mutex<[Post]>([])
    private let failures = Mutex(0)
    private let boundPort = Mutex<Int?>(nil)
    private let failStatus: HTTPResponse.Status
    private let task = Mutex<Task<Void, any Error>?>(nil)

    init(failFirst: Int = 0, failStatus: HTTPResponse.Status = .serviceUnavailable) {
        failures.withLock { $0 = failFirst }
        self.failStatus = failStatus
    }

    var received: [Post] { posts.withLock { $0 } }
    var port: Int? { boundPort.withLock { $0 } }
    var url: String { "http://127.0.0.1:\(port ?? 0)/hook" }

    /// Starts listening on a port the kernel picks; returns once bound.
    func start() async throws {
        let router = Router()
        @Sendable func keep(_ request: Request) async throws -> Response {
            let body = try await request.body.collect(upTo: 4 * 1024 * 1024)
            let failing = self.failures.withLock { n -> Bool in
                guard n > 0 else { return false }
                n -= 1
                return true
            }
            if failing { return Response(status: self.failStatus) }
            var headers: [String: String] = [:]
            for field in request.headers { headers[field.name.canonicalName.lowercased()] = field.value }
            self.posts.withLock { $0.append(Post(body: Data(buffer: body), headers: headers)) }
            return Response(status: .ok)
        }
        // Alertmanager's API path under the receiver's URL, for a route pointed at it.
        router.post("hook/api/v2/alerts") { request, _ -> Response in try await keep(request) }
        router.post("hook") { request, _ -> Response in try await keep(request) }
        var logger = Logger(label: "hook-receiver")
        logger.logLevel = .error
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                              onServerRunning: { channel in self.boundPort.withLock { $0 = channel.localAddress?.port } },
                              logger: logger)
        task.withLock { $0 = Task { try await app.runService() } }
        try await waitFor("the hook receiver to listen") { self.port != nil }
    }

    func stop() async {
        let t = task.withLock { $0 }
        t?.cancel()
        _ = try? await t?.value
    }
}
