import Logging
import NIOCore
import NIOPosix
import SQLKit
import SQLiteKit
import Synchronization

/// Connections that answer the API's lists from a SQLite file, on threads of
/// their own.
///
/// SQLite runs one statement at a time on a connection, and a list over a
/// day of flows (`/api/hosts?since=0` groups millions of rows) does its work
/// inside a single step: on the writer's connection that held every insert
/// and the health ping for as long (7 s over 3 million flows, measured). In
/// WAL mode another connection reads a snapshot while the writer commits, so
/// the lists run here and only wait for each other.
///
/// Each connection has one thread of its own, so its statements run one
/// after another. On a shared pool a second statement could start on a
/// connection between two steps of an open one (SQLite holds a
/// connection's lock only for each step) and read inside that one's older
/// snapshot, missing what was written since.
final class SQLiteReaders: Sendable {
    /// Connections the API's reads share.
    static let defaultCount = 2

    private let connections: [SQLiteConnection]
    private let threads: [NIOThreadPool]
    /// Reads under way on each connection: a read goes to the least busy.
    private let inUse: Mutex<[Int]>

    private init(connections: [SQLiteConnection], threads: [NIOThreadPool]) {
        self.connections = connections
        self.threads = threads
        inUse = Mutex(Array(repeating: 0, count: connections.count))
    }

    /// Opens `count` connections to the file at `path`, which must exist
    /// in WAL mode (the writer's connection creates, sets and migrates it).
    static func open(path: String, count: Int = defaultCount, logger: Logger) async throws -> SQLiteReaders {
        var threads: [NIOThreadPool] = []
        var connections: [SQLiteConnection] = []
        do {
            for _ in 0..<max(1, count) {
                let thread = NIOThreadPool(numberOfThreads: 1)
                thread.start()
                threads.append(thread)
                let connection = try await SQLiteConnection.open(
                    storage: .file(path: path), threadPool: thread, logger: logger,
                    on: MultiThreadedEventLoopGroup.singleton.any())
                connections.append(connection)
                // These connections only read: a statement that would write is refused.
                try await connection.sql().raw("PRAGMA query_only=ON").run()
                try await connection.sql().raw("PRAGMA busy_timeout=5000").run()
            }
        } catch {
            for connection in connections { try? await connection.close().get() }
            for thread in threads { try? await thread.shutdownGracefully() }
            throw error
        }
        return SQLiteReaders(connections: connections, threads: threads)
    }

    /// Runs `body` on the connection with the fewest reads under way.
    func withSQL<T: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) async throws -> T) async throws -> T {
        let index = inUse.withLock { counts in
            let least = counts.indices.min { counts[$0] < counts[$1] } ?? 0
            counts[least] += 1
            return least
        }
        defer { inUse.withLock { $0[index] -= 1 } }
        return try await body(connections[index].sql(queryLogLevel: .trace))
    }

    /// Each connection, for tests that install functions on them.
    var all: [SQLiteConnection] { connections }

    /// Closes the connections, then stops their threads.
    func close() async {
        for connection in connections { try? await connection.close().get() }
        for thread in threads { try? await thread.shutdownGracefully() }
    }
}
