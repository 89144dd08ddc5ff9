#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Parameters of an ``IsolationForest``.
public struct ForestParameters: Sendable, Hashable, Codable {
    /// Trees grown (default 100, as in Liu, Ting and Zhou 2008).
    public var trees: Int = 100
    /// Vectors drawn without replacement for each tree (ψ, default 256).
    public var sampleSize: Int = 256
    /// Hyperplane splits over all features (extended isolation forest, Hariri
    /// et al. 2018) instead of one feature at a time.
    public var extended: Bool = false
    /// Seed of the random generator: the same data and seed grow the same forest.
    public var seed: UInt64 = 0x466C_6F77_466F_7273

    public init() {}

    public init(trees: Int = 100, sampleSize: Int = 256, extended: Bool = false, seed: UInt64 = 0x466C_6F77_466F_7273) {
        self.trees = trees
        self.sampleSize = sampleSize
        self.extended = extended
        self.seed = seed
    }

    enum CodingKeys: String, CodingKey {
        case trees, extended, seed
        case sampleSize = "sample_size"
    }
}

/// An isolation forest (Liu, Ting, Zhou 2008) with every tree's nodes laid
/// out flat in shared arrays.
///
/// Node `i` is a leaf when `feature[i] < 0`; then `value[i]` is its path
/// length, depth + c(samples in the leaf). Otherwise `value[i]` is the split
/// threshold (or hyperplane offset), the left child is `left[i]` and the
/// right child `left[i] + 1`. Scores follow the paper:
/// s = 2^(−E[h(x)] / c(ψ)), higher is more anomalous, 0.5 is unremarkable.
public struct IsolationForest: Sendable, Hashable {
    public let featureCount: Int
    public let parameters: ForestParameters
    /// ψ actually used: `min(parameters.sampleSize, training vectors)`.
    public let effectiveSampleSize: Int
    /// ceil(log2 ψ), the depth at which growth stops.
    public let maxDepth: Int
    /// Root node index of each tree.
    var roots: [Int32]
    var feature: [Int32]
    var value: [Double]
    var left: [Int32]
    /// Extended splits only: `featureCount` normal components per split node,
    /// found at `feature[i] * featureCount`.
    var normals: [Double]
    /// The same nodes packed 16 bytes each, so a walk touches one cache line
    /// per step instead of three; derived from the arrays above.
    let packed: [PackedNode]
    let leafValue: [Double]

    struct PackedNode: Sendable, Hashable {
        var value: Double
        var feature: Int32
        var left: Int32
    }

    public var treeCount: Int { roots.count }

    /// c(n): the average path length of an unsuccessful search in a binary
    /// search tree of n items, which normalises path lengths.
    public static func averagePathLength(_ n: Int) -> Double {
        if n <= 1 { return 0 }
        if n == 2 { return 1 }
        let m = Double(n - 1)
        return 2 * (log(m) + 0.577_215_664_901_532_9) - 2 * m / Double(n)
    }

    init(featureCount: Int, parameters: ForestParameters, effectiveSampleSize: Int, maxDepth: Int,
         roots: [Int32], feature: [Int32], value: [Double], left: [Int32], normals: [Double]) {
        self.featureCount = featureCount
        self.parameters = parameters
        self.effectiveSampleSize = effectiveSampleSize
        self.maxDepth = maxDepth
        self.roots = roots
        self.feature = feature
        self.value = value
        self.left = left
        self.normals = normals
        // Leaves become self-loops (threshold +∞, child = itself) so every walk
        // is exactly maxDepth branch-free steps; their path lengths sit in `leafValue`.
        self.packed = (0..<feature.count).map {
            feature[$0] < 0 ? PackedNode(value: .infinity, feature: 0, left: Int32($0)) : PackedNode(value: value[$0], feature: feature[$0], left: left[$0])
        }
        self.leafValue = (0..<feature.count).map { feature[$0] < 0 ? value[$0] : 0 }
    }

    /// The mean path length E[h(x)] over all trees.
    public func meanPathLength(_ x: [Double]) -> Double {
        precondition(x.count == featureCount, "vector has \(x.count) features, forest expects \(featureCount)")
        return x.withUnsafeBufferPointer { xs in
            var total = 0.0
            for t in 0..<roots.count { total += pathLength(xs, tree: t) }
            return total / Double(roots.count)
        }
    }

    /// The anomaly score of one vector, in (0, 1].
    public func score(_ x: [Double]) -> Double {
        Self.score(meanPathLength: meanPathLength(x), sampleSize: effectiveSampleSize)
    }

    static func score(meanPathLength h: Double, sampleSize: Int) -> Double {
        let c = averagePathLength(sampleSize)
        return c > 0 ? pow(2, -h / c) : 0.5
    }

