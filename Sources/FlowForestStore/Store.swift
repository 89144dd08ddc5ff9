import FlowForestCore
public import Logging
public import ServiceLifecycle
import NIOCore
import NIOPosix
import PostgresKit
import PostgresNIO
import SQLKit
import SQLiteKit
import Synchronization

/// Where the store keeps its tables.
public enum StoreLocation: Sendable, Hashable, CustomStringConvertible {
    /// A SQLite file, created on first use.
    case sqlite(path: String)
    /// A PostgreSQL server, `postgres://user:pass@host:port/db`.
    case postgres(url: String)

    /// Parses `--database`: a `postgres://` or `postgresql://` URL, else a SQLite file path.
    public init(_ text: String) {
        if text.hasPrefix("postgres://") || text.hasPrefix("postgresql://") {
            self = .postgres(url: text)
        } else {
            self = .sqlite(path: text.hasPrefix("sqlite://") ? String(text.dropFirst("sqlite://".count)) : text)
        }
    }

    /// The location with any password hidden, for logs.
    public var description: String {
        switch self {
        case .sqlite(let path): return "sqlite:\(path)"
        case .postgres(let url):
            // Hide the password between "user:" and "@".
            guard let at = url.lastIndex(of: "@"), let scheme = url.range(of: "://"),
                  let colon = url[scheme.upperBound..<at].firstIndex(of: ":") else { return url }
            return String(url[..<url.index(after: colon)]) + "***" + String(url[at...])
        }
    }
}

/// Errors the store reports to callers.
public enum StoreError: Error, CustomStringConvertible, Sendable {
    case badLocation(String)
    case notFound(String)
    case conflict(String)
    case invalid(String)
    case unavailable(String)

    public var description: String {
        switch self {
        case .badLocation(let s), .notFound(let s), .conflict(let s), .invalid(let s), .unavailable(let s): return s
        }
    }
}

/// FlowForest's one SQL store: anomalies, flows, models, users and API
/// tokens over a SQLite file or a PostgreSQL server, through sql-kit.
///
/// A `Service`: running it keeps the PostgreSQL connection pool alive until
/// graceful shutdown; with SQLite it only waits. Open with ``open(_:logger:)``,
/// which also applies pending migrations.
public final class Store: Service, Sendable {
    enum Backend: Sendable {
        case sqlite(SQLiteConnection)
        case postgres(PostgresClient)
    }

    let backend: Backend
    /// On a SQLite file: the connections the API's lists read from, so that
    /// a long list never holds the writer or the health ping.
    let readers: SQLiteReaders?
    /// True on SQLite, for the few statements whose SQL differs.
    var isSQLite: Bool {
        if case .sqlite = backend { return true }
        return false
    }
    /// The running PostgreSQL pool; cancelled by ``close()``.
    private let clientTask: Task<Void, Never>?
    /// When ``ping(within:)`` last succeeded.
    private let lastAnswer = Mutex<ContinuousClock.Instant?>(nil)
    public let logger: Logger
    /// `sqlite` or `postgresql`, for logs and health.
    public let kind: String

    /// How long one database operation may wait for PostgreSQL before it
    /// fails (and the writer counts an error and retries).
    public let queryTimeout: Duration

    /// The SQLite file as opened: its path, device and inode. A file deleted
    /// or replaced under the running store keeps taking writes into the old,
    /// unlinked inode, which a restart would never see; ``fileProblem()``
    /// compares this with what the path names now.
    let file: (path: String, device: UInt64, inode: UInt64)?

    private init(backend: Backend, clientTask: Task<Void, Never>?, logger: Logger, queryTimeout: Duration,
                 file: (path: String, device: UInt64, inode: UInt64)? = nil, readers: SQLiteReaders? = nil) {
        self.file = file
        self.readers = readers
        self.queryTimeout = queryTimeout
        self.backend = backend
        self.clientTask = clientTask
        self.logger = logger
        switch backend {
        case .sqlite: kind = "sqlite"
        case .postgres: kind = "postgresql"
        }
    }

