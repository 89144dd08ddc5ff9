import FlowForestCore
import FlowForestServer
import FlowForestStore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Synchronization
import Testing

/// Finding 6, "auth fails open": no mode serves without credentials unless
/// asked for with --no-auth on loopback.
@Suite("Secure by default")
struct FirstStartTests {
    /// What the service announced.
    final class Said: Sendable {
        let lines = Mutex<[String]>([])
        func withLock<T>(_ body: ([String]) -> T) -> T { lines.withLock { body($0) } }
    }

    /// Builds the service on `db` with the announcement captured.
    static func build(_ db: TestDatabase, configure: (inout ServerConfiguration) -> Void = { _ in })
        async throws -> (some ApplicationProtocol, ServiceParts, Said)
    {
        let said = Said()
        var configuration = testConfiguration(db)
        configuration.port = 8123
        configuration.announce = { message in said.lines.withLock { $0.append(message) } }
        configure(&configuration)
        let (app, parts) = try await buildApplicationParts(configuration: configuration, flowSource: nil, logger: quietLogger, detector: NeverDetects())
        return (app, parts, said)
    }

    @Test("first start creates an admin token, announces a sign-in link once, and the link signs the browser in")
    func firstStartLink() async throws {
        let db = try await TestDatabase.make(credentials: false)
        defer { db.remove() }
        let (app, parts, said) = try await Self.build(db)
        let token = try #require(parts.firstStartToken)
        let messages = said.withLock { $0 }
        #expect(messages.count == 1)
        #expect(messages.first?.contains("http://127.0.0.1:8123/?token=\(token)") == true, "\(messages)")
        #expect(try await parts.store.tokens() == [Principal(name: "first-start-admin", role: .admin)])
        #expect(try await parts.store.credentialsWereConfigured())
        try await app.test(.router) { client async throws in
            // Nothing is open without a credential, loopback or not.
            #expect(try await client.call("/api/anomalies").status == .unauthorized)
            #expect(try await client.call("/api/traffic", .post, json: "[]").status == .unauthorized)
            let link = try await client.call("/?token=\(token)")
            #expect(link.status == .seeOther)
            #expect(link.headers[.location] == "/", "the token leaves the address bar")
            let setCookie = try #require(link.headers[.setCookie])
            #expect(setCookie.contains("HttpOnly") && setCookie.contains("SameSite=Strict"))
            let cookie = String(setCookie.split(separator: ";")[0])
            let session = try await client.call("/api/session", cookie: cookie).object()
            #expect(session["role"] as? String == "admin")
            #expect((session["csrf_token"] as? String)?.count == 64)
            #expect(try await client.call("/api/anomalies", cookie: cookie).status == .ok)
            #expect(try await client.call("/?token=fft_00").status == .unauthorized)
        }
        await parts.store.close()
        // A second start announces nothing: the credential exists.
        let (_, again, saidAgain) = try await Self.build(db)
        #expect(again.firstStartToken == nil)
        #expect(saidAgain.withLock { $0 }.isEmpty)
        await again.store.close()
    }

    @Test("a database that had credentials and has none refuses to start")
    func credentialsLost() async throws {
        let db = try await TestDatabase.make()
        defer { db.remove() }
        try await Store.withStore(db.location, logger: quietLogger) { store in
            for t in try await store.tokens() { _ = try await store.removeToken(name: t.name) }
            for u in try await store.users() { _ = try await store.removeUser(name: u.name) }
            #expect(try await store.credentialCount() == 0)
        }
        do {
            _ = try await Self.build(db)
            Issue.record("expected a refusal")
        } catch let error as ServerStartError {
            #expect(error.description.contains("had credentials and now has none"))
            #expect(error.description.contains("flowforest token add"))
        }
        // Refused on loopback too, and nothing was created.
        try await Store.withStore(db.location, logger: quietLogger) { store async throws in #expect(try await store.credentialCount() == 0) }
    }

    @Test("a database deleted under the running service comes back with a new admin token, never open")
    func deletedDatabase() async throws {
        let db = try await TestDatabase.make()
        defer { db.remove() }
        let (_, first, _) = try await Self.build(db)
        #expect(first.firstStartToken == nil)
        try FileManager.default.removeItem(at: db.directory)
        await first.store.close()
        try FileManager.default.createDirectory(at: db.directory, withIntermediateDirectories: true)
        let (app, restarted, said) = try await Self.build(db)
        let token = try #require(restarted.firstStartToken)
        #expect(said.withLock { $0 }.count == 1)
        try await app.test(.router) { client async throws in
            #expect(try await client.call("/api/anomalies").status == .unauthorized)
            #expect(try await client.call("/api/anomalies", token: db.adminToken).status == .unauthorized, "old tokens are gone")
            #expect(try await client.call("/api/anomalies", token: token).status == .ok)
        }
        await restarted.store.close()
    }

    @Test("--no-auth is refused off loopback and opens the API on loopback without creating a credential")
    func noAuth() async throws {
        let db = try await TestDatabase.make(credentials: false)
        defer { db.remove() }
        do {
            _ = try await Self.build(db) { $0.noAuth = true; $0.host = "0.0.0.0" }
            Issue.record("expected a refusal")
        } catch let error as ServerStartError {
            #expect(error.description.contains("--no-auth"))
            #expect(error.description.contains("loopback"))
        }
        let (app, parts, said) = try await Self.build(db) { $0.noAuth = true }
        #expect(parts.firstStartToken == nil)
        #expect(said.withLock { $0 }.isEmpty)
        #expect(try await parts.store.credentialCount() == 0)
        try await app.test(.router) { client async throws in
            #expect(try await client.call("/api/anomalies").status == .ok)
            #expect(try await client.call("/api/traffic", .post, json: goodRecords).status == .accepted)
        }
        await parts.store.close()
    }

    @Test("a public address without credentials starts with a first-start admin token instead of refusing or running open")
    func publicFirstStart() async throws {
        let db = try await TestDatabase.make(credentials: false)
        defer { db.remove() }
        let (app, parts, said) = try await Self.build(db) { $0.host = "0.0.0.0" }
        let token = try #require(parts.firstStartToken)
        #expect(said.withLock { $0 }.first?.contains("http://127.0.0.1:8123/?token=\(token)") == true)
        try await app.test(.router) { client async throws in
            #expect(try await client.call("/api/anomalies").status == .unauthorized)
        }
        await parts.store.close()
    }
}