    /// Scores of many vectors, given row after row in `rows`; walks one tree
    /// for every vector before the next so each tree's nodes stay in cache.
    public func scores(rows: [Double]) -> [Double] {
        precondition(rows.count % max(featureCount, 1) == 0, "rows are not a whole number of vectors")
        let n = featureCount == 0 ? 0 : rows.count / featureCount
        var sums = [Double](repeating: 0, count: n)
        if !parameters.extended {
            rows.withUnsafeBufferPointer { all in
                sums.withUnsafeMutableBufferPointer { out in
                    packed.withUnsafeBufferPointer { nodes in
                        leafValue.withUnsafeBufferPointer { leaves in
                            Self.walkBlocks(nodes, leaves: leaves, roots: roots, rows: all, featureCount: featureCount, maxDepth: maxDepth, into: out)
                        }
                    }
                }
            }
            let trees = Double(roots.count)
            return sums.map { Self.score(meanPathLength: $0 / trees, sampleSize: effectiveSampleSize) }
        }
        rows.withUnsafeBufferPointer { all in
            sums.withUnsafeMutableBufferPointer { out in
                for t in 0..<roots.count {
                    for i in 0..<n {
                        let xs = UnsafeBufferPointer(rebasing: all[(i * featureCount)..<((i + 1) * featureCount)])
                        out[i] += pathLength(xs, tree: t)
                    }
                }
            }
        }
        let trees = Double(roots.count)
        return sums.map { Self.score(meanPathLength: $0 / trees, sampleSize: effectiveSampleSize) }
    }

    /// The score of `x` plus each feature's path credit, gathered in the same
    /// walk (local DIFFI): every split on the path to a leaf at depth d
    /// credits its feature with 1/d − 1/maxDepth, so features that isolate
    /// the vector early earn the most. Credits are averaged over trees.
    public func scoreWithCredit(_ x: [Double]) -> (score: Double, credit: [Double]) {
        precondition(x.count == featureCount, "vector has \(x.count) features, forest expects \(featureCount)")
        var credit = [Double](repeating: 0, count: featureCount)
        var total = 0.0
        let extended = parameters.extended
        let inverseMax = maxDepth > 0 ? 1 / Double(maxDepth) : 0
        var path = [Int32](repeating: 0, count: maxDepth + 1)
        x.withUnsafeBufferPointer { xs in
            for t in 0..<roots.count {
                var node = Int(roots[t])
                var depth = 0
                while feature[node] >= 0 {
                    path[depth] = Int32(node)
                    depth += 1
                    node = goesLeft(xs, node: node) ? Int(left[node]) : Int(left[node]) + 1
                }
                total += value[node]
                guard depth > 0 else { continue }
                let w = 1 / Double(depth) - inverseMax
                guard w > 0 else { continue }
                for step in 0..<depth {
                    let split = Int(path[step])
                    if extended {
                        let base = Int(feature[split]) * featureCount
                        var norm = 0.0
                        for j in 0..<featureCount { norm += abs(normals[base + j]) }
                        guard norm > 0 else { continue }
                        for j in 0..<featureCount { credit[j] += w * abs(normals[base + j]) / norm }
                    } else {
                        credit[Int(feature[split])] += w
                    }
                }
            }
        }
        let trees = Double(roots.count)
        for j in 0..<featureCount { credit[j] /= trees }
        return (Self.score(meanPathLength: total / trees, sampleSize: effectiveSampleSize), credit)
    }

    /// Walks sixteen vectors through each tree side by side: each walk is a
    /// chain of dependent loads, and interleaving independent chains keeps
    /// the core busy while one waits for memory.
    static func walkBlocks(_ nodes: UnsafeBufferPointer<PackedNode>, leaves: UnsafeBufferPointer<Double>, roots: [Int32], rows: UnsafeBufferPointer<Double>,
                           featureCount d: Int, maxDepth: Int, into out: UnsafeMutableBufferPointer<Double>) {
        let n = out.count
        let lanes = 16
        guard let base = nodes.baseAddress, let xs = rows.baseAddress, let sums = out.baseAddress else { return }
        withUnsafeTemporaryAllocation(of: Int.self, capacity: lanes) { at in
            guard let at = at.baseAddress else { return }
            var start = 0
            while start < n {
                let count = min(lanes, n - start)
                let block = xs + start * d
                for root in roots {
                    for l in 0..<count { at[l] = Int(root) }
                    // Leaves stop moving, so maxDepth steps finish every walk.
                    for _ in 0..<maxDepth {
                        for l in 0..<count {
                            let node = base[at[l]]
                            let x = block[l * d + Int(node.feature)]
                            at[l] = Int(node.left) &+ (x <= node.value ? 0 : 1)
                        }
                    }
                    for l in 0..<count { sums[start + l] += leaves[at[l]] }
                }
                start += count
            }
        }
    }

    @inline(__always)
    func goesLeft(_ xs: UnsafeBufferPointer<Double>, node: Int) -> Bool {
        if parameters.extended {
            let base = Int(feature[node]) * featureCount
            var dot = 0.0
            for j in 0..<featureCount { dot += xs[j] * normals[base + j] }
            return dot <= value[node]
        }
        return xs[Int(feature[node])] <= value[node]
    }

    @inline(__always)
    func pathLength(_ xs: UnsafeBufferPointer<Double>, tree: Int) -> Double {
        if parameters.extended {
            var node = Int(roots[tree])
            while feature[node] >= 0 {
                node = goesLeft(xs, node: node) ? Int(left[node]) : Int(left[node]) + 1
            }
            return value[node]
        }
        return feature.withUnsafeBufferPointer { f in
            value.withUnsafeBufferPointer { v in
                left.withUnsafeBufferPointer { l in
                    var node = Int(roots[tree])
                    while true {
                        let split = Int(f[node])
                        if split < 0 { return v[node] }
                        node = Int(l[node]) + (xs[split] <= v[node] ? 0 : 1)
                    }
                }
            }
        }
    }
}
