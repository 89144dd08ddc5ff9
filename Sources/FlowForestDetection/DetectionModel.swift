#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
public import FlowForestCore
public import Foundation

/// One forest with what scoring and explaining need: its feature names,
/// score thresholds and the baseline of each feature.
public struct KindModel: Sendable, Hashable, Codable {
    public var kind: AnomalyKind
    public var featureNames: [String]
    public var forest: IsolationForest
    public var thresholds: SeverityThresholds
    public var baseline: [FeatureBaseline]
    /// Vectors the forest was grown from, and the held-out share that set the thresholds.
    public var trainingVectors: Int
    public var heldOutVectors: Int
    /// Largest held-out baseline score.
    public var baselineMaxScore: Double
    public var trainedAtMs: Int64

    enum CodingKeys: String, CodingKey {
        case kind, forest, thresholds, baseline
        case featureNames = "feature_names"
        case trainingVectors = "training_vectors"
        case heldOutVectors = "held_out_vectors"
        case baselineMaxScore = "baseline_max_score"
        case trainedAtMs = "trained_at_ms"
    }
}

/// Why a model file could not be used. Each reads as one line naming the file.
public enum DetectionModelError: Error, Sendable, Equatable, CustomStringConvertible {
    case unreadable(path: String, reason: String)
    case notAModel(path: String)
    case unsupportedVersion(path: String, found: Int, supported: Int)
    case corrupt(path: String, detail: String)
    case featureMismatch(path: String, kind: String, detail: String)
    case unwritable(path: String, reason: String)

    public var description: String {
        switch self {
        case .unreadable(let path, let reason): return "cannot read model file \(path): \(reason)"
        case .notAModel(let path): return "\(path) is not a FlowForest model file (no \"format\": \"\(DetectionModel.format)\")"
        case .unsupportedVersion(let path, let found, let supported):
            return "model file \(path) has format version \(found); this FlowForest reads version \(supported): retrain with `flowforest train`"
        case .corrupt(let path, let detail): return "model file \(path) is damaged: \(detail)"
        case .featureMismatch(let path, let kind, let detail):
            return "model file \(path) was trained on other \(kind) features (\(detail)): retrain with `flowforest train`"
        case .unwritable(let path, let reason): return "cannot write model file \(path): \(reason)"
        }
    }
}

/// A trained detector: one forest per vector kind (flow, host, destination),
/// saved as versioned JSON.
public struct DetectionModel: Sendable, Hashable, Codable {
    /// The `format` field every model file carries.
    public static let format = "flowforest-model"
    /// The file layout this code reads and writes.
    public static let formatVersion = 1

    /// Counts up each time the model is retrained.
    public var version: Int
    public var createdAtMs: Int64
    public var models: [KindModel]

    public init(version: Int = 1, createdAtMs: Int64, models: [KindModel]) {
        self.version = version
        self.createdAtMs = createdAtMs
        self.models = models
    }

    /// The forest for one vector kind, if the model has one.
    public subscript(kind: AnomalyKind) -> KindModel? {
        get { models.first { $0.kind == kind } }
        set {
            models.removeAll { $0.kind == kind }
            if let newValue { models.append(newValue) }
        }
    }

    enum CodingKeys: String, CodingKey {
        case format, version, models
        case formatVersion = "format_version"
        case createdAt = "created_at"
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(Self.format, forKey: .format)
        try c.encode(Self.formatVersion, forKey: .formatVersion)
        try c.encode(version, forKey: .version)
        try c.encode(Timestamp.rfc3339(milliseconds: createdAtMs), forKey: .createdAt)
        try c.encode(models, forKey: .models)
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        version = try c.decode(Int.self, forKey: .version)
        let created = try c.decode(String.self, forKey: .createdAt)
        guard let ns = Timestamp.parseRFC3339(created) else {
            throw DecodingError.dataCorruptedError(forKey: .createdAt, in: c, debugDescription: "not an RFC 3339 time")
        }
        createdAtMs = Int64(ns / 1_000_000)
        models = try c.decode([KindModel].self, forKey: .models)
    }

    private struct Header: Decodable {
        var format: String?
        var formatVersion: Int?
        enum CodingKeys: String, CodingKey {
            case format
            case formatVersion = "format_version"
        }
    }