    /// Opens (creating a SQLite file if needed) and migrates the store.
    public static func open(_ location: StoreLocation, logger: Logger, queryTimeout: Duration = .seconds(30)) async throws -> Store {
        let store: Store
        switch location {
        case .sqlite(let path):
            store = try await openSQLite(path: path, logger: logger, queryTimeout: queryTimeout)
        case .postgres(let url):
            let configuration: SQLPostgresConfiguration
            do {
                configuration = try SQLPostgresConfiguration(url: url)
            } catch {
                throw StoreError.badLocation("not a PostgreSQL URL: \(location) (\(error))")
            }
            let core = configuration.coreConfiguration
            var clientConfiguration: PostgresClient.Configuration
            if let socket = core.unixSocketPath {
                clientConfiguration = .init(unixSocketPath: socket, username: core.username, password: core.password, database: core.database)
            } else if let host = core.host {
                let tls: PostgresClient.Configuration.TLS = core.tls.isEnforced
                    ? .require(.makeClientConfiguration())
                    : (core.tls.isAllowed ? .prefer(.makeClientConfiguration()) : .disable)
                clientConfiguration = .init(host: host, port: core.port ?? 5432, username: core.username, password: core.password, database: core.database, tls: tls)
            } else {
                throw StoreError.badLocation("PostgreSQL URL without a host: \(location)")
            }
            // A busy server gets as long to set up a connection as to answer a
            // query: while creation fails the pool keeps requests queued and
            // starts every retry over, so a short timeout would only turn a
            // slow server into one that never answers. Callers are bounded by
            // their own deadline (`withDeadline`) either way.
            clientConfiguration.options.connectTimeout = queryTimeout
            let client = PostgresClient(configuration: clientConfiguration, backgroundLogger: logger)
            let task = Task { await client.run() }
            store = Store(backend: .postgres(client), clientTask: task, logger: logger, queryTimeout: queryTimeout)
        }
        do {
            try await store.migrate()
        } catch {
            await store.close()
            throw error
        }
        return store
    }

    /// Opens (creating) the SQLite file at `path` and sets it up; the
    /// connection, and the readers once opened, are closed on any failure.
    private static func openSQLite(path: String, logger: Logger, queryTimeout: Duration) async throws -> Store {
        // SQLite opens a private temporary database for an empty name: a
        // service given an empty FLOWFOREST_DATABASE would start healthy and
        // lose every credential and record at each restart. (":memory:" is
        // asked for by name, and kept for tools and tests.)
        guard !path.isEmpty else {
            throw StoreError.badLocation("no database file named (\"\(path)\"): give --database or FLOWFOREST_DATABASE a path")
        }
        try createPrivately(path)
        let connection = try await SQLiteConnection.open(storage: .file(path: path), logger: logger)
        var readers: SQLiteReaders?
        do {
            let db = connection.sql()
            // WAL lets the API read while the writer writes; the busy timeout
            // covers a second process (the CLI adding a token) on the same file.
            let mode = try await db.raw("PRAGMA journal_mode=WAL").first()?.decode(column: "journal_mode", as: String.self)
            try await db.raw("PRAGMA busy_timeout=5000").run()
            // In WAL mode NORMAL syncs at checkpoints, not at every commit: a
            // crash of the process loses nothing, a power cut at most the
            // last commits, and writes no longer wait on the disk per batch.
            try await db.raw("PRAGMA synchronous=NORMAL").run()
            // Every flow row lands in three indexes at random places (source
            // address, the unique key) and every anomaly in five: with the
            // default 2 MiB page cache most inserts read index pages back
            // from the file and spill dirty ones into the WAL mid-commit.
            // 16 MiB holds those indexes' hot pages.
            try await db.raw("PRAGMA cache_size=-16384").run()
            // A checkpoint copies each page changed since the last one back
            // into the file and syncs it: every 4,000 pages (16 MiB of WAL)
            // instead of 1,000, a page the inserts keep changing is copied
            // once where it was copied four times. The WAL is synced at
            // checkpoints only, so a power cut may lose up to that much more.
            try await db.raw("PRAGMA wal_autocheckpoint=4000").run()
            // A WAL that grew while long reads held old snapshots is cut back
            // to 64 MiB when the writer next starts it over.
            try await db.raw("PRAGMA journal_size_limit=67108864").run()
            var st = stat()
            let identity: (path: String, device: UInt64, inode: UInt64)? = stat(path, &st) == 0 ? (path, UInt64(st.st_dev), UInt64(st.st_ino)) : nil
            // An in-memory database is one per connection: it gets no
            // readers. Nor does a file that cannot be in WAL mode (some
            // network file systems): there a long read would lock the writer out.
            if identity != nil {
                if mode?.lowercased() == "wal" {
                    readers = try await SQLiteReaders.open(path: path, logger: logger)
                } else {
                    logger.warning("the database is not in WAL mode: the API reads on the writer's connection", metadata: [
                        "path": "\(path)", "journal_mode": "\(mode ?? "unknown")"])
                }
            }
            // SQLite gives -wal and -shm the main file's mode; tightening all
            // three also fixes a file an older version created world-readable.
            for file in [path, path + "-wal", path + "-shm"] { restrictMode(file, logger: logger) }
            return Store(backend: .sqlite(connection), clientTask: nil, logger: logger, queryTimeout: queryTimeout,
                         file: identity, readers: readers)
        } catch {
            await readers?.close()
            try? await connection.close().get()
            throw error
        }
    }

