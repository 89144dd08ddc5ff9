import FlowForestCore
import Foundation
import HTTPTypes
import Testing

/// Sessions are per credential: one credential signing in over and over
/// replaces its own oldest sessions, never other users'; and a sign-in link
/// needs a token that can read what the dashboard shows.
@Suite("Session limits")
struct SessionLimitTests {
    @Test("40 sign-ins by one link replace that token's own oldest sessions; another user's session stays; an agent link is refused")
    func perPrincipal() async throws {
        try await withService { client, db, _ in
            let alice = try await client.signIn("alice", "correct horse battery")
            var cookies: [String] = []
            for _ in 0..<40 {
                let link = try await client.call("/?token=\(db.viewerToken)")
                #expect(link.status == .seeOther)
                cookies.append(String(try #require(link.headers[.setCookie]).split(separator: ";")[0]))
            }
            #expect(try await client.call("/api/session", cookie: cookies[0]).status == .unauthorized, "the token's oldest session went")
            #expect(try await client.call("/api/session", cookie: cookies[39]).status == .ok)
            #expect(try await client.call("/api/session", cookie: alice.cookie).status == .ok, "another user's session stays")
            let agent = try await client.call("/?token=\(db.agentToken)")
            #expect(agent.status == .forbidden && agent.headers[.setCookie] == nil, "\(agent.status) \(agent.text)")
        }
    }
}
