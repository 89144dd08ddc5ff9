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
        // The completion-handler task, not `data(for:)`: the async form hands
        // task cancellation (a route stopping mid-post) to URLSession, whose
        // Linux implementation can then trap ("a task that is not in the
        // registry"). A post runs to its end or its timeout instead.
        let result: Result<URLResponse, any Error> = await withCheckedContinuation { continuation in
            session.dataTask(with: request) { _, response, error in
                if let response, error == nil {
                    continuation.resume(returning: .success(response))
                } else {
                    continuation.resume(returning: .failure(error ?? Failure(description: "no HTTP response")))
                }
            }.resume()
        }
        let response: URLResponse
        switch result {
        case .success(let r): response = r
        case .failure(let error): throw Failure(description: "\(error.localizedDescription)")
        }
        guard let status = (response as? HTTPURLResponse)?.statusCode else { throw Failure(description: "no HTTP response") }
        guard (200..<300).contains(status) else { throw Failure(description: "HTTP \(status)") }
    }
}
