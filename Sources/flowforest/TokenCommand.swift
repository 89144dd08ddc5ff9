import ArgumentParser
import FlowForestStore

struct TokenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token",
        abstract: "Manage API tokens (for scripts, Prometheus and remote agents).",
        discussion: """
            The token is printed once; only its SHA-256 is stored.

            Examples:
              flowforest token add grafana --role viewer
              flowforest token add agent-eu1 --role agent     for POST /api/traffic only
              flowforest token remove grafana
            """,
        subcommands: [Add.self, Remove.self, List.self])

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "add", abstract: "Create a token and print it.",
            discussion: "Example:\n  flowforest token add grafana --role viewer")
        @Argument(help: "A name for the token (letters, digits, '.', '_', '-', '@').") var name: String
        @Option(help: "agent (POST /api/traffic only), viewer (read only) or admin (everything).") var role: RoleArgument = .viewer
        @OptionGroup var database: DatabaseOption

        func run() async throws {
            let token = try await database.withStore { try await $0.addToken(name: name, role: role.role) }
            print("token \(name) (\(role.rawValue)): \(token)")
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "remove", abstract: "Revoke a token.", discussion: "Example:\n  flowforest token remove grafana")
        @Argument var name: String
        @OptionGroup var database: DatabaseOption

        func run() async throws {
            guard try await database.withStore({ try await $0.removeToken(name: name) }) else { throw failure("no token \(name)") }
            print("token \(name) removed")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "List token names and roles.", discussion: "Example:\n  flowforest token list")
        @OptionGroup var database: DatabaseOption

        func run() async throws {
            for token in try await database.withStore({ try await $0.tokens() }) { print("\(token.name)\t\(token.role.rawValue)") }
        }
    }
}
