import FlowForestCore
import FlowForestLab
import Foundation
import Testing

/// `flowforest-lab eval`'s environment: what a user types picks exactly the
/// scenarios they named, and a typo is an error before any lab is built.
@Suite("eval settings")
struct EvalSettingsTests {
    @Test("defaults: the development set, every one of its scenarios, 180 s training, 300 s normal")
    func defaults() throws {
        let s = try EvalSettings(environment: [:])
        #expect(s.evalSet == .development)
        #expect(s.attacks == Attack.development)
        #expect(s.trainSeconds == 180 && s.normalSeconds == 300)
        #expect(s.outDirectory.path.hasSuffix("out/eval"))
    }

    @Test("the validation set runs only its own scenarios, with other seeds")
    func validationSet() throws {
        let s = try EvalSettings(environment: ["FLOWFOREST_EVAL_SET": "validation"])
        #expect(s.attacks == Attack.validation)
        #expect(Set(Attack.validation).isDisjoint(with: Attack.development))
        #expect(Attack.validation.count + Attack.development.count == Attack.allCases.count)
        let dev = try EvalSettings(environment: [:])
        #expect(s.seeds.train != dev.seeds.train && s.seeds.normal != dev.seeds.normal && s.seeds.attacks != dev.seeds.attacks)
    }

    @Test("FLOWFOREST_EVAL_ONLY picks scenarios by the names the table prints, in table order")
    func onlyByName() throws {
        let names = [Attack.udpScan.name, Attack.synScan.name]
        let s = try EvalSettings(environment: ["FLOWFOREST_EVAL_ONLY": names.joined(separator: "; ")])
        #expect(s.attacks == [.synScan, .udpScan])
        let reference = try EvalSettings(environment: ["FLOWFOREST_EVAL_ONLY": "reference"])
        #expect(reference.attacks == Attack.reference)
        let variants = try EvalSettings(environment: ["FLOWFOREST_EVAL_ONLY": "variants"])
        #expect(variants.attacks == Attack.development.filter(\.isVariant))
        // Names with commas in them ("tcp flood: hping3 -R, 400/s") are one name.
        let validation = try EvalSettings(environment: [
            "FLOWFOREST_EVAL_SET": "validation", "FLOWFOREST_EVAL_ONLY": [Attack.lowRSTFlood.name, Attack.ackFlood.name].joined(separator: ";"),
        ])
        #expect(validation.attacks == [.ackFlood, .lowRSTFlood])
    }

    @Test("a name that is no scenario of the set is an error naming it, not an empty run")
    func unknownNames() {
        expectError(["FLOWFOREST_EVAL_ONLY": "port scna"], mentions: "no scenario \"port scna\"")
        expectError(["FLOWFOREST_EVAL_ONLY": Attack.ackFlood.name], mentions: "belongs to the validation set")
        expectError(["FLOWFOREST_EVAL_SET": "validation", "FLOWFOREST_EVAL_ONLY": Attack.synScan.name], mentions: "belongs to the development set")
        expectError(["FLOWFOREST_EVAL_ONLY": " ; "], mentions: "empty")
        expectError(["FLOWFOREST_EVAL_SET": "test"], mentions: "FLOWFOREST_EVAL_SET: test is not one of development, validation")
    }

    @Test("seconds outside 10...86400, or not numbers, are refused", arguments: ["0", "-5", "nan", "inf", "1e9", "ten", ""])
    func badSeconds(text: String) {
        expectError(["FLOWFOREST_EVAL_NORMAL_SECONDS": text], mentions: "FLOWFOREST_EVAL_NORMAL_SECONDS")
        expectError(["FLOWFOREST_EVAL_TRAIN_SECONDS": text], mentions: "FLOWFOREST_EVAL_TRAIN_SECONDS")
    }

    @Test("an hour of normal traffic is accepted, for the false-alert figure")
    func hourOfNormalTraffic() throws {
        let s = try EvalSettings(environment: ["FLOWFOREST_EVAL_NORMAL_SECONDS": "3600", "FLOWFOREST_EVAL_ONLY": "reference"])
        #expect(s.normalSeconds == 3600)
    }

    @Test("every scenario has a unique name and expects a label that names a behaviour")
    func scenarioNames() {
        let names = Attack.allCases.map(\.name)
        #expect(Set(names).count == names.count)
        for attack in Attack.allCases {
            #expect(attack.expectedLabel.isSpecific, "\(attack.name)")
            #expect(!attack.name.contains(";"), "\(attack.name): FLOWFOREST_EVAL_ONLY splits on semicolons")
            #expect(attack.timeLimit > 0 && attack.timeLimit <= 120, "\(attack.name)")
        }
    }

    private func expectError(_ environment: [String: String], mentions text: String, sourceLocation: SourceLocation = #_sourceLocation) {
        do {
            _ = try EvalSettings(environment: environment)
            Issue.record("\(environment) was accepted", sourceLocation: sourceLocation)
        } catch {
            #expect(error.description.contains(text), "\(error.description)", sourceLocation: sourceLocation)
        }
    }
}
