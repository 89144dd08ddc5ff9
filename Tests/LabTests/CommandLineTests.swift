import FlowForestLab
import Foundation
import Testing

@Suite("Command line: errors and help")
struct CommandLineTests {
    @Test("Every command's --help says what it does, with an example",
          arguments: ["", "run", "analyze", "train", "bench", "demo", "user", "user add", "user remove", "user list", "token", "token add", "token remove", "token list"])
    func help(command: String) throws {
        let result = try Binary.run(command.split(separator: " ").map(String.init) + ["--help"])
        #expect(result.status == 0)
        #expect(result.stdout.contains("Example"), "\(command) --help has no example")
        #expect(result.stdout.contains("OVERVIEW"))
    }

    @Test("Every lab command's --help says what it does, with an example", arguments: ["", "bench", "demo", "eval"])
    func labHelp(command: String) throws {
        let result = try Command.run([Binary.lab] + (command.isEmpty ? [] : [command]) + ["--help"])
        #expect(result.status == 0)
        #expect(result.stdout.contains("Example"), "flowforest-lab \(command) --help has no example")
        #expect(result.stdout.contains("OVERVIEW"))
    }

    @Test("flowforest bench runs flowforest-lab from beside it, passing its arguments on")
    func benchExecsLab() throws {
        // The lab's own validation answers: proof that the arguments reached it.
        let result = try Binary.run(["bench", "--packets", "5"])
        #expect(result.status != 0)
        #expect(result.stderr.contains("--packets must be between"), "\(result.stderr)")
    }

