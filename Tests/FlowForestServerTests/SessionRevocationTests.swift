import FlowForestCore
import Foundation
import HTTPTypes
import Testing

/// A dashboard session lasts while its credential does: removing a user
/// (`flowforest user remove`, from another process on the same database)
/// or revoking a token ends the sessions signed in with it at their next
/// recheck, not when the 12-hour cookie runs out.
@Suite("Sessions end with their credential")
struct SessionRevocationTests {
    @Test("a removed user's session, and a revoked token's link session, are refused; other sessions stay")
    func removedCredentialEndsSession() async throws {
        try await withService(configure: { $0.sessionRecheck = .zero }) { client, db, parts in
            let alice = try await client.signIn("alice", "correct horse battery")
            let victor = try await client.signIn("victor", "viewer password")
            let link = try await client.call("/?token=\(db.viewerToken)")
            let viaLink = String(try #require(link.headers[.setCookie]).split(separator: ";")[0])
            for cookie in [alice.cookie, victor.cookie, viaLink] {
                #expect(try await client.call("/api/session", cookie: cookie).status == .ok)
            }

            #expect(try await parts.store.removeUser(name: "alice"))
            #expect(try await parts.store.removeToken(name: "viewer-token"))
            #expect(try await client.call("/api/anomalies", cookie: alice.cookie).status == .unauthorized, "alice was removed")
            #expect(try await client.call("/api/session", cookie: viaLink).status == .unauthorized, "the link's token was revoked")
            #expect(try await client.call("/api/session", cookie: victor.cookie).status == .ok, "victor's session stays")
        }
    }

    @Test("a user removed and added again (a new password, a lower role) must sign in again")
    func reAddedUserSignsInAgain() async throws {
        try await withService(configure: { $0.sessionRecheck = .zero }) { client, _, parts in
            let alice = try await client.signIn("alice", "correct horse battery")
            #expect(try await parts.store.removeUser(name: "alice"))
            try await parts.store.addUser(name: "alice", password: "another long password", role: .viewer)
            #expect(try await client.call("/api/session", cookie: alice.cookie).status == .unauthorized)
            let again = try await client.signIn("alice", "another long password")
            #expect(try await client.call("/api/session", cookie: again.cookie).status == .ok)
        }
    }

    @Test("within the recheck interval the store is not asked again")
    func recheckInterval() async throws {
        try await withService(configure: { $0.sessionRecheck = .seconds(3600) }) { client, _, parts in
            let alice = try await client.signIn("alice", "correct horse battery")
            #expect(try await parts.store.removeUser(name: "alice"))
            #expect(try await client.call("/api/session", cookie: alice.cookie).status == .ok,
                    "trusted until its recheck (30 s by default)")
        }
    }
}
