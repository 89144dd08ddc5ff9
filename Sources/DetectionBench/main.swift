// Times FlowForest's isolation forest on the data `Tests/parity/bench.py`
// writes, so the script can print it side by side with scikit-learn and
// isotree from one run. Prints one JSON object.
import FlowForestDetection
import Foundation

func readCSV(_ path: String) -> (rows: [Double], columns: Int) {
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
        FileHandle.standardError.write(Data("detection-bench: cannot read \(path)\n".utf8))
        exit(2)
    }
    var rows: [Double] = []
    var columns = 0
    for line in text.split(separator: "\n") {
        let values = line.split(separator: ",").compactMap { Double($0) }
        columns = values.count
        rows.append(contentsOf: values)
    }
    return (rows, columns)
}

func seconds(_ body: () throws -> Void) rethrows -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    try body()
    return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
}

let args = CommandLine.arguments
guard args.count == 3 else {
    FileHandle.standardError.write(Data("usage: detection-bench TRAIN.csv TEST.csv\n".utf8))
    exit(2)
}
let train = readCSV(args[1])
let test = readCSV(args[2])
let d = train.columns
let n = test.rows.count / d

var forest = try IsolationForest(rows: train.rows, featureCount: d)
// Best of several runs, as the Python side does: the least disturbed measurement.
var trainBest = Double.infinity
for seed in 1...20 {
    trainBest = min(trainBest, try seconds { forest = try IsolationForest(rows: train.rows, featureCount: d, parameters: ForestParameters(seed: UInt64(seed))) })
}
var checksum = 0.0
var batchBest = Double.infinity
for _ in 0..<5 {
    batchBest = min(batchBest, seconds { checksum += forest.scores(rows: test.rows).reduce(0, +) })
}
let vectors = (0..<n).map { Array(test.rows[($0 * d)..<(($0 + 1) * d)]) }
var singleBest = Double.infinity
for _ in 0..<5 {
    singleBest = min(singleBest, seconds { for v in vectors { checksum += forest.score(v) } })
}
var creditBest = Double.infinity
for _ in 0..<3 {
    creditBest = min(creditBest, seconds { for v in vectors { checksum += forest.scoreWithCredit(v).score } })
}
let result: [String: Double] = [
    "train_s": trainBest,
    "batch_vectors_per_s": Double(n) / batchBest,
    "single_vectors_per_s": Double(n) / singleBest,
    "single_us": singleBest / Double(n) * 1e6,
    "single_with_credit_us": creditBest / Double(n) * 1e6,
    "checksum": checksum,
]
let data = try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys])
print(String(decoding: data, as: UTF8.self))