    @Test("Without flowforest-lab beside it, flowforest bench says what is missing and how to build it")
    func labMissing() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let alone = dir.appendingPathComponent("flowforest")
        try FileManager.default.copyItem(atPath: Binary.path, toPath: alone.path)
        let result = try Command.run([alone.path, "demo"])
        #expect(result.status != 0)
        #expect(result.stderr.contains("flowforest-lab") && result.stderr.contains("make build"), "\(result.stderr)")
        #expect(result.stderr.split(separator: "\n").count == 1, "\(result.stderr)")
    }

    @Test("A truncated capture file is a one-line error and a non-zero exit")
    func truncated() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        // A valid pcap header and one record header that promises more bytes than follow.
        var bytes: [UInt8] = [0xD4, 0xC3, 0xB2, 0xA1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0, 0, 1, 0, 0, 0]
        bytes += [0, 0, 0, 0, 0, 0, 0, 0, 60, 0, 0, 0, 60, 0, 0, 0] + [UInt8](repeating: 0, count: 20)
        let file = dir.appendingPathComponent("cut.pcap")
        try Data(bytes).write(to: file)
        let result = try Binary.run(["analyze", file.path])
        #expect(result.status != 0)
        #expect(result.stdout.isEmpty)
        #expect(result.stderr.split(separator: "\n").count == 1)
        #expect(result.stderr.contains("truncated"))
    }

    @Test("analyze accounts every packet of the file in its summary, those over --max-flows too, and lists flows by first packet")
    func analyzeAccounting() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("flows.pcap")
        let totals = try OfflineBenchCapture(packets: 2000, flows: 60).write(to: file)
        let table = try Binary.run(["analyze", file.path, "--max-flows", "5"])
        #expect(table.status == 0, "\(table.stderr)")
        // "N flows, A of S packets in flows (X not IP, Y malformed, Z over --max-flows)"
        let summary = try #require(table.stdout.split(separator: "\n").last.map(String.init))
        let numbers = summary.split(whereSeparator: { !$0.isNumber }).compactMap { Int($0) }
        try #require(numbers.count == 6, "\(summary)")
        let (accounted, seen, notIP, malformed, overMax) = (numbers[1], numbers[2], numbers[3], numbers[4], numbers[5])
        #expect(seen == totals.packets && overMax > 0, "\(summary)")
        #expect(accounted + notIP + malformed + overMax == seen, "\(summary)")
        let json = try Binary.run(["analyze", file.path, "--format", "json"])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        let flows = try #require(object["flows"] as? [[String: Any]])
        #expect(flows.count == totals.flows)
        let starts = flows.compactMap { $0["first_seen"] as? String }
        #expect(starts.count == flows.count && starts == starts.sorted())
    }

    @Test("A file that is not a capture is a one-line error")
    func notACapture() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("notes.txt")
        try Data("this is not a capture file\n".utf8).write(to: file)
        let result = try Binary.run(["analyze", file.path])
        #expect(result.status != 0)
        #expect(result.stderr.split(separator: "\n").count == 1)
        #expect(result.stderr.contains("not a pcap or pcapng capture file"))
    }

    @Test("A missing file is a one-line error")
    func missingFile() throws {
        let result = try Binary.run(["analyze", "/nonexistent/capture.pcap"])
        #expect(result.status != 0)
        #expect(result.stderr.contains("no such file"))
    }

    @Test("A missing interface is a one-line error naming it, and creates nothing", .enabled(if: Command.isRoot))
    func missingInterface() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let database = dir.appendingPathComponent("never.db")
        let result = try Binary.run(["run", "--mode", "pcap", "--interface", "ffnosuch0", "--database", database.path], timeout: 20)
        #expect(result.status != 0)
        #expect(!FileManager.default.fileExists(atPath: database.path))
        #expect(result.stderr.contains("no such interface: ffnosuch0"))
        #expect(result.stderr.split(separator: "\n").filter { $0.contains("flowforest:") }.count == 1)
    }

    @Test("A --config line flowforest run does not read is named in a warning; the lines it reads apply", .enabled(if: Command.isRoot))
    func configFileIgnoredNames() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let config = dir.appendingPathComponent("flowforest.env")
        // The unit's environment file: systemd expands FLOWFOREST_MODE into a flag, flowforest does not read it.
        try "FLOWFOREST_MODE=tc\nFLOWFOREST_MAP_SIZE=4096\n# a comment\nFLOWFOREST_LISTEN=127.0.0.1:notaport\n"
            .write(to: config, atomically: true, encoding: .utf8)
        let result = try Binary.run(["run", "--config", config.path, "--no-capture", "--database", dir.appendingPathComponent("x.db").path], timeout: 20)
        #expect(result.status != 0)
        #expect(result.stderr.contains("FLOWFOREST_MAP_SIZE, FLOWFOREST_MODE ignored"), "\(result.stderr)")
        // FLOWFOREST_LISTEN is read: its bad port stops the start.
        #expect(result.stderr.contains("notaport"), "\(result.stderr)")
    }

    @Test("a --config file saved with Windows line endings is read line by line, its comment first")
    func configFileCRLF() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let config = dir.appendingPathComponent("flowforest.env")
        try "# FlowForest\r\nFLOWFOREST_MODE=tc\r\nFLOWFOREST_LISTEN=127.0.0.1:notaport\r\n".write(to: config, atomically: true, encoding: .utf8)
        let result = try Binary.run(["run", "--config", config.path, "--no-capture", "--database", dir.appendingPathComponent("x.db").path], timeout: 20)
        #expect(result.status != 0)
        #expect(result.stderr.contains("FLOWFOREST_MODE ignored"), "\(result.stderr)")
        #expect(result.stderr.contains("notaport"), "the listen line was read: \(result.stderr)")
    }

    @Test("token and user commands open the database a --config file names, as run does")
    func tokenCommandsReadConfig() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let database = dir.appendingPathComponent("configured.db").path
        let config = dir.appendingPathComponent("flowforest.env")
        try "# the unit's environment file\nFLOWFOREST_MODE=tc\nFLOWFOREST_DATABASE=\(database)\n".write(to: config, atomically: true, encoding: .utf8)
        let added = try Binary.run(["token", "add", "grafana", "--role", "viewer", "--config", config.path], timeout: 20)
        #expect(added.status == 0, "\(added.stderr)")
        let listed = try Binary.run(["token", "list", "--database", database], timeout: 20)
        #expect(listed.stdout.contains("grafana"), "\(listed.stdout) \(listed.stderr)")
        // A flag still wins over the file.
        let elsewhere = dir.appendingPathComponent("flag.db").path
        _ = try Binary.run(["user", "list", "--config", config.path, "--database", elsewhere], timeout: 20)
        #expect(FileManager.default.fileExists(atPath: elsewhere))
    }

    @Test("Bad option values are rejected before anything starts")
    func badOptions() throws {
        let result = try Binary.run(["analyze", "x.pcap", "--idle-timeout", "-1"])
        #expect(result.status != 0)
        #expect(result.stderr.contains("--idle-timeout"))
        let hook = try Binary.run(["run", "--mode", "xdp", "--tc-hook", "clsact", "--interface", "lo"])
        #expect(hook.status != 0)
        #expect(hook.stderr.contains("--tc-hook applies to --mode tc"), "\(hook.stderr)")
        for trees in ["0", "100000000000000000"] {
            let train = try Binary.run(["train", "x.pcap", "--output", "m.json", "--trees", trees])
            #expect(train.status != 0 && train.stderr.contains("--trees must be 1-10000"), "\(train.stderr)")
        }
        let unknown = try Binary.run(["run", "--tc-hook", "qdisc", "--interface", "lo"])
        #expect(unknown.status != 0)
        #expect(unknown.stderr.contains("tcx") && unknown.stderr.contains("clsact"), "\(unknown.stderr)")
    }
}

@Suite("Command line: running without eBPF privileges", .enabled(if: Command.isRoot, "needs root to drop capabilities from"))
struct PrivilegeTests {
    static let drop = "cap_bpf,cap_perfmon,cap_net_admin,cap_sys_admin"

    @Test("tc without CAP_BPF: one error naming what is missing and how to grant it")
    func noBPFPermission() throws {
        let result = try Command.run(["capsh", "--drop=\(Self.drop)", "--", "-c", "\(Binary.path) run --mode tc --interface lo"], timeout: 30)
        #expect(result.status != 0)
        #expect(result.stderr.contains("permission denied"))
        #expect(result.stderr.contains("CAP_BPF") && result.stderr.contains("setcap"))
    }

    @Test("auto without CAP_BPF falls back to libpcap and says why")
    func autoFallsBack() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let port = Int.random(in: 20_000..<40_000)
        let result = try Command.run(["capsh", "--drop=\(Self.drop)", "--", "-c",
                                      "timeout --preserve-status -s INT 4 \(Binary.path) run --mode auto --interface lo --print-flows none "
                                        + "--listen 127.0.0.1:\(port) --database \(dir.path)/fallback.db"], timeout: 30)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.contains("tc capture unavailable"))
        #expect(result.stderr.contains("falling back to libpcap"))
        #expect(result.stderr.contains("mode=pcap"))
    }
}