    /// Reads and checks a model file: its format and version, every forest's
    /// structure, and that its features are the ones this FlowForest computes.
    public static func load(from path: String) throws -> DetectionModel {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw DetectionModelError.unreadable(path: path, reason: String(cString: strerror(errno == 0 ? ENOENT : errno)))
        }
        return try decode(data, path: path)
    }

    /// Decodes a model from JSON bytes; `path` only names the source in errors.
    public static func decode(_ data: Data, path: String = "<model>") throws -> DetectionModel {
        let header: Header
        do {
            header = try JSONDecoder().decode(Header.self, from: data)
        } catch {
            throw DetectionModelError.corrupt(path: path, detail: "not valid JSON")
        }
        guard header.format == format else { throw DetectionModelError.notAModel(path: path) }
        guard let found = header.formatVersion else { throw DetectionModelError.corrupt(path: path, detail: "no format_version") }
        guard found == formatVersion else {
            throw DetectionModelError.unsupportedVersion(path: path, found: found, supported: formatVersion)
        }
        let model: DetectionModel
        do {
            model = try JSONDecoder().decode(DetectionModel.self, from: data)
        } catch let error as DecodingError {
            throw DetectionModelError.corrupt(path: path, detail: Self.describe(error))
        }
        for m in model.models {
            let expected = FeatureSchema.names(of: m.kind)
            guard m.featureNames == expected else {
                let missing = Set(expected).subtracting(m.featureNames).sorted().prefix(3)
                let detail = missing.isEmpty ? "different order or extra features" : "missing \(missing.joined(separator: ", "))"
                throw DetectionModelError.featureMismatch(path: path, kind: m.kind.rawValue, detail: detail)
            }
            guard m.forest.featureCount == expected.count, m.baseline.count == expected.count else {
                throw DetectionModelError.corrupt(path: path, detail: "\(m.kind.rawValue) forest has \(m.forest.featureCount) features, names list \(expected.count)")
            }
            if let why = Self.implausible(m) { throw DetectionModelError.corrupt(path: path, detail: "\(m.kind.rawValue): \(why)") }
        }
        // Versions count retrainings: one near the top would overflow at the next.
        guard (0...Int(Int32.max)).contains(model.version) else {
            throw DetectionModelError.corrupt(path: path, detail: "version \(model.version) out of range")
        }
        return model
    }

    /// Why a kind's numbers cannot have come from training, or nil. A score
    /// is in (0, 1], so are the thresholds, in order; a baseline is a
    /// quantile summary of feature values (log-scaled or small), whose
    /// explanations would otherwise carry infinities the store cannot hold.
    static func implausible(_ m: KindModel) -> String? {
        let t = m.thresholds
        guard 0 <= t.low, t.low <= t.medium, t.medium <= t.high, t.high <= t.critical, t.critical <= 1 + 1e-6 else {
            return "severity thresholds out of order or outside 0–1"
        }
        for (name, b) in zip(m.featureNames, m.baseline) {
            guard b.mad >= 0, b.p01 <= b.median, b.median <= b.p99, b.p99 <= b.max,
                  [b.p01, b.median, b.p99, b.max, b.mad].allSatisfy({ abs($0) <= 700 }) else {
                return "baseline of \(name) out of order or out of range"
            }
        }
        return nil
    }

    /// Writes the model as JSON, atomically: a crash never leaves half a file.
    public func save(to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        do {
            let data = try encoder.encode(self)
            try data.write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw DetectionModelError.unwritable(path: path, reason: Self.unwritableReason(path) ?? "\(error.localizedDescription)")
        }
    }

    /// Throws ``DetectionModelError/unwritable(path:reason:)`` when no model
    /// file can be written at `path` (its directory is missing, not a
    /// directory or not writable; the path is a directory), so a command can
    /// say so before it spends time on training.
    public static func checkWritable(_ path: String) throws {
        if let reason = unwritableReason(path) { throw DetectionModelError.unwritable(path: path, reason: reason) }
    }

    /// Why a file cannot be written at `path`, in words; nil when it can.
    static func unwritableReason(_ path: String) -> String? {
        var st = stat()
        if stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR { return "it is a directory" }
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
        guard stat(directory, &st) == 0 else {
            return errno == ENOENT ? "no such directory \(directory)" : "\(directory): \(String(cString: strerror(errno)))"
        }
        guard (st.st_mode & S_IFMT) == S_IFDIR else { return "\(directory) is not a directory" }
        guard access(directory, W_OK) == 0 else { return "\(directory) is not writable: \(String(cString: strerror(errno)))" }
        return nil
    }

    private static func describe(_ error: DecodingError) -> String {
        func at(_ context: DecodingError.Context) -> String {
            let path = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
            return path.isEmpty ? context.debugDescription : "\(path): \(context.debugDescription)"
        }
        switch error {
        case .dataCorrupted(let c): return at(c)
        case .keyNotFound(let key, let c): return "missing \(key.stringValue) at \(at(c))"
        case .typeMismatch(_, let c): return "wrong type at \(at(c))"
        case .valueNotFound(_, let c): return "missing value at \(at(c))"
        @unknown default: return "\(error)"
        }
    }
}
