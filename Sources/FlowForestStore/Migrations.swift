import SQLKit
import Logging

/// One schema change, applied once per database and recorded in
/// `schema_migrations`. Append new versions; never edit an applied one.
struct Migration: Sendable {
    var version: Int
    var name: String
    /// Statements for the given backend (`true` = PostgreSQL).
    var statements: @Sendable (_ postgres: Bool) -> [String]
}

extension Store {
    static let migrations: [Migration] = [
        Migration(version: 1, name: "initial tables") { pg in
            // Only the auto-increment key differs between the two dialects.
            let key = pg ? "BIGSERIAL PRIMARY KEY" : "INTEGER PRIMARY KEY AUTOINCREMENT"
            return [
                """
                CREATE TABLE anomalies (
                    id \(key),
                    uid TEXT NOT NULL UNIQUE,
                    sensor TEXT NOT NULL,
                    time_ms BIGINT NOT NULL,
                    kind TEXT NOT NULL,
                    src_ip TEXT, dst_ip TEXT, src_port INTEGER, dst_port INTEGER, protocol INTEGER,
                    score DOUBLE PRECISION NOT NULL,
                    severity TEXT NOT NULL,
                    severity_rank INTEGER NOT NULL,
                    label TEXT NOT NULL,
                    explanation TEXT NOT NULL,
                    features TEXT NOT NULL,
                    flow_ids TEXT NOT NULL,
                    acknowledged BOOLEAN NOT NULL DEFAULT FALSE,
                    acknowledged_by TEXT,
                    acknowledged_ms BIGINT
                )
                """,
                "CREATE INDEX anomalies_time ON anomalies (time_ms)",
                "CREATE INDEX anomalies_src ON anomalies (src_ip)",
                "CREATE INDEX anomalies_dst ON anomalies (dst_ip)",
                """
                CREATE TABLE flows (
                    id \(key),
                    sensor TEXT NOT NULL,
                    flow_id BIGINT NOT NULL,
                    first_seen_ms BIGINT NOT NULL,
                    last_seen_ms BIGINT NOT NULL,
                    protocol INTEGER NOT NULL,
                    src_ip TEXT NOT NULL, src_port INTEGER NOT NULL,
                    dst_ip TEXT NOT NULL, dst_port INTEGER NOT NULL,
                    vlan INTEGER NOT NULL, interface TEXT, icmp_type INTEGER, icmp_code INTEGER,
                    fwd_packets BIGINT NOT NULL, fwd_bytes BIGINT NOT NULL, fwd_flags INTEGER NOT NULL,
                    rev_packets BIGINT NOT NULL, rev_bytes BIGINT NOT NULL, rev_flags INTEGER NOT NULL,
                    state TEXT NOT NULL,
                    end_reason TEXT,
                    UNIQUE (sensor, flow_id, first_seen_ms, last_seen_ms, state)
                )
                """,
                "CREATE INDEX flows_last_seen ON flows (last_seen_ms)",
                "CREATE INDEX flows_src ON flows (src_ip)",
                """
                CREATE TABLE models (
                    id \(key),
                    sensor TEXT NOT NULL,
                    created_ms BIGINT NOT NULL,
                    description TEXT NOT NULL,
                    body TEXT NOT NULL
                )
                """,
                """
                CREATE TABLE users (
                    name TEXT PRIMARY KEY,
                    password_hash TEXT NOT NULL,
                    role TEXT NOT NULL,
                    created_ms BIGINT NOT NULL
                )
                """,
                """
                CREATE TABLE api_tokens (
                    name TEXT PRIMARY KEY,
                    token_hash TEXT NOT NULL UNIQUE,
                    role TEXT NOT NULL,
                    created_ms BIGINT NOT NULL
                )
                """,
            ]
        },
        Migration(version: 2, name: "settings and the credentials marker") { _ in
            [
                "CREATE TABLE settings (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
                // A database that already has credentials gets the marker now.
                """
                INSERT INTO settings (name, value)
                SELECT 'credentials_configured', 'migrated'
                WHERE EXISTS (SELECT 1 FROM users) OR EXISTS (SELECT 1 FROM api_tokens)
                """,
            ]
        },
        Migration(version: 3, name: "incidents") { pg in
            let key = pg ? "BIGSERIAL PRIMARY KEY" : "INTEGER PRIMARY KEY AUTOINCREMENT"
            return [
                // actors and targets are JSON arrays of address strings; the
                // quotes around each make a LIKE match exact.
                """
                CREATE TABLE incidents (
                    id \(key),
                    uid TEXT NOT NULL UNIQUE,
                    sensor TEXT NOT NULL,
                    label TEXT NOT NULL,
                    family TEXT NOT NULL,
                    actors TEXT NOT NULL,
                    targets TEXT NOT NULL,
                    first_seen_ms BIGINT NOT NULL,
                    last_seen_ms BIGINT NOT NULL,
                    peak_severity TEXT NOT NULL,
                    severity_rank INTEGER NOT NULL,
                    peak_score DOUBLE PRECISION NOT NULL,
                    anomaly_count BIGINT NOT NULL,
                    state TEXT NOT NULL,
                    explanation TEXT NOT NULL
                )
                """,
                "CREATE INDEX incidents_last_seen ON incidents (last_seen_ms)",
                "CREATE INDEX incidents_state ON incidents (state)",
                "ALTER TABLE anomalies ADD COLUMN incident_uid TEXT",
                "CREATE INDEX anomalies_incident ON anomalies (incident_uid)",
            ]
        },
        Migration(version: 4, name: "suppression rules") { pg in
            let key = pg ? "BIGSERIAL PRIMARY KEY" : "INTEGER PRIMARY KEY AUTOINCREMENT"
            return [
                // actor and target are address blocks as text; ports a JSON array.
                """
                CREATE TABLE suppressions (
                    id \(key),
                    actor TEXT,
                    target TEXT,
                    ports TEXT NOT NULL,
                    label TEXT,
                    expires_ms BIGINT,
                    created_by TEXT NOT NULL,
                    reason TEXT NOT NULL,
                    created_ms BIGINT NOT NULL
                )
                """,
                "ALTER TABLE anomalies ADD COLUMN suppressed BOOLEAN NOT NULL DEFAULT FALSE",
            ]
        },
        Migration(version: 5, name: "what the sensor lost during incidents") { _ in
            [
                "ALTER TABLE incidents ADD COLUMN lost_packets BIGINT NOT NULL DEFAULT 0",
                "ALTER TABLE incidents ADD COLUMN lost_flow_records BIGINT NOT NULL DEFAULT 0",
            ]
        },
        Migration(version: 6, name: "the interface or exporter of an anomaly") { _ in
            [
                "ALTER TABLE anomalies ADD COLUMN interface TEXT",
                "CREATE INDEX anomalies_interface ON anomalies (interface)",
            ]
        },
        Migration(version: 7, name: "an incident's latest anomalies by index") { _ in
            // Each incident's latest ids come from the index in order, however
            // many anomalies a long attack gathered.
            [
                "CREATE INDEX anomalies_incident_latest ON anomalies (incident_uid, id)",
                "DROP INDEX anomalies_incident",
            ]
        },
    ]

