public import FlowForestCore
import Foundation
import SQLKit

extension Store {
    /// Stores a new rule; returns it with its id.
    public func insertSuppression(_ rule: Suppression) async throws -> Suppression {
        let values = try Self.suppressionValues(rule)
        let id = try await withSQL { db -> Int64 in
            guard let row = try await db.insert(into: "suppressions").columns(Store.suppressionColumns)
                .values(values.map { SQLBind($0) }).returning("id").first() else {
                throw StoreError.unavailable("the database returned no id for the new rule")
            }
            return try row.decode(column: "id", as: Int64.self)
        }
        var stored = rule
        stored.id = id
        return stored
    }

    /// Every stored rule, oldest first.
    public func suppressions(_ access: Access = .read) async throws -> [Suppression] {
        let rows = try await withSQL(access) { db in try await db.select().column("*").from("suppressions").orderBy("id", .ascending).all() }
        return try rows.map(Store.decodeSuppression)
    }

    /// One stored rule by id.
    public func suppression(id: Int64) async throws -> Suppression? {
        let row = try await withSQL(.read) { db in try await db.select().column("*").from("suppressions").where("id", .equal, id).first() }
        return try row.map(Store.decodeSuppression)
    }

    /// Replaces rule `id` (keeping its id); false when there is no such rule.
    public func updateSuppression(id: Int64, with rule: Suppression) async throws -> Bool {
        let values = try Self.suppressionValues(rule)
        return try await withSQL { db in
            guard try await db.select().column("id").from("suppressions").where("id", .equal, id).first() != nil else { return false }
            var update = db.update("suppressions")
            for (column, value) in zip(Store.suppressionColumns, values) { update = update.set(SQLIdentifier(column), to: SQLBind(value)) }
            try await update.where("id", .equal, id).run()
            return true
        }
    }

    /// Removes rule `id`; false when there is no such rule.
    public func deleteSuppression(id: Int64) async throws -> Bool {
        try await withSQL { db in
            guard try await db.select().column("id").from("suppressions").where("id", .equal, id).first() != nil else { return false }
            try await db.delete(from: "suppressions").where("id", .equal, id).run()
            return true
        }
    }

    static let suppressionColumns = ["actor", "target", "ports", "label", "expires_ms", "created_by", "reason", "created_ms"]

    private static func suppressionValues(_ r: Suppression) throws -> [any Encodable & Sendable] {
        let ports = String(decoding: try JSONEncoder().encode(r.ports.map(Int.init)), as: UTF8.self)
        return [r.actor?.description, r.target?.description, ports, r.label?.rawValue, r.expiresMs, r.createdBy, r.reason, r.createdMs]
    }

    static func decodeSuppression(_ row: any SQLRow) throws -> Suppression {
        let ports = try JSONDecoder().decode([Int].self, from: Data(try row.decode(column: "ports", as: String.self).utf8))
        return Suppression(
            id: try row.decode(column: "id", as: Int64.self),
            actor: try row.decode(column: "actor", as: String?.self).flatMap { AddressBlock($0) },
            target: try row.decode(column: "target", as: String?.self).flatMap { AddressBlock($0) },
            ports: ports.compactMap { UInt16(exactly: $0) },
            label: try row.decode(column: "label", as: String?.self).flatMap { AnomalyLabel(rawValue: $0) },
            expiresMs: try row.decode(column: "expires_ms", as: Int64?.self),
            createdBy: try row.decode(column: "created_by", as: String.self),
            reason: try row.decode(column: "reason", as: String.self),
            createdMs: try row.decode(column: "created_ms", as: Int64.self))
    }
}
