import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Posts one JSON body and reports whether the receiver took it (2xx).
struct HTTPPoster: Sendable {
    let session: URLSession
    let timeout: Duration

    init(timeout: Duration) {
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = Double(timeout.components.seconds)
        configuration.httpMaximumConnectionsPerHost = 1
        session = URLSession(configuration: configuration)
        self.timeout = timeout
    }

    /// Why a post failed, for the log.
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    func post(_ body: Data, to url: URL, headers: [String: String] = [:]) async throws(Failure) {
        var request = URLRequest(url: url)
        request.httpMethod = "POST"
        request.httpBody = body
        request.timeoutInterval = Double(timeout.components.seconds)
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        request.setValue("FlowForest", forHTTPHeaderField: "User-Agent")
        for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
        let response: URLResponse
        do {
            (_, response) = try await session.data(for: request)
        } catch {
            throw Failure(description: "\(error.localizedDescription)")
        }
        guard let status = (response as? HTTPURLResponse)?.statusCode else { throw Failure(description: "no HTTP response") }
        guard (200..<300).contains(status) else { throw Failure(description: "HTTP \(status)") }
    }
}
