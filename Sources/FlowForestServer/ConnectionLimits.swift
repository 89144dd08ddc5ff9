import FlowForestCore
import Foundation
import Metrics
import NIOCore
import Synchronization

/// How many HTTP connections the server keeps, in all and per client
/// address, and how long one may sit idle (no request part read, nothing
/// being answered; a streamed response such as the event stream is not
/// idle) or stalled (an answer it will not read). A connection beyond a
/// limit is closed as it is accepted and counted, so one client opening
/// thousands of idle or half-sent requests cannot use up the process's file
/// descriptors and shut everyone else out; loopback clients (a local health
/// check, a Prometheus on the host) have a reserve of their own that remote
/// clients cannot fill.
public struct ConnectionLimits: Sendable {
    /// Idle connections and requests whose headers never finish close after this.
    public var idleTimeout: Duration = .seconds(30)
    /// A connection whose answers have not drained (the client stopped
    /// reading, or pipelines requests it never reads) closes after this.
    public var writeTimeout: Duration = .seconds(30)
    /// Open connections per client address (IPv6: per /64, which one host
    /// usually has to itself). A reverse proxy is one client.
    public var perClient = 256
    /// Open connections from other hosts in all: half the soft descriptor
    /// limit (`RLIMIT_NOFILE`), between 64 and 16,384, so capture, the store
    /// and the collector keep descriptors of their own.
    public var total = ConnectionLimits.defaultTotal()
    /// Open loopback connections in all, beside ``total``.
    public var loopback = 256

    public init() {}

    static func defaultTotal() -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 512 }
        return Int(clamping: min(16_384, max(64, limit.rlim_cur / 2)))
    }
}

/// The open connections, counted per client address; one per server.
final class ConnectionCounter: Sendable {
    enum Refusal: String { case client, total, loopback }

    let limits: ConnectionLimits
    private let open = Mutex<(remote: Int, loopback: Int, byClient: [String: Int])>((0, 0, [:]))
    private let refused: [Refusal: Counter]
    /// Connections closed because their answers stopped draining.
    let stalled: Counter

    init(limits: ConnectionLimits, factory: any MetricsFactory) {
        self.limits = limits
        refused = Dictionary(uniqueKeysWithValues: [Refusal.client, .total, .loopback].map {
            ($0, Counter(label: "flowforest_http_connections_refused_total", dimensions: [("limit", $0.rawValue)], factory: factory))
        })
        stalled = Counter(label: "flowforest_http_stalled_connections_closed_total", factory: factory)
    }

    /// Counts a new connection from `client`, or refuses it (counted) at a limit.
    func admit(_ client: String, loopback: Bool) -> Bool {
        let refusal: Refusal? = open.withLock { state in
            if loopback ? state.loopback >= limits.loopback : state.remote >= limits.total { return loopback ? .loopback : .total }
            if state.byClient[client, default: 0] >= limits.perClient { return .client }
            if loopback { state.loopback += 1 } else { state.remote += 1 }
            state.byClient[client, default: 0] += 1
            return nil
        }
        guard let refusal else { return true }
        refused[refusal]?.increment()
        return false
    }

    func release(_ client: String, loopback: Bool) {
        open.withLock { state in
            if loopback { state.loopback -= 1 } else { state.remote -= 1 }
            let left = state.byClient[client, default: 1] - 1
            state.byClient[client] = left > 0 ? left : nil
        }
    }

    /// A handler for each new connection's pipeline.
    func handler() -> ConnectionLimitHandler { ConnectionLimitHandler(counter: self) }
}

/// Admits its connection through the ``ConnectionCounter`` when it is added
/// to the pipeline, closes it when refused, gives its place back when the
/// connection goes, and closes it when its answers stop draining for
/// ``ConnectionLimits/writeTimeout``. Reads pass through untouched.
final class ConnectionLimitHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny

    private let counter: ConnectionCounter
    private var client: (key: String, loopback: Bool)?
    private var stalled: Scheduled<Void>?

    init(counter: ConnectionCounter) {
        self.counter = counter
    }

    /// The address a connection counts against: IPv4 as is, IPv6 by its /64;
    /// and whether it is a loopback address.
    static func key(_ text: String?) -> (key: String, loopback: Bool) {
        guard let text, let address = IPAddress(text) else { return (text ?? "unknown", false) }
        if let v4 = address.ipv4Value { return (address.description, v4 >> 24 == 127) }
        return ("\(IPAddress(high: address.high, low: 0))/64", address == IPAddress(high: 0, low: 1))
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let key = Self.key(context.channel.remoteAddress?.ipAddress)
        if counter.admit(key.key, loopback: key.loopback) {
            client = key
        } else {
            context.close(promise: nil)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        stalled?.cancel()
        stalled = nil
        if let client { counter.release(client.key, loopback: client.loopback) }
        client = nil
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            stalled?.cancel()
            stalled = nil
        } else if stalled == nil {
            let (channel, closed) = (context.channel, counter.stalled)
            let c = counter.limits.writeTimeout.components
            stalled = context.eventLoop.scheduleTask(in: .seconds(c.seconds) + .nanoseconds(c.attoseconds / 1_000_000_000)) {
                closed.increment()
                channel.close(promise: nil)
            }
        }
        context.fireChannelWritabilityChanged()
    }
}
