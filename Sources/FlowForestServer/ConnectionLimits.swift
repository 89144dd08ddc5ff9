import FlowForestCore
import Foundation
import Metrics
import NIOCore
import Synchronization

/// How many HTTP connections the server keeps, in all and per client
/// address, and how long one may sit idle (no request part read, nothing
/// being answered; a streamed response such as the event stream is not
/// idle). A connection beyond a limit is closed as it is accepted and
/// counted, so one client opening thousands of idle or half-sent requests
/// cannot use up the process's file descriptors and shut everyone else out,
/// and a slow sender's unfinished headers are dropped after the idle time.
public struct ConnectionLimits: Sendable {
    /// Idle connections and requests whose headers never finish close after this.
    public var idleTimeout: Duration = .seconds(30)
    /// Open connections per client address (IPv6: per /64, which one host
    /// usually has to itself). A reverse proxy is one client.
    public var perClient = 256
    /// Open connections in all: half the soft descriptor limit
    /// (`RLIMIT_NOFILE`), between 64 and 4,096, so capture, the store and
    /// the collector keep descriptors of their own.
    public var total = ConnectionLimits.defaultTotal()

    public init() {}

    static func defaultTotal() -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 512 }
        return Int(clamping: min(4096, max(64, limit.rlim_cur / 2)))
    }
}

/// The open connections, counted per client address; one per server.
final class ConnectionCounter: Sendable {
    enum Refusal: String { case client, total }

    let limits: ConnectionLimits
    private let open = Mutex<(total: Int, byClient: [String: Int])>((0, [:]))
    private let refusedByClient: Counter
    private let refusedByTotal: Counter

    init(limits: ConnectionLimits, factory: any MetricsFactory) {
        self.limits = limits
        func refused(_ r: Refusal) -> Counter {
            Counter(label: "flowforest_http_connections_refused_total", dimensions: [("limit", r.rawValue)], factory: factory)
        }
        refusedByClient = refused(.client)
        refusedByTotal = refused(.total)
    }

    /// Counts a new connection from `client`, or refuses it (counted) at a limit.
    func admit(_ client: String) -> Bool {
        let refusal: Refusal? = open.withLock { state in
            if state.total >= limits.total { return .total }
            if state.byClient[client, default: 0] >= limits.perClient { return .client }
            state.total += 1
            state.byClient[client, default: 0] += 1
            return nil
        }
        switch refusal {
        case .client: refusedByClient.increment()
        case .total: refusedByTotal.increment()
        case nil: return true
        }
        return false
    }

    func release(_ client: String) {
        open.withLock { state in
            state.total -= 1
            let left = state.byClient[client, default: 1] - 1
            state.byClient[client] = left > 0 ? left : nil
        }
    }

    /// A handler for each new connection's pipeline.
    func handler() -> ConnectionLimitHandler { ConnectionLimitHandler(counter: self) }
}

/// Admits its connection through the ``ConnectionCounter`` when it is added
/// to the pipeline, closes it when refused, and gives its place back when
/// the connection goes. Reads pass through untouched.
final class ConnectionLimitHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny

    private let counter: ConnectionCounter
    private var client: String?

    init(counter: ConnectionCounter) {
        self.counter = counter
    }

    /// The address a connection counts against: IPv4 as is, IPv6 by its /64.
    static func client(_ text: String?) -> String {
        guard let text, let address = IPAddress(text) else { return text ?? "unknown" }
        guard !address.isIPv4 else { return address.description }
        return "\(IPAddress(high: address.high, low: 0))/64"
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let address = Self.client(context.channel.remoteAddress?.ipAddress)
        if counter.admit(address) {
            client = address
        } else {
            context.close(promise: nil)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        if let client { counter.release(client) }
        client = nil
    }
}
