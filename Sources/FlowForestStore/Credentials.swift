import Crypto
import _CryptoExtras
import Foundation
import SQLKit

/// Something a request may need the right to do.
public enum Permission: String, Sendable, Hashable, CaseIterable {
    /// Read anomalies, flows, hosts, the model, events, metrics and health.
    case read
    /// Send traffic records (`POST /api/traffic`).
    case ingest
    /// Acknowledge anomalies and retrain the model.
    case administer
}

/// What a credential may do: agents only send traffic, viewers only read,
/// admins do everything. Each role has exactly the permissions it needs.
public enum Role: String, Sendable, Hashable, Codable, CaseIterable {
    case agent, viewer, admin

    /// The permissions of the role.
    public var permissions: Set<Permission> {
        switch self {
        case .agent: [.ingest]
        case .viewer: [.read]
        case .admin: Set(Permission.allCases)
        }
    }

    public func allows(_ permission: Permission) -> Bool { permissions.contains(permission) }
}

/// Password hashing with scrypt (N=2^15, r=8, p=1: about 32 MiB and a tenth
/// of a second per guess), stored as `scrypt$N$r$p$salt$hash` in base64.
public enum PasswordHash {
    static let n = 1 << 15, r = 8, p = 1, length = 32

    /// A new salted hash of `password`.
    public static func make(_ password: String) throws -> String {
        var salt = [UInt8](repeating: 0, count: 16)
        var g = SystemRandomNumberGenerator()
        for i in salt.indices { salt[i] = g.next() }
        let key = try derive(password, salt: salt, n: n, r: r, p: p, length: length)
        return "scrypt$\(n)$\(r)$\(p)$\(Data(salt).base64EncodedString())$\(Data(key).base64EncodedString())"
    }

    /// True when `password` matches `encoded`; false for a malformed hash.
    public static func verify(_ password: String, against encoded: String) -> Bool {
        let parts = encoded.split(separator: "$", omittingEmptySubsequences: false)
        guard parts.count == 6, parts[0] == "scrypt",
              let n = Int(parts[1]), let r = Int(parts[2]), let p = Int(parts[3]),
              n > 1, n <= 1 << 20, r > 0, r <= 32, p > 0, p <= 16,
              let salt = Data(base64Encoded: String(parts[4])), let expected = Data(base64Encoded: String(parts[5])),
              !expected.isEmpty,
              let key = try? derive(password, salt: Array(salt), n: n, r: r, p: p, length: expected.count)
        else { return false }
        return constantTimeEqual(key, Array(expected))
    }

    static func derive(_ password: String, salt: [UInt8], n: Int, r: Int, p: Int, length: Int) throws -> [UInt8] {
        let key = try KDF.Scrypt.deriveKey(from: Array(password.utf8), salt: salt, outputByteCount: length, rounds: n, blockSize: r, parallelism: p)
        return key.withUnsafeBytes { Array($0) }
    }

    /// A valid hash of an unguessable password: verifying against it takes
    /// as long as a real check, so a missing user is not told by timing.
    public static let dummy = (try? make("flowforest-dummy-password-\(UUID().uuidString)")) ?? ""

    public static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var diff: UInt8 = 0
        for i in a.indices { diff |= a[i] ^ b[i] }
        return diff == 0
    }
}

/// API tokens: 32 random bytes shown once as `fft_<hex>`; the store keeps
/// only their SHA-256, which is enough for secrets this long.
public enum APIToken {
    /// A new random token.
    public static func generate() -> String {
        var g = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &g) }
        return "fft_" + bytes.map { String(format: "%02x", $0) }.joined()
    }

    /// Whether `token` has the form ``generate()`` gives (`fft_` and 64
    /// lowercase hex digits): anything else is unknown without asking the
    /// store, so garbage sent as fast as a client can cannot load it.
    public static func isWellFormed(_ token: some StringProtocol) -> Bool {
        let utf8 = token.utf8
        guard utf8.count == 68, utf8.starts(with: "fft_".utf8) else { return false }
        return utf8.dropFirst(4).allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
    }

    /// The stored form of a token.
    public static func hash(_ token: String) -> String {
        SHA256.hash(data: Array(token.utf8)).map { String(format: "%02x", $0) }.joined()
    }
}

