/// Why a forest could not be grown.
public enum ForestTrainingError: Error, Sendable, Equatable, CustomStringConvertible {
    case noVectors
    case ragged(expected: Int, count: Int)
    case notFinite(row: Int, column: Int)
    case badParameters(String)

    public var description: String {
        switch self {
        case .noVectors: return "no training vectors"
        case .ragged(let expected, let count): return "training data of \(count) values is not a whole number of \(expected)-feature vectors"
        case .notFinite(let row, let column): return "training vector \(row) has a non-finite value in feature \(column)"
        case .badParameters(let why): return "bad forest parameters: \(why)"
        }
    }
}

extension IsolationForest {
    /// Grows a forest from `rows` (vectors one after another, `featureCount`
    /// values each). Deterministic for a given seed.
    public init(rows: [Double], featureCount: Int, parameters: ForestParameters = ForestParameters()) throws {
        guard featureCount > 0 else { throw ForestTrainingError.badParameters("no features") }
        guard parameters.trees > 0, parameters.sampleSize > 1 else {
            throw ForestTrainingError.badParameters("need at least 1 tree and a sample size above 1")
        }
        guard rows.count % featureCount == 0 else { throw ForestTrainingError.ragged(expected: featureCount, count: rows.count) }
        let n = rows.count / featureCount
        guard n > 0 else { throw ForestTrainingError.noVectors }
        if let bad = rows.firstIndex(where: { !$0.isFinite }) {
            throw ForestTrainingError.notFinite(row: bad / featureCount, column: bad % featureCount)
        }
        var builder = TreeBuilder(rows: rows, count: n, featureCount: featureCount, parameters: parameters)
        builder.growAll()
        self.init(
            featureCount: featureCount, parameters: parameters, effectiveSampleSize: builder.psi,
            maxDepth: builder.maxDepth, roots: builder.roots, feature: builder.feature,
            value: builder.value, left: builder.left, normals: builder.normals)
    }

    /// A copy with the trees at `replacing` swapped for the trees of
    /// `other` (same features and parameters): how retraining refreshes a
    /// share of the forest without ever leaving it half-built. The depth
    /// bound is the deeper of the two, so every walk still reaches its leaf.
    func replacingTrees(_ replacing: [Int], with other: IsolationForest) -> IsolationForest {
        precondition(other.featureCount == featureCount && other.treeCount >= replacing.count)
        let replaced = Set(replacing)
        var b = FlatTrees()
        var otherIndex = 0
        for t in 0..<treeCount {
            if replaced.contains(t) {
                b.append(tree: otherIndex, of: other)
                otherIndex += 1
            } else {
                b.append(tree: t, of: self)
            }
        }
        return IsolationForest(
            featureCount: featureCount, parameters: parameters, effectiveSampleSize: effectiveSampleSize,
            maxDepth: max(maxDepth, replacing.isEmpty ? 0 : other.maxDepth), roots: b.roots, feature: b.feature, value: b.value,
            left: b.left, normals: b.normals)
    }
}

/// Copies whole trees between forests, renumbering nodes and hyperplanes.
private struct FlatTrees {
    var roots: [Int32] = []
    var feature: [Int32] = []
    var value: [Double] = []
    var left: [Int32] = []
    var normals: [Double] = []

    mutating func append(tree t: Int, of forest: IsolationForest) {
        let root = Int(forest.roots[t])
        let end = t + 1 < forest.roots.count ? Int(forest.roots[t + 1]) : forest.feature.count
        let shift = Int32(feature.count) - Int32(root)
        roots.append(Int32(feature.count))
        for i in root..<end {
            value.append(forest.value[i])
            if forest.feature[i] < 0 {
                feature.append(-1)
                left.append(-1)
            } else {
                left.append(forest.left[i] + shift)
                if forest.parameters.extended {
                    let d = forest.featureCount
                    let base = Int(forest.feature[i]) * d
                    feature.append(Int32(normals.count / d))
                    normals.append(contentsOf: forest.normals[base..<(base + d)])
                } else {
                    feature.append(forest.feature[i])
                }
            }
        }
    }
}

/// Grows trees into flat arrays, one tree's nodes contiguous, children of a
/// node allocated as a pair.
private struct TreeBuilder {
    let rows: [Double]
    let count: Int
    let d: Int
    let parameters: ForestParameters
    let psi: Int
    let maxDepth: Int
    var rng: SeededGenerator
    var roots: [Int32] = []
    var feature: [Int32] = []
    var value: [Double] = []
    var left: [Int32] = []
    var normals: [Double] = []
    /// Row indices: the first ψ are the current tree's sample, partitioned in place.
    var pool: [Int32]
    var features: [Int]
    var lower: [Double]
    var upper: [Double]

