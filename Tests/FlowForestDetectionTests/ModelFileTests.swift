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
}
