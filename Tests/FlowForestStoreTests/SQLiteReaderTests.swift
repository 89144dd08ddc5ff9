import FlowForestCore
@testable import FlowForestStore
import Foundation
import SQLiteNIO
import Testing

/// A SQL function that holds the statement calling it, on its database
/// thread, until released (or for at most `bound`, so a test of code that
/// waits behind it fails instead of hanging).
private final class HeldStatement: @unchecked Sendable {
    private let condition = NSCondition()
    private var entered = false
    private var released = false
    let bound: TimeInterval = 30

    var function: SQLiteCustomFunction {
        SQLiteCustomFunction("ff_hold", argumentCount: 0) { [self] _ in
            condition.lock()
            entered = true
            condition.broadcast()
            let until = Date(timeIntervalSinceNow: bound)
            while !released, condition.wait(until: until) {}
            released = true
            condition.unlock()
            return 1
        }
    }

    /// Waits (at most `bound`) until a statement is held; true once one is.
    func waitEntered() -> Bool {
        condition.lock()
        defer { condition.unlock() }
        let until = Date(timeIntervalSinceNow: bound)
        while !entered, condition.wait(until: until) {}
        return entered
    }

    var isReleased: Bool {
        condition.lock()
        defer { condition.unlock() }
        return released
    }

    func release() {
        condition.lock()
        released = true
        condition.broadcast()
        condition.unlock()
    }
}

@Suite("SQLite: the API's reads beside the writer", .serialized)
struct SQLiteReaderTests {
    @Test("a read that runs long holds neither the writer's inserts nor the health ping")
    func longReadHoldsNothing() async throws {
        try await withFreshStore(.sqlite) { store, _ in
            let readers = try #require(store.readers, "a SQLite file gets reader connections")
            let held = HeldStatement()
            guard case .sqlite(let writer) = store.backend else { Issue.record("not SQLite"); return }
            // On the writer too, so that a read sent there would hold it (and fail here).
            for connection in readers.all + [writer] { try await connection.install(customFunction: held.function) }
            // Stands for `/api/hosts?since=0` over a day of flows: one step that does all the work.
            let read = Task { try await store.withSQL(.read) { db in try await db.raw("SELECT ff_hold() AS n").all().count } }
            defer { held.release() }
            #expect(held.waitEntered())

            #expect(await store.ping(within: .seconds(2)))
            try await store.insertFlows([StoredFlow(sensor: "test", record: flow(1, lastMs: 1_000))])
            #expect(!held.isReleased, "the ping and the insert waited for the read to end")

            held.release()
            #expect(try await read.value == 1)
            #expect(try await store.recentFlows(sinceMs: 0).map(\.record.id) == [1], "a read sees what the writer committed")
        }
    }

    @Test("reader connections refuse to write")
    func readersOnlyRead() async throws {
        try await withFreshStore(.sqlite) { store, _ in
            await #expect(throws: (any Error).self) {
                try await store.withSQL(.read) { db in try await db.raw("DELETE FROM flows").run() }
            }
        }
    }

    @Test("an in-memory database reads on its one connection")
    func memoryHasNoReaders() async throws {
        let store = try await Store.open(.sqlite(path: ":memory:"), logger: .init(label: "test"))
        defer { Task { await store.close() } }
        #expect(store.readers == nil)
        try await store.insertFlows([StoredFlow(sensor: "test", record: flow(7, lastMs: 1_000))])
        #expect(try await store.recentFlows(sinceMs: 0).map(\.record.id) == [7])
    }
}
