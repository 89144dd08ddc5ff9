import Foundation
import FlowForestCore
import Testing
@testable import FlowForestDetection

@Suite("Model files")
struct ModelFileTests {
    func makeModel(extended: Bool = false) throws -> DetectionModel {
        var models: [KindModel] = []
        for (i, kind) in AnomalyKind.allCases.enumerated() {
            let d = FeatureSchema.features(of: kind).count
            let rows = gaussianRows(count: 300, features: d, seed: UInt64(i + 1)).map { abs($0) }
            models.append(try KindModel.train(kind: kind, rows: rows, parameters: ForestParameters(extended: extended, seed: 42), nowMs: 1_764_000_000_000))
        }
        return DetectionModel(createdAtMs: 1_764_000_000_123, models: models)
    }

    func temporaryPath(_ name: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("flowforest-model-\(getpid())-\(name).json").path
    }

    @Test("a saved and loaded model scores every vector identically", arguments: [false, true])
    func roundTrip(extended: Bool) throws {
        let model = try makeModel(extended: extended)
        let path = temporaryPath("roundtrip-\(extended)")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try model.save(to: path)
        let loaded = try DetectionModel.load(from: path)
        #expect(loaded == model)
        for kind in AnomalyKind.allCases {
            let d = FeatureSchema.features(of: kind).count
            let probe = gaussianRows(count: 100, features: d, seed: 99, spread: 4)
            #expect(loaded[kind]!.forest.scores(rows: probe) == model[kind]!.forest.scores(rows: probe))
            #expect(loaded[kind]!.thresholds == model[kind]!.thresholds)
        }
    }

    @Test("a file of another format version is refused, naming both versions")
    func wrongVersion() throws {
        let path = temporaryPath("version")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try makeModel().save(to: path)
        let text = try String(contentsOfFile: path, encoding: .utf8)
        try text.replacingOccurrences(of: "\"format_version\":1", with: "\"format_version\":2").write(toFile: path, atomically: true, encoding: .utf8)
        #expect(throws: DetectionModelError.unsupportedVersion(path: path, found: 2, supported: 1)) { try DetectionModel.load(from: path) }
        let message = "\(DetectionModelError.unsupportedVersion(path: path, found: 2, supported: 1))"
        #expect(message.contains("version 2") && message.contains("reads version 1") && !message.contains("\n"))
    }

    @Test("damaged files give one clear line, never a crash")
    func corrupted() throws {
        let path = temporaryPath("corrupt")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let good = try JSONEncoder().encode(try makeModel())
        func load(_ data: Data) -> DetectionModelError? {
            do { _ = try DetectionModel.decode(data, path: path); return nil } catch let e as DetectionModelError { return e } catch { return nil }
        }
        // Truncated.
        guard case .corrupt = load(good.prefix(good.count / 2)) else { Issue.record("truncated file accepted"); return }
        // A child index pointing outside the forest.
        var json = try JSONSerialization.jsonObject(with: good) as! [String: Any]
        var models = json["models"] as! [[String: Any]]
        var forest = models[0]["forest"] as! [String: Any]
        var left = forest["left"] as! [Int]
        left[0] = 1_000_000
        forest["left"] = left
        models[0]["forest"] = forest
        json["models"] = models
        let broken = try JSONSerialization.data(withJSONObject: json)
        guard case .corrupt(_, let detail) = load(broken) else { Issue.record("bad node index accepted"); return }
        #expect(detail.contains("outside the forest"))
        // Some other JSON.
        #expect(load(Data("{\"hello\": 1}".utf8)) == .notAModel(path: path))
        // Missing file.
        do {
            _ = try DetectionModel.load(from: path + ".missing")
            Issue.record("missing file loaded")
        } catch let e as DetectionModelError {
            guard case .unreadable = e else { Issue.record("missing file reported as \(e)"); return }
            #expect("\(e)".contains("No such file"))
        }
    }

    @Test("a model whose features differ from this build's is refused")
    func featureMismatch() throws {
        var model = try makeModel()
        model.models[0].featureNames[0] = "something_else"
        let data = try JSONEncoder().encode(model)
        #expect(throws: DetectionModelError.self) { try DetectionModel.decode(data, path: "m.json") }
    }
    @Test("numbers no training gives are refused: a version at the top, thresholds out of order or past 1, a baseline out of order or near e^710, a negative leaf")
    func implausibleNumbers() throws {
        let model = try makeModel()
        func refused(_ what: String, _ edit: (inout DetectionModel) -> Void) {
            var m = model
            edit(&m)
            do {
                _ = try DetectionModel.decode(try JSONEncoder().encode(m), path: "m.json")
                Issue.record("\(what) accepted")
            } catch let e as DetectionModelError {
                guard case .corrupt = e else { Issue.record("\(what): \(e)"); return }
            } catch { Issue.record("\(what): \(error)") }
        }
        refused("version Int.max") { $0.version = .max }
        refused("critical 0") { $0.models[0].thresholds.critical = 0 }
        refused("low 2") { $0.models[0].thresholds = SeverityThresholds(low: 2, medium: 2, high: 2, critical: 2) }
        refused("p01 800") { $0.models[0].baseline[0].p01 = 800; $0.models[0].baseline[0].median = 800
            $0.models[0].baseline[0].p99 = 800; $0.models[0].baseline[0].max = 800 }
        refused("p99 below median") { $0.models[0].baseline[0].p99 = $0.models[0].baseline[0].median - 1 }
        // A leaf's path length, edited in the JSON (the forest's arrays are not settable).
        var json = try #require(try JSONSerialization.jsonObject(with: JSONEncoder().encode(model)) as? [String: Any])
        var models = try #require(json["models"] as? [[String: Any]])
        var forest = try #require(models[0]["forest"] as? [String: Any])
        let feature = try #require(forest["feature"] as? [Int])
        var value = try #require(forest["value"] as? [Double])
        let leaf = try #require(feature.firstIndex(of: -1))
        value[leaf] = -100_000
        forest["value"] = value
        models[0]["forest"] = forest
        json["models"] = models
        #expect(throws: DetectionModelError.self) { try DetectionModel.decode(try JSONSerialization.data(withJSONObject: json), path: "m.json") }
        // The model as trained loads.
        #expect(try DetectionModel.decode(try JSONEncoder().encode(model), path: "m.json") == model)
    }
}