/// A credential's name and role, as found by an authentication.
public struct Principal: Sendable, Hashable, Codable {
    public var name: String
    public var role: Role

    public init(name: String, role: Role) {
        self.name = name
        self.role = role
    }
}

extension Store {
    /// Adds a dashboard user; fails if the name is taken.
    public func addUser(name: String, password: String, role: Role) async throws {
        guard Self.validName(name) else { throw StoreError.invalid("user name must be 1-64 letters, digits, '.', '_', '-' or '@': \(name)") }
        guard password.count >= 8 else { throw StoreError.invalid("password must have at least 8 characters") }
        let hash = try PasswordHash.make(password)
        try await withSQL { db in
            if try await db.select().column("name").from("users").where("name", .equal, name).first() != nil {
                throw StoreError.conflict("user \(name) already exists")
            }
            try await db.insert(into: "users").columns("name", "password_hash", "role", "created_ms")
                .values(SQLBind(name), SQLBind(hash), SQLBind(role.rawValue), SQLBind(Store.nowMs())).run()
            try await Store.markCredentialsConfigured(db)
        }
    }

    /// Removes a user; false when there was none.
    public func removeUser(name: String) async throws -> Bool {
        try await withSQL { db in
            guard try await db.select().column("name").from("users").where("name", .equal, name).first() != nil else { return false }
            try await db.delete(from: "users").where("name", .equal, name).run()
            return true
        }
    }

    /// The user's principal when the password matches, else nil. Hashes on
    /// the calling thread: a server verifies through ``userCredential(name:)``
    /// and its own bounded pool instead.
    public func authenticateUser(name: String, password: String) async throws -> Principal? {
        guard let credential = try await userCredential(name: name) else {
            // Spend the same time as a real check so timing does not reveal which names exist.
            _ = PasswordHash.verify(password, against: PasswordHash.dummy)
            return nil
        }
        guard PasswordHash.verify(password, against: credential.hash) else { return nil }
        return credential.principal
    }

    /// A user's stored password hash and principal, nil for an unknown name
    /// or a role this version does not know.
    public func userCredential(name: String) async throws -> (hash: String, principal: Principal)? {
        let row = try await withSQL { db in
            try await db.select().columns("password_hash", "role").from("users").where("name", .equal, name).first()
        }
        guard let row, let role = Role(rawValue: try row.decode(column: "role", as: String.self)) else { return nil }
        return (try row.decode(column: "password_hash", as: String.self), Principal(name: name, role: role))
    }

    /// Settings key recording that this database once had a credential.
    static let credentialsMarker = "credentials_configured"

    /// Records, once, that a credential was created in this database.
    static func markCredentialsConfigured(_ db: any SQLDatabase) async throws {
        try await db.raw("INSERT INTO settings (name, value) VALUES (\(bind: credentialsMarker), \(bind: String(Store.nowMs()))) ON CONFLICT (name) DO NOTHING").run()
    }

    /// True when a credential was ever created in this database (even if all
    /// were removed since): a server must then never start without one.
    public func credentialsWereConfigured() async throws -> Bool {
        try await withSQL { db in
            try await db.select().column("name").from("settings").where("name", .equal, Store.credentialsMarker).first() != nil
        }
    }

    /// Creates an API token and returns it; only its hash is stored, so this
    /// is the one time it can be shown.
    public func addToken(name: String, role: Role) async throws -> String {
        guard Self.validName(name) else { throw StoreError.invalid("token name must be 1-64 letters, digits, '.', '_', '-' or '@': \(name)") }
        let token = APIToken.generate()
        let hash = APIToken.hash(token)
        try await withSQL { db in
            if try await db.select().column("name").from("api_tokens").where("name", .equal, name).first() != nil {
                throw StoreError.conflict("token \(name) already exists")
            }
            try await db.insert(into: "api_tokens").columns("name", "token_hash", "role", "created_ms")
                .values(SQLBind(name), SQLBind(hash), SQLBind(role.rawValue), SQLBind(Store.nowMs())).run()
            try await Store.markCredentialsConfigured(db)
        }
        return token
    }

    /// Revokes a token by name; false when there was none.
    public func removeToken(name: String) async throws -> Bool {
        try await withSQL { db in
            guard try await db.select().column("name").from("api_tokens").where("name", .equal, name).first() != nil else { return false }
            try await db.delete(from: "api_tokens").where("name", .equal, name).run()
            return true
        }
    }