    /// Opens the store, runs `body`, and closes it again (for one-shot commands).
    public static func withStore<T: Sendable>(
        _ location: StoreLocation, logger: Logger, queryTimeout: Duration = .seconds(30), _ body: (Store) async throws -> T
    ) async throws -> T {
        let store = try await open(location, logger: logger, queryTimeout: queryTimeout)
        do {
            let result = try await body(store)
            await store.close()
            return result
        } catch {
            await store.close()
            throw error
        }
    }

    /// Runs until graceful shutdown, then closes the connections.
    public func run() async throws {
        try? await gracefulShutdown()
        await close()
    }

    /// Closes the database connections; later calls fail.
    public func close() async {
        switch backend {
        case .sqlite(let connection):
            await readers?.close()
            // The future form: the async one skips the close in a cancelled task
            // (a service group cancelled at shutdown), and an open connection
            // traps when it is deinitialised.
            try? await connection.close().get()
        case .postgres:
            clientTask?.cancel()
            await clientTask?.value
        }
    }

    /// An instant by which every PostgreSQL call made within its scope must
    /// answer, sooner than ``queryTimeout`` would: the writer's last flush at
    /// shutdown (all its calls together within the grace), a token check or
    /// a health ping (seconds, while a hung database would hold them 30 s).
    @TaskLocal public static var deadline: ContinuousClock.Instant?

    /// What a PostgreSQL call may take now: ``queryTimeout``, or less by ``deadline``.
    private var callTimeout: Duration {
        guard let deadline = Self.deadline else { return queryTimeout }
        return max(.zero, min(queryTimeout, deadline - .now))
    }

    /// What a call does with the database, which picks its connection on SQLite.
    public enum Access: Sendable {
        /// Writes, and reads that must see a write just made or that the
        /// writer, the pipeline and health depend on: the writer's connection.
        case write
        /// A list or lookup the API asks for: a reader connection when the
        /// store has them, which sees every write committed before it began.
        case read
    }

    /// Runs `body` with a SQL database: on SQLite the writer's connection or,
    /// for a `.read`, a reader's; a pooled PostgreSQL connection held for the
    /// whole body.
    func withSQL<T: Sendable>(_ access: Access = .write, _ body: @escaping @Sendable (any SQLDatabase) async throws -> T) async throws -> T {
        switch backend {
        case .sqlite(let connection):
            if access == .read, let readers { return try await readers.withSQL(body) }
            return try await body(connection.sql(queryLogLevel: .trace))
        case .postgres(let client):
            // The pool keeps a request waiting while the server is down; a
            // deadline turns an outage into an error the writer can count and retry.
            let timeout = callTimeout
            let deadline = ContinuousClock.now + timeout
            return try await Self.withDeadline(timeout) {
                try await client.withConnection { connection in
                    let db = connection.sql(queryLogLevel: .trace)
                    guard access == .read else { return try await body(db) }
                    // An API read the caller stopped waiting for must not go on
                    // holding the connection: the server ends it at the same
                    // deadline (what is left of it after the wait for a connection).
                    let ms = max(1, (deadline - .now).wholeMilliseconds)
                    try await db.raw("SET statement_timeout = \(unsafeRaw: String(ms))").run()
                    do {
                        let result = try await body(db)
                        try await db.raw("RESET statement_timeout").run()
                        return result
                    } catch {
                        try? await db.raw("RESET statement_timeout").run()
                        throw error
                    }
                }
            }
        }
    }