    /// The newest schema version this build knows.
    public static var schemaVersion: Int { migrations.last?.version ?? 0 }

    /// The PostgreSQL advisory lock daemons sharing a database migrate under ("FlowFore" in ASCII).
    static let migrationLock: Int64 = 0x466C_6F77_466F_7265

    /// Applies every migration not yet recorded, each in its own transaction.
    /// On PostgreSQL, daemons starting together on one database take turns
    /// (a session advisory lock): otherwise each would find the same
    /// migrations missing and all but one fail on tables another just made.
    func migrate() async throws {
        let pg = isPostgres
        let lock = Self.migrationLock
        try await withSQL { db in
            guard pg else { return try await Self.applyMigrations(db, pg: false, logger: self.logger) }
            try await db.raw("SELECT pg_advisory_lock(\(bind: lock))").run()
            do {
                try await Self.applyMigrations(db, pg: true, logger: self.logger)
            } catch {
                // The connection goes back to the pool: it must not keep the lock.
                try? await db.raw("SELECT pg_advisory_unlock(\(bind: lock))").run()
                throw error
            }
            try await db.raw("SELECT pg_advisory_unlock(\(bind: lock))").run()
        }
    }

    private static func applyMigrations(_ db: any SQLDatabase, pg: Bool, logger: Logger) async throws {
        try await db.raw("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_ms BIGINT NOT NULL)").run()
        let rows = try await db.raw("SELECT version FROM schema_migrations").all()
        let applied = Set(try rows.map { try $0.decode(column: "version", as: Int.self) })
        if let newest = applied.max(), newest > Store.schemaVersion {
            throw StoreError.invalid("database schema version \(newest) is newer than this FlowForest (\(Store.schemaVersion)); upgrade FlowForest")
        }
        for migration in Store.migrations where !applied.contains(migration.version) {
            logger.info("applying store migration", metadata: ["version": "\(migration.version)", "name": "\(migration.name)"])
            // Both dialects run DDL inside transactions, so a failed step leaves nothing half-made.
            try await db.raw("BEGIN").run()
            do {
                for statement in migration.statements(pg) {
                    try await db.raw(SQLQueryString(stringLiteral: statement)).run()
                }
                try await db.raw("INSERT INTO schema_migrations (version, name, applied_ms) VALUES (\(bind: migration.version), \(bind: migration.name), \(bind: Store.nowMs()))").run()
                try await db.raw("COMMIT").run()
            } catch {
                try? await db.raw("ROLLBACK").run()
                throw error
            }
        }
    }

    /// Wall-clock time in ms since the epoch.
    public static func nowMs() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