    /// Names and roles of the tokens.
    public func tokens() async throws -> [Principal] {
        try await withSQL { db in
            try await db.select().columns("name", "role").from("api_tokens").orderBy("name").all().map {
                Principal(name: try $0.decode(column: "name", as: String.self),
                          role: Role(rawValue: try $0.decode(column: "role", as: String.self)) ?? .viewer)
            }
        }
    }

    /// Names and roles of the users.
    public func users() async throws -> [Principal] {
        try await withSQL { db in
            try await db.select().columns("name", "role").from("users").orderBy("name").all().map {
                Principal(name: try $0.decode(column: "name", as: String.self),
                          role: Role(rawValue: try $0.decode(column: "role", as: String.self)) ?? .viewer)
            }
        }
    }

    /// The token's principal, or nil for an unknown token (one not of
    /// ``APIToken/isWellFormed(_:)``'s form is unknown without a query).
    public func authenticateToken(_ token: String) async throws -> Principal? {
        guard APIToken.isWellFormed(token) else { return nil }
        return try await authenticateToken(hash: APIToken.hash(token))
    }

    /// The principal of the token whose stored form (``APIToken/hash(_:)``)
    /// is `hash`, or nil: for a caller that keeps the hash for its own use.
    public func authenticateToken(hash: String) async throws -> Principal? {
        let row = try await withSQL { db in
            try await db.select().columns("name", "role").from("api_tokens").where("token_hash", .equal, hash).first()
        }
        guard let row, let role = Role(rawValue: try row.decode(column: "role", as: String.self)) else { return nil }
        return Principal(name: try row.decode(column: "name", as: String.self), role: role)
    }

    /// Number of users plus tokens: zero means no credential is configured.
    public func credentialCount() async throws -> Int {
        try await withSQL { db in
            let u = try await db.raw("SELECT COUNT(*) AS n FROM users").first()?.decode(column: "n", as: Int.self) ?? 0
            let t = try await db.raw("SELECT COUNT(*) AS n FROM api_tokens").first()?.decode(column: "n", as: Int.self) ?? 0
            return u + t
        }
    }

    static func validName(_ name: String) -> Bool {
        (1...64).contains(name.count) && name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "._-@".contains($0)) }
    }

    /// Models kept per sensor: the newest, a day of hourly retraining.
    public static let modelsKept = 24

    /// Saves a detection model (its JSON) and returns its id; a sensor's
    /// models beyond the newest ``modelsKept`` are deleted, so hourly
    /// retraining does not grow the store by a model an hour for good.
    @discardableResult
    public func saveModel(sensor: String, description: String, body: String, atMs: Int64 = Store.nowMs()) async throws -> Int64 {
        try await withSQL { db in
            try await db.insert(into: "models").columns("sensor", "created_ms", "description", "body")
                .values(SQLBind(sensor), SQLBind(atMs), SQLBind(description), SQLBind(body)).run()
            let row = try await db.raw("SELECT MAX(id) AS id FROM models WHERE sensor = \(bind: sensor)").first()
            try await db.raw("""
                DELETE FROM models WHERE sensor = \(bind: sensor) AND id NOT IN
                (SELECT id FROM models WHERE sensor = \(bind: sensor) ORDER BY id DESC LIMIT \(literal: Self.modelsKept))
                """).run()
            return try row?.decode(column: "id", as: Int64.self) ?? 0
        }
    }

    /// How many models of a sensor are stored.
    public func modelCount(sensor: String) async throws -> Int {
        try await withSQL { db in
            try await db.raw("SELECT COUNT(*) AS n FROM models WHERE sensor = \(bind: sensor)").first()?.decode(column: "n", as: Int.self) ?? 0
        }
    }

    /// The newest saved model of a sensor: its id, time and JSON.
    public func latestModel(sensor: String) async throws -> (id: Int64, createdMs: Int64, body: String)? {
        let row = try await withSQL { db in
            try await db.select().columns("id", "created_ms", "body").from("models").where("sensor", .equal, sensor)
                .orderBy("id", .descending).limit(1).first()
        }
        guard let row else { return nil }
        return (try row.decode(column: "id", as: Int64.self), try row.decode(column: "created_ms", as: Int64.self),
                try row.decode(column: "body", as: String.self))
    }
}
