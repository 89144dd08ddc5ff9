import ArgumentParser
import FlowForestStore
import Foundation
import Logging

/// Where the store is: `--database`, else `FLOWFOREST_DATABASE`, else the default path.
struct DatabaseOption: ParsableArguments {
    @Option(name: .customLong("database"),
            help: "SQLite file path, or postgres://user:pass@host[:port]/db (env FLOWFOREST_DATABASE; default /var/lib/flowforest/flowforest.db as root, else ./flowforest.db).")
    var database: String?

    @Option(name: .customLong("config"), help: "File of FLOWFOREST_NAME=value lines (the environment variables of `flowforest run --help`, such as the systemd unit's environment file); flags and the environment win over it.")
    var config: String?

    /// The `--config` file's settings, none without one.
    func configFile() throws -> [String: String] {
        guard let config else { return [:] }
        guard let text = try? String(contentsOfFile: config, encoding: .utf8) else { throw failure("--config: cannot read \(config)") }
        var values: [String: String] = [:]
        // Any line ending: "\r\n" is one Character to Swift, which a split on
        // "\n" would never cut, reading a file saved on Windows as one line.
        for (number, line) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            guard let eq = trimmed.firstIndex(of: "="), trimmed.hasPrefix("FLOWFOREST_") else {
                throw failure("--config \(config):\(number + 1): expected FLOWFOREST_NAME=value")
            }
            values[String(trimmed[..<eq])] = String(trimmed[trimmed.index(after: eq)...]).trimmingCharacters(in: CharacterSet(charactersIn: "\"' "))
        }
        return values
    }

    func location(config: [String: String] = [:]) -> StoreLocation {
        StoreLocation(database ?? ProcessInfo.processInfo.environment["FLOWFOREST_DATABASE"] ?? config["FLOWFOREST_DATABASE"]
                      ?? (getuid() == 0 ? "/var/lib/flowforest/flowforest.db" : "./flowforest.db"))
    }

    /// Opens the store (creating a SQLite file and its folder on first use)
    /// for a one-shot command: the one `flowforest run` with the same
    /// flags, environment and `--config` file uses.
    func withStore<T: Sendable>(_ body: (Store) async throws -> T) async throws -> T {
        var logger = Logger(label: "flowforest")
        logger.logLevel = .warning
        let location = location(config: try configFile())
        if case .sqlite(let path) = location {
            let dir = (path as NSString).deletingLastPathComponent
            if !dir.isEmpty { try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
        }
        do {
            return try await Store.withStore(location, logger: logger, body)
        } catch let error as StoreError {
            throw failure(error.description)
        } catch {
            throw failure("database \(location): \(error)")
        }
    }
}

/// `--role` on the command line.
enum RoleArgument: String, ExpressibleByArgument, CaseIterable {
    case agent, viewer, admin
    var role: Role { Role(rawValue: rawValue)! }
}

struct UserCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "user",
        abstract: "Manage dashboard users (passwords hashed with scrypt).",
        discussion: """
            Examples:
              flowforest user add alice --role admin          asks for the password
              echo "$PW" | flowforest user add bob --password-stdin
              flowforest user list
            """,
        subcommands: [Add.self, Remove.self, List.self])

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "add", abstract: "Add a user who can sign in to the dashboard.",
            discussion: "Example:\n  sudo flowforest user add alice --role admin")
        @Argument(help: "User name (letters, digits, '.', '_', '-', '@').") var name: String
        @Option(help: "viewer (read only) or admin (everything); agent exists for API tokens and gives a user no read access.") var role: RoleArgument = .viewer
        @Flag(name: .customLong("password-stdin"), help: "Read the password from standard input instead of the terminal.")
        var passwordStdin = false
        @OptionGroup var database: DatabaseOption

        func run() async throws {
            let password: String
            if passwordStdin {
                password = (readLine(strippingNewline: true) ?? "")
            } else {
                guard let p = getpass("Password for \(name): ") else { throw failure("no password given") }
                password = String(cString: p)
                guard let q = getpass("Again: "), String(cString: q) == password else { throw failure("the passwords differ") }
            }
            try await database.withStore { try await $0.addUser(name: name, password: password, role: role.role) }
            print("user \(name) added (\(role.rawValue))")
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "remove", abstract: "Remove a user.", discussion: "Example:\n  flowforest user remove alice")
        @Argument var name: String
        @OptionGroup var database: DatabaseOption

        func run() async throws {
            guard try await database.withStore({ try await $0.removeUser(name: name) }) else { throw failure("no user \(name)") }
            print("user \(name) removed")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "List users and their roles.", discussion: "Example:\n  flowforest user list")
        @OptionGroup var database: DatabaseOption

        func run() async throws {
            for user in try await database.withStore({ try await $0.users() }) { print("\(user.name)\t\(user.role.rawValue)") }
        }
    }
}