    /// The result of `work`, or `StoreError.unavailable` once `deadline` has
    /// passed. The caller is answered at the deadline even when the work does
    /// not end at once on cancellation (a connection being set up, a query on
    /// a connection the server dropped): a task group would wait for it.
    static func withDeadline<T: Sendable>(_ deadline: Duration, _ work: @escaping @Sendable () async throws -> T) async throws -> T {
        let race = DeadlineRace<T>()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
                race.start(continuation)
                race.add(Task {
                    do { race.answer(.success(try await work())) } catch { race.answer(.failure(error)) }
                })
                race.add(Task {
                    guard (try? await Task.sleep(for: deadline)) != nil else { return }
                    race.answer(.failure(StoreError.unavailable("PostgreSQL did not answer within \(deadline)")))
                })
            }
        } onCancel: {
            race.answer(.failure(CancellationError()))
        }
    }

    var isPostgres: Bool {
        if case .postgres = backend { return true }
        return false
    }

    /// Why the SQLite file this store writes is no longer the one at its
    /// path (deleted, or replaced by another file), or nil when it still is
    /// (and always for PostgreSQL).
    public func fileProblem() -> String? {
        guard let file else { return nil }
        var st = stat()
        guard stat(file.path, &st) == 0 else {
            let reason = String(cString: strerror(errno))
            return "the database file \(file.path) is gone (\(reason)): writes go to a deleted file and are lost at restart"
        }
        if UInt64(st.st_dev) != file.device || UInt64(st.st_ino) != file.inode {
            return "the database file \(file.path) was replaced by another file: writes go to the old, unlinked file"
        }
        return nil
    }

    /// True when ``ping(within:)`` succeeded within `interval`: a health
    /// probe asked many times a second answers from the last ping rather
    /// than queue a query (and a hop to the database's thread) each time.
    public func answered(within interval: Duration) -> Bool {
        guard let last = lastAnswer.withLock({ $0 }) else { return false }
        return ContinuousClock.now - last < interval
    }

    /// Runs a trivial query: true when the database answers within
    /// `deadline`. Health and `/metrics` ask this, so it answers within
    /// seconds, not the query timeout, while PostgreSQL is down or frozen: a
    /// scrape that waited 30 s would never see the store unhealthy.
    public func ping(within deadline: Duration = .seconds(2)) async -> Bool {
        do {
            try await Self.$deadline.withValue(.now + deadline) {
                try await withSQL { try await $0.raw("SELECT 1").run() }
            }
            lastAnswer.withLock { $0 = .now }
            return true
        } catch {
            return false
        }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Creates a missing SQLite file with mode 0600 before SQLite opens it: the
/// store holds token and password hashes, and SQLite would otherwise create
/// it 0644 under the usual umask.
func createPrivately(_ path: String) throws {
    guard !path.isEmpty, path != ":memory:", !path.hasPrefix("file:") else { return }
    let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
    if fd >= 0 {
        // The umask can only remove bits; make the mode exact regardless.
        fchmod(fd, 0o600)
        close(fd)
    } else if errno != EEXIST {
        throw StoreError.badLocation("cannot create SQLite file \(path): \(String(cString: strerror(errno)))")
    }
}

/// Removes group and other access from `path` if it exists.
func restrictMode(_ path: String, logger: Logger) {
    var st = stat()
    guard stat(path, &st) == 0, st.st_mode & 0o077 != 0 else { return }
    if chmod(path, st.st_mode & 0o700) != 0 {
        logger.warning("cannot make the database file private (mode 0600)", metadata: [
            "path": "\(path)", "error": "\(String(cString: strerror(errno)))"])
    }
}

/// The work and the timer of one `Store.withDeadline` call: the first to end
/// answers the caller, and the other is cancelled.
private final class DeadlineRace<T: Sendable>: Sendable {
    private let state = Mutex<(continuation: CheckedContinuation<T, any Error>?, tasks: [Task<Void, Never>])>((nil, []))

    func start(_ continuation: CheckedContinuation<T, any Error>) {
        state.withLock { $0.continuation = continuation }
    }

    func add(_ task: Task<Void, Never>) {
        let answered = state.withLock { s -> Bool in
            s.tasks.append(task)
            return s.continuation == nil
        }
        if answered { task.cancel() }
    }

    func answer(_ result: Result<T, any Error>) {
        let continuation = state.withLock { s in
            defer { s.continuation = nil }
            return s.continuation
        }
        continuation?.resume(with: result)
        cancel()
    }

    func cancel() {
        for task in state.withLock({ $0.tasks }) { task.cancel() }
    }
}