    init(rows: [Double], count: Int, featureCount: Int, parameters: ForestParameters) {
        self.rows = rows
        self.count = count
        self.d = featureCount
        self.parameters = parameters
        self.psi = min(parameters.sampleSize, count)
        var depth = 0
        while (1 << depth) < psi { depth += 1 }
        self.maxDepth = depth
        self.rng = SeededGenerator(seed: parameters.seed)
        self.pool = (0..<count).map { Int32($0) }
        self.features = Array(0..<featureCount)
        self.lower = [Double](repeating: 0, count: featureCount)
        self.upper = [Double](repeating: 0, count: featureCount)
        let estimate = parameters.trees * 2 * psi
        feature.reserveCapacity(estimate)
        value.reserveCapacity(estimate)
        left.reserveCapacity(estimate)
    }

    mutating func growAll() {
        for _ in 0..<parameters.trees {
            // Partial Fisher–Yates: a fresh sample without replacement per tree.
            for i in 0..<psi {
                let j = i + rng.below(count - i)
                pool.swapAt(i, j)
            }
            roots.append(Int32(feature.count))
            feature.append(-1)
            value.append(0)
            left.append(-1)
            grow(node: feature.count - 1, start: 0, end: psi, depth: 0)
        }
    }

    private mutating func makeLeaf(_ node: Int, size: Int, depth: Int) {
        feature[node] = -1
        left[node] = -1
        value[node] = Double(depth) + IsolationForest.averagePathLength(size)
    }

    private mutating func addChildren(of node: Int) -> Int {
        let first = feature.count
        feature.append(contentsOf: [-1, -1])
        value.append(contentsOf: [0, 0])
        left.append(contentsOf: [-1, -1])
        left[node] = Int32(first)
        return first
    }

    private mutating func grow(node: Int, start: Int, end: Int, depth: Int) {
        let size = end - start
        if depth >= maxDepth || size <= 1 {
            makeLeaf(node, size: size, depth: depth)
            return
        }
        let mid: Int
        if parameters.extended {
            guard let m = splitHyperplane(node: node, start: start, end: end) else {
                makeLeaf(node, size: size, depth: depth)
                return
            }
            mid = m
        } else {
            guard let m = splitAxis(node: node, start: start, end: end) else {
                makeLeaf(node, size: size, depth: depth)
                return
            }
            mid = m
        }
        let child = addChildren(of: node)
        grow(node: child, start: start, end: mid, depth: depth + 1)
        grow(node: child + 1, start: mid, end: end, depth: depth + 1)
    }

    /// A random non-constant feature and a threshold uniform between its
    /// minimum and maximum in the node, as scikit-learn's extra-tree
    /// splitter draws them; nil when every feature is constant here.
    private mutating func splitAxis(node: Int, start: Int, end: Int) -> Int? {
        var remaining = d
        while remaining > 0 {
            let r = rng.below(remaining)
            let f = features[r]
            var lo = Double.infinity
            var hi = -Double.infinity
            for i in start..<end {
                let x = rows[Int(pool[i]) * d + f]
                lo = min(lo, x)
                hi = max(hi, x)
            }
            if hi > lo {
                var threshold = lo + rng.unit() * (hi - lo)
                if threshold >= hi { threshold = lo }
                feature[node] = Int32(f)
                value[node] = threshold
                let rows = self.rows
                let d = self.d
                return Self.partition(&pool, start: start, end: end) { rows[Int($0) * d + f] <= threshold }
            }
            features.swapAt(r, remaining - 1)
            remaining -= 1
        }
        return nil
    }

    /// A hyperplane through a random point of the node's bounding box with a
    /// Gaussian normal over the features that vary in the node.
    private mutating func splitHyperplane(node: Int, start: Int, end: Int) -> Int? {
        for j in 0..<d {
            lower[j] = .infinity
            upper[j] = -.infinity
        }
        for i in start..<end {
            let base = Int(pool[i]) * d
            for j in 0..<d {
                let x = rows[base + j]
                lower[j] = min(lower[j], x)
                upper[j] = max(upper[j], x)
            }
        }
        guard (0..<d).contains(where: { upper[$0] > lower[$0] }) else { return nil }
        let index = normals.count / d
        var offset = 0.0
        for j in 0..<d {
            let n = upper[j] > lower[j] ? rng.gaussian() : 0
            let p = lower[j] + rng.unit() * (upper[j] - lower[j])
            normals.append(n)
            offset += n * p
        }
        feature[node] = Int32(index)
        value[node] = offset
        let base = index * d
        let normal = Array(normals[base..<(base + d)])
        let rows = self.rows
        let d = self.d
        return Self.partition(&pool, start: start, end: end) { row in
            var dot = 0.0
            let r = Int(row) * d
            for j in 0..<d { dot += rows[r + j] * normal[j] }
            return dot <= offset
        }
    }

    /// Moves the indices for which `goesLeft` holds to the front; returns the boundary.
    private static func partition(_ pool: inout [Int32], start: Int, end: Int, _ goesLeft: (Int32) -> Bool) -> Int {
        var i = start
        var j = end - 1
        while i <= j {
            if goesLeft(pool[i]) {
                i += 1
            } else {
                pool.swapAt(i, j)
                j -= 1
            }
        }
        return i
    }
}
