import CoreMetrics

/// The API's metric handles, made once when the application is built: the
/// factory looks a series up by label and dimensions, which is too much
/// work for every request an ingest client or a password guesser sends.
struct APIMetrics: Sendable {
    /// Why an ingest request was refused (`reason` of `flowforest_ingest_rejected_requests_total`).
    enum IngestRejection: String, CaseIterable, Sendable {
        case tooLarge = "too_large"
        case tooManyRecords = "too_many_records"
        case invalid
        case storeBusy = "store_busy"
        /// Decoding was at its limit of bodies running and waiting.
        case decoderBusy = "decoder_busy"
    }

    /// Why a sign-in failed (`reason` of `flowforest_login_failures_total`).
    enum LoginFailure: String, CaseIterable, Sendable {
        case throttled
        case wrongPassword = "wrong_password"
    }

    let storeHealthy: Gauge
    let ingestRecords: Counter
    private let ingestRejected: [IngestRejection: Counter]
    private let loginFailures: [LoginFailure: Counter]

    init(factory: any MetricsFactory) {
        storeHealthy = Gauge(label: "flowforest_store_healthy", factory: factory)
        ingestRecords = Counter(label: "flowforest_ingest_records_total", factory: factory)
        ingestRejected = Dictionary(uniqueKeysWithValues: IngestRejection.allCases.map {
            ($0, Counter(label: "flowforest_ingest_rejected_requests_total", dimensions: [("reason", $0.rawValue)], factory: factory))
        })
        loginFailures = Dictionary(uniqueKeysWithValues: LoginFailure.allCases.map {
            ($0, Counter(label: "flowforest_login_failures_total", dimensions: [("reason", $0.rawValue)], factory: factory))
        })
    }

    func rejected(_ reason: IngestRejection) { ingestRejected[reason]!.increment() }
    func loginFailed(_ reason: LoginFailure) { loginFailures[reason]!.increment() }
}
