import FlowForestCore
import FlowForestDetection
import FlowForestLab
import Foundation
import Testing

/// `flowforest train` as a user runs it: capture files in, a model file
/// out that `DetectionModel` loads and `flowforest analyze --model` uses;
/// bad input is one line on stderr, a non-zero exit and no model file.
@Suite("Command line: flowforest train")
struct TrainCommandTests {
    static let web: [UInt8] = [198, 18, 1, 1], dns: [UInt8] = [198, 18, 1, 2]
    static let clients: [[UInt8]] = (10...14).map { [198, 18, 0, UInt8($0)] }
    static let scanner: [UInt8] = [198, 18, 0, 66]

    /// Ordinary traffic for `seconds` of packet time: each client browses
    /// (TCP handshake, request, response, close), queries DNS and pings now and then.
    static func normalTraffic(seconds: Int, seed: UInt64, start: Double) -> CaptureWriter {
        var w = CaptureWriter()
        var rng = SeededGenerator(seed: seed)
        for second in 0..<seconds {
            for (index, client) in clients.enumerated() {
                let t = start + Double(second) + Double(Int.random(in: 0..<900, using: &rng)) / 1000
                let port = UInt16(32768 + (second * clients.count + index) % 28000)
                if Double.random(in: 0..<1, using: &rng) < 0.6 { w.tcpSession(at: t, client, web, sport: port, dport: 80, responseSegments: 1 + Int.random(in: 0..<5, using: &rng)) }
                if Double.random(in: 0..<1, using: &rng) < 0.4 { w.udpExchange(at: t + 0.05, client, dns, sport: port, dport: 53) }
                if Double.random(in: 0..<1, using: &rng) < 0.1 { w.ping(at: t + 0.1, client, web) }
            }
        }
        return w
    }

    /// Normal traffic with a SYN scan of ports 1-1000 on the web server in its middle.
    static func scanTraffic(start: Double) -> CaptureWriter {
        var w = normalTraffic(seconds: 30, seed: 9, start: start)
        for port in 1...1000 {
            let t = start + 15 + Double(port) * 0.001
            w.tcp(at: t, scanner, web, sport: 40000, dport: UInt16(port), flags: 0x02)
            w.tcp(at: t + 0.0001, web, scanner, sport: UInt16(port), dport: 40000, flags: 0x14)
        }
        return w
    }

    @Test("train writes a model with flow, host and destination forests that analyze --model uses")
    func trainsAModel() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let start = Date().timeIntervalSince1970 - 3600
        let monday = dir.appendingPathComponent("monday.pcap"), tuesday = dir.appendingPathComponent("tuesday.pcap")
        try Self.normalTraffic(seconds: 90, seed: 1, start: start).write(to: monday)
        try Self.normalTraffic(seconds: 90, seed: 2, start: start + 600).write(to: tuesday)
        let model = dir.appendingPathComponent("model.json")

