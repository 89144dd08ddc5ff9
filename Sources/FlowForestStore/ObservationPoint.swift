import SQLKit

extension Store {
    /// Rows whose `column` names the observation point `name`: the name
    /// itself, or for collected records the exporter's address alone
    /// (`198.18.0.1` matches `198.18.0.1` and `198.18.0.1%3`).
    static func observedAt(_ name: String, column: String = "interface") -> any SQLExpression {
        // substr rather than LIKE: "%" separates the exporter from the interface
        // index, and a name may hold "_". Both dialects count characters.
        let prefix = SQLFunction("substr", args: SQLIdentifier(column), SQLLiteral.numeric("1"),
                                 SQLLiteral.numeric("\(name.unicodeScalars.count + 1)"))
        return SQLGroupExpression(SQLBinaryExpression(
            SQLBinaryExpression(SQLIdentifier(column), .equal, SQLBind(name)), .or,
            SQLBinaryExpression(prefix, .equal, SQLBind(name + "%"))))
    }
}
