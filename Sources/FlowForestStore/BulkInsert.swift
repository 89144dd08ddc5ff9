import SQLKit
import SQLiteKit

extension Store {
    /// Rows per INSERT statement.
    static let rowsPerInsert = 500

    /// Inserts `rows` (one value per column, in `columns` order) into
    /// `table`, `rowsPerInsert` a statement, skipping rows that conflict
    /// on the `conflict` columns.
    ///
    /// On SQLite the statement text is written here and the values are
    /// bound as `SQLiteData` directly: SQLKit's serializer wrote a numbered
    /// placeholder per value and its encoder cast every value to a protocol
    /// existential, which together cost more than SQLite's own work on the
    /// flow rows. The statement is the one SQLKit wrote (`ON CONFLICT (...)
    /// DO NOTHING`), so the rows stored are the same. PostgreSQL keeps SQLKit.
    func insert(into table: String, columns: [String], conflict: [String], rows: [[any Encodable & Sendable]]) async throws {
        guard !rows.isEmpty else { return }
        if case .sqlite(let connection) = backend {
            let encoder = SQLiteDataEncoder()
            for chunk in stride(from: 0, to: rows.count, by: Self.rowsPerInsert) {
                let part = rows[chunk..<min(chunk + Self.rowsPerInsert, rows.count)]
                var binds: [SQLiteData] = []
                binds.reserveCapacity(part.count * columns.count)
                for row in part {
                    for value in row { binds.append(try Self.sqliteData(value, encoder: encoder)) }
                }
                let sql = Self.sqliteInsert(into: table, columns: columns, conflict: conflict, rows: part.count)
                try await connection.query(sql, binds) { _ in }
            }
            return
        }
        let expressions = rows.map { $0.map { SQLBind($0) as any SQLExpression } }
        try await withSQL { db in
            for chunk in stride(from: 0, to: expressions.count, by: Self.rowsPerInsert) {
                var insert = db.insert(into: table).columns(columns)
                for row in expressions[chunk..<min(chunk + Self.rowsPerInsert, expressions.count)] { insert = insert.values(row) }
                try await insert.ignoringConflicts(with: conflict).run()
            }
        }
    }

    /// `INSERT INTO "table" ("a", ...) VALUES (?, ...), ... ON CONFLICT ("a", ...) DO NOTHING` for `rows` rows.
    static func sqliteInsert(into table: String, columns: [String], conflict: [String], rows: Int) -> String {
        func quoted(_ names: [String]) -> String { names.map { "\"\($0)\"" }.joined(separator: ", ") }
        let row = "(" + Array(repeating: "?", count: columns.count).joined(separator: ", ") + ")"
        return "INSERT INTO \"\(table)\" (\(quoted(columns))) VALUES "
            + Array(repeating: row, count: rows).joined(separator: ", ")
            + " ON CONFLICT (\(quoted(conflict))) DO NOTHING"
    }

    /// The value as SQLiteKit's encoder binds it, by a cast to each
    /// concrete type the store writes (a nil of any of them is NULL);
    /// anything else goes through that encoder.
    static func sqliteData(_ value: any Encodable & Sendable, encoder: SQLiteDataEncoder) throws -> SQLiteData {
        switch value {
        case let v as String: return .text(v)
        case let v as Int64: return .integer(Int(v))
        case let v as Int: return .integer(v)
        case let v as Double: return .float(v)
        case let v as Bool: return .integer(v ? 1 : 0)
        case let v as String?: return v.map { .text($0) } ?? .null
        case let v as Int?: return v.map { .integer($0) } ?? .null
        case let v as Int64?: return v.map { .integer(Int($0)) } ?? .null
        default: return try encoder.encode(value)
        }
    }
}
