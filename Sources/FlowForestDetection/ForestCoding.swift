/// JSON form of a forest: parameters plus the flat node arrays. Decoding
/// checks every index, so a damaged file is refused instead of crashing a
/// tree walk later.
extension IsolationForest: Codable {
    /// The largest path length a leaf can hold: 64 levels, plus the
    /// expected length of the rest of a walk, c(n) < 2 ln n + 1, for any n
    /// a sample can have.
    static let maxLeafValue = 128.0

    enum CodingKeys: String, CodingKey {
        case parameters, roots, feature, value, left, normals
        case featureCount = "feature_count"
        case effectiveSampleSize = "effective_sample_size"
        case maxDepth = "max_depth"
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(featureCount, forKey: .featureCount)
        try c.encode(parameters, forKey: .parameters)
        try c.encode(effectiveSampleSize, forKey: .effectiveSampleSize)
        try c.encode(maxDepth, forKey: .maxDepth)
        try c.encode(roots, forKey: .roots)
        try c.encode(feature, forKey: .feature)
        try c.encode(value, forKey: .value)
        try c.encode(left, forKey: .left)
        try c.encode(normals, forKey: .normals)
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = try c.decode(Int.self, forKey: .featureCount)
        let parameters = try c.decode(ForestParameters.self, forKey: .parameters)
        let psi = try c.decode(Int.self, forKey: .effectiveSampleSize)
        let maxDepth = try c.decode(Int.self, forKey: .maxDepth)
        let roots = try c.decode([Int32].self, forKey: .roots)
        let feature = try c.decode([Int32].self, forKey: .feature)
        let value = try c.decode([Double].self, forKey: .value)
        let left = try c.decode([Int32].self, forKey: .left)
        let normals = try c.decode([Double].self, forKey: .normals)
        func bad(_ why: String) -> DecodingError {
            .dataCorruptedError(forKey: .feature, in: c, debugDescription: why)
        }
        let n = feature.count
        guard d > 0, psi > 0, (0...64).contains(maxDepth), !roots.isEmpty else { throw bad("forest header out of range") }
        guard value.count == n, left.count == n else { throw bad("node arrays differ in length") }
        guard roots.first == 0, zip(roots, roots.dropFirst()).allSatisfy({ $0 < $1 }), Int(roots.last!) < n else {
            throw bad("tree roots out of order")
        }
        let hyperplanes = parameters.extended ? normals.count / d : 0
        guard !parameters.extended || normals.count % d == 0 else { throw bad("hyperplane normals are not whole") }
        // Each node's depth, in one pass (children follow their parent): a
        // walk takes at most `max_depth` steps, and credit is gathered along
        // a path of that many splits.
        var depth = [UInt8](repeating: 0, count: n)
        for i in 0..<n {
            guard value[i].isFinite else { throw bad("node \(i) has a non-finite value") }
            if feature[i] >= 0 {
                // Children always follow their parent, so a valid file has no cycles.
                guard Int(left[i]) > i, Int(left[i]) + 1 < n else { throw bad("node \(i) points outside the forest") }
                guard Int(depth[i]) < maxDepth else { throw bad("node \(i) splits below the forest's max_depth") }
                for child in [Int(left[i]), Int(left[i]) + 1] { depth[child] = max(depth[child], depth[i] + 1) }
                guard parameters.extended ? Int(feature[i]) < hyperplanes : Int(feature[i]) < d else {
                    throw bad("node \(i) splits on a feature the forest does not have")
                }
            } else if feature[i] != -1 {
                throw bad("node \(i) has an invalid feature index")
            } else if !(0...Self.maxLeafValue).contains(value[i]) {
                // A leaf's value is its depth plus the expected rest of a walk: never negative, never far past 64.
                throw bad("leaf \(i) has a path length out of range")
            }
        }
        self.init(featureCount: d, parameters: parameters, effectiveSampleSize: psi, maxDepth: maxDepth,
                  roots: roots, feature: feature, value: value, left: left, normals: normals)
    }
}
