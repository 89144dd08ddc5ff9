public import Foundation

/// What `flowforest-lab eval` runs, read from its environment: the set, how
/// long the normal-traffic phases last, where results go and which attacks
/// run. Every value is checked; a bad one is an error that names it, before
/// any namespace is made.
public struct EvalSettings: Sendable, Equatable {
    /// Seconds a normal-traffic phase may be set to: long enough to train
    /// on, short of a day.
    public static let secondsRange: ClosedRange<Double> = 10...86_400

    public var evalSet: EvalSet
    /// Normal traffic the model is trained on (FLOWFOREST_EVAL_TRAIN_SECONDS, 180).
    public var trainSeconds: Double
    /// Normal traffic alone, scored: every alert is false (FLOWFOREST_EVAL_NORMAL_SECONDS, 300).
    public var normalSeconds: Double
    /// Where the model, the table and the recorded alerts go (FLOWFOREST_EVAL_OUT, out/eval).
    public var outDirectory: URL
    /// The attacks of the set that run, in their table order (FLOWFOREST_EVAL_ONLY; all by default).
    public var attacks: [Attack]

    /// Seeds of the normal traffic: training, normal only, and the first attack phase's.
    public var seeds: (train: Int, normal: Int, attacks: Int) {
        evalSet == .development ? (1, 2, 10) : (501, 602, 710)
    }

    /// - Throws: ``EvalSettingsError`` naming the variable and what it accepts.
    public init(environment: [String: String]) throws(EvalSettingsError) {
        let name = environment["FLOWFOREST_EVAL_SET"] ?? EvalSet.development.rawValue
        guard let set = EvalSet(rawValue: name) else {
            throw EvalSettingsError("FLOWFOREST_EVAL_SET: \(name) is not one of \(EvalSet.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        evalSet = set
        trainSeconds = try Self.seconds(environment, "FLOWFOREST_EVAL_TRAIN_SECONDS", default: 180)
        normalSeconds = try Self.seconds(environment, "FLOWFOREST_EVAL_NORMAL_SECONDS", default: 300)
        let out = environment["FLOWFOREST_EVAL_OUT"] ?? "out/eval"
        guard !out.isEmpty else { throw EvalSettingsError("FLOWFOREST_EVAL_OUT: empty; give a directory") }
        outDirectory = URL(fileURLWithPath: out)
        attacks = try Self.selection(environment["FLOWFOREST_EVAL_ONLY"], in: set)
    }

    private static func seconds(_ environment: [String: String], _ key: String, default value: Double) throws(EvalSettingsError) -> Double {
        guard let text = environment[key] else { return value }
        guard let seconds = Double(text.trimmingCharacters(in: .whitespaces)), seconds.isFinite, secondsRange.contains(seconds) else {
            throw EvalSettingsError("\(key): \(text) is not a number of seconds in \(Int(secondsRange.lowerBound))...\(Int(secondsRange.upperBound))")
        }
        return seconds
    }

    /// The attacks FLOWFOREST_EVAL_ONLY names: scenario names as the table
    /// prints them, or "reference" or "variants", separated by semicolons
    /// (scenario names hold commas: "tcp flood: hping3 -R, 400/s"). A name
    /// that is not a scenario of the set is an error, not an empty run.
    static func selection(_ text: String?, in set: EvalSet) throws(EvalSettingsError) -> [Attack] {
        let members = Attack.allCases.filter { $0.evalSet == set }
        guard let text else { return members }
        let names = text.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard !names.isEmpty else { throw EvalSettingsError("FLOWFOREST_EVAL_ONLY: empty; name at least one scenario") }
        var chosen = Set<String>()
        for name in names {
            if name == "reference" || name == "variants" || members.contains(where: { $0.name == name }) {
                chosen.insert(name)
            } else if let other = Attack.allCases.first(where: { $0.name == name }) {
                throw EvalSettingsError("FLOWFOREST_EVAL_ONLY: \"\(name)\" belongs to the \(other.evalSet.rawValue) set, not the \(set.rawValue) set")
            } else {
                throw EvalSettingsError("FLOWFOREST_EVAL_ONLY: no scenario \"\(name)\" in the \(set.rawValue) set; "
                    + "its scenarios: reference, variants, " + members.map(\.name).joined(separator: ", "))
            }
        }
        return members.filter { chosen.contains($0.name) || chosen.contains($0.isVariant ? "variants" : "reference") }
    }

    public static func == (a: EvalSettings, b: EvalSettings) -> Bool {
        a.evalSet == b.evalSet && a.trainSeconds == b.trainSeconds && a.normalSeconds == b.normalSeconds
            && a.outDirectory == b.outDirectory && a.attacks == b.attacks
    }
}

/// A setting of `flowforest-lab eval` that cannot be used, with what it accepts.
public struct EvalSettingsError: Error, CustomStringConvertible, Equatable {
    public var description: String
    init(_ description: String) { self.description = description }
}