        let result = try Binary.run(["train", monday.path, tuesday.path, "-o", model.path], timeout: 120)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("wrote \(model.path)"))
        let loaded = try DetectionModel.load(from: model.path)
        #expect(Set(loaded.models.map(\.kind)) == [.flow, .host, .destination])
        for m in loaded.models {
            #expect(m.trainingVectors >= 100 && m.heldOutVectors >= 20, "\(m.kind): \(m.trainingVectors) + \(m.heldOutVectors) vectors")
            #expect(m.thresholds.low <= m.thresholds.medium && m.thresholds.medium <= m.thresholds.high)
            // The command reports the same counts it wrote.
            #expect(result.stdout.contains("\(m.kind.rawValue): \(m.trainingVectors) training + \(m.heldOutVectors) held-out vectors"))
        }

        // analyze scores with it: the scan is reported, normal traffic is not.
        let suspect = dir.appendingPathComponent("suspect.pcap")
        try Self.scanTraffic(start: start + 1200).write(to: suspect)
        let analyzed = try Binary.run(["analyze", suspect.path, "--model", model.path, "--format", "json"], timeout: 120)
        #expect(analyzed.status == 0, "\(analyzed.stderr)")
        let report = try #require(JSONSerialization.jsonObject(with: Data(analyzed.stdout.utf8)) as? [String: Any])
        let anomalies = try #require(report["anomalies"] as? [[String: Any]])
        #expect(anomalies.contains { $0["label"] as? String == "port scan" && $0["src_ip"] as? String == "198.18.0.66" },
                "\(anomalies.map { "\($0["label"] ?? "-") \($0["src_ip"] ?? "-")" })")
        // The scan's anomalies (the scanner's vector, the victim's, its flows) are one incident, closed at the file's end.
        let incidents = try #require(report["incidents"] as? [[String: Any]])
        let scans = incidents.filter { ($0["actors"] as? [String])?.contains("198.18.0.66") == true }
        #expect(scans.count == 1, "\(incidents)")
        #expect(scans.first?["family"] as? String == "scan" && scans.first?["state"] as? String == "closed")
        let scannerScans = anomalies.filter { $0["src_ip"] as? String == "198.18.0.66" && ["port scan", "host sweep"].contains($0["label"] as? String ?? "") }
        #expect((scans.first?["anomaly_count"] as? Int ?? 0) >= scannerScans.count, "\(scans)")
        let table = try Binary.run(["analyze", tuesday.path, "--model", model.path], timeout: 120)
        #expect(table.status == 0, "\(table.stderr)")
        #expect(table.stdout.contains(" incidents (list them with --anomalies)"))
        // --anomalies chooses what a table or CSV lists; JSON carries the flows as ever.
        let withAnomalies = try Binary.run(["analyze", suspect.path, "--model", model.path, "--format", "json", "--anomalies"], timeout: 120)
        let both = try #require(JSONSerialization.jsonObject(with: Data(withAnomalies.stdout.utf8)) as? [String: Any])
        #expect((both["flows"] as? [Any])?.count == (report["flows"] as? [Any])?.count && (both["flows"] as? [Any])?.isEmpty == false)

        // The same files and seed give the same model.
        let again = dir.appendingPathComponent("again.json")
        #expect(try Binary.run(["train", monday.path, tuesday.path, "-o", again.path], timeout: 120).status == 0)
        #expect(try DetectionModel.load(from: again.path).models.map(\.forest) == loaded.models.map(\.forest))
    }

    /// Runs `train` expecting failure; returns its one error line.
    func failingTrain(_ arguments: [String], output: URL) throws -> String {
        let before = try? Data(contentsOf: output)
        let result = try Binary.run(["train"] + arguments + ["-o", output.path], timeout: 120)
        #expect(result.status != 0)
        #expect(result.stdout.isEmpty, "\(result.stdout)")
        let lines = result.stderr.split(separator: "\n")
        #expect(lines.count == 1, "\(result.stderr)")
        #expect(lines.first?.hasPrefix("flowforest: ") == true, "\(result.stderr)")
        // Nothing written: no model, and an existing one left as it was.
        #expect((try? Data(contentsOf: output)) == before)
        return String(lines.first ?? "")
    }

    /// Files in `dir` other than `keep`: a failed write must leave no temporary files.
    func strayFiles(in dir: URL, keep: Set<String>) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { !keep.contains($0) }
    }

    @Test("a missing file, a truncated capture or a file that is not a capture: one line, no model")
    func badCaptures() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let good = dir.appendingPathComponent("good.pcap")
        let bytes = Self.normalTraffic(seconds: 60, seed: 3, start: Date().timeIntervalSince1970 - 600).bytes()
        try Data(bytes).write(to: good)
        let cut = dir.appendingPathComponent("cut.pcap")
        try Data(bytes.prefix(bytes.count / 2 + 7)).write(to: cut)
        let notes = dir.appendingPathComponent("notes.txt")
        try Data("not a capture\n".utf8).write(to: notes)
        let model = dir.appendingPathComponent("model.json")
        let files: Set = ["good.pcap", "cut.pcap", "notes.txt"]

        let missing = try failingTrain([good.path, dir.appendingPathComponent("absent.pcap").path], output: model)
        #expect(missing.contains("absent.pcap") && missing.contains("no such file"), "\(missing)")
        let truncated = try failingTrain([good.path, cut.path], output: model)
        #expect(truncated.contains("cut.pcap") && truncated.contains("truncated"), "\(truncated)")
        let notCapture = try failingTrain([notes.path], output: model)
        #expect(notCapture.contains("notes.txt") && notCapture.contains("not a pcap or pcapng capture file"), "\(notCapture)")
        #expect(try strayFiles(in: dir, keep: files).isEmpty)

        // A failed run leaves an earlier model untouched.
        #expect(try Binary.run(["train", good.path, "-o", model.path], timeout: 120).status == 0)
        _ = try failingTrain([good.path, cut.path], output: model)
        #expect(try strayFiles(in: dir, keep: files.union(["model.json"])).isEmpty)
        #expect(try DetectionModel.load(from: model.path).models.count == 3)
    }

    @Test("an -o that cannot be written is reported before any capture is read, and writes nothing")
    func unwritableOutput() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let good = dir.appendingPathComponent("good.pcap")
        try Self.normalTraffic(seconds: 60, seed: 4, start: Date().timeIntervalSince1970 - 600).write(to: good)
        // A path under a regular file: not writable even for root.
        let blocker = dir.appendingPathComponent("blocker")
        try Data("x".utf8).write(to: blocker)
        let underFile = try failingTrain([good.path], output: blocker.appendingPathComponent("model.json"))
        #expect(underFile.contains("blocker/model.json") && underFile.contains("not a directory"), "\(underFile)")
        let noDirectory = try failingTrain([good.path], output: dir.appendingPathComponent("no/such/dir/model.json"))
        #expect(noDirectory.contains("no/such/dir/model.json") && noDirectory.contains("no such directory"), "\(noDirectory)")
        let isDirectory = try failingTrain([good.path], output: dir)
        #expect(isDirectory.contains("is a directory"), "\(isDirectory)")
        #expect(try strayFiles(in: dir, keep: ["good.pcap", "blocker"]).isEmpty)
        // A missing capture and an unwritable -o: the output is checked first, so no time is spent reading.
        let both = try failingTrain([dir.appendingPathComponent("absent.pcap").path], output: blocker.appendingPathComponent("m.json"))
        #expect(both.contains("blocker/m.json"), "\(both)")
    }
}
