@testable import FlowForestServer
import Testing

/// `--no-auth` is allowed on loopback only: an address literal, not a name that looks like one.
@Suite("Loopback listen addresses")
struct LoopbackTests {
    @Test("127.0.0.0/8, ::1 and localhost are loopback; a host name beginning 127. and any other address are not")
    func loopback() {
        func loopback(_ host: String) -> Bool {
            var c = ServerConfiguration()
            c.host = host
            return c.isLoopback
        }
        #expect(["127.0.0.1", "127.1.2.3", "::1", "localhost"].allSatisfy(loopback))
        #expect(!["127.example.com", "127.0.0.1.nip.io", "0.0.0.0", "::", "198.18.0.1", "::ffff:127.0.0.1x"].contains(where: loopback))
    }
}
