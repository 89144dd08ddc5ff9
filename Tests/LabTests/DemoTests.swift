@testable import FlowForestLab
import FlowForestTestSupport
import Foundation
import Synchronization
import Testing

/// `flowforest demo`: its first attack waits for a trained model, so the
/// dashboard shows it rather than the detector learning it as normal.
@Suite("Lab: the demo", .serialized, .enabled(if: Command.isRoot, "needs root for network namespaces and eBPF"))
struct DemoTests {
    @Test("the first attack starts only once the sensor reports its model trained, and shows as an incident")
    func firstAttackWaitsForTheModel() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let port = try ThrowawayPostgres.freePort()
        var options = Demo.Options(binary: Binary.path, database: dir.appendingPathComponent("demo.db").path, workDirectory: dir)
        options.listen = "127.0.0.1:\(port)"
        options.learningSeconds = 10
        options.attackInterval = 5
        let demo = Demo(options: options)
        // Each message with the model state the sensor reported as it was said.
        let said = Mutex<[(message: String, model: String?)]>([])
        let finished = Mutex<(done: Bool, error: String?)>((false, nil))
        let thread = Thread {
            do {
                try demo.run { message in said.withLock { $0.append((message, demo.modelState())) } }
            } catch {
                finished.withLock { $0.error = "\(error)" }
            }
            finished.withLock { $0.done = true }
        }
        thread.start()
        defer {
            demo.stop()
            try? Wait.blockingUntil("the demo to tear its lab down", timeout: 120) { finished.withLock { $0.done } }
        }
        try Wait.blockingUntil("the demo's first attack", timeout: 300, every: 0.2,
                               detail: { "\(said.withLock { $0.map(\.message) }) \(finished.withLock { $0.error ?? "" }) \(tail(dir.appendingPathComponent("sensor.log")))" }) {
            said.withLock { $0.contains { $0.message.hasPrefix("attack:") } }
        }
        let messages = said.withLock { $0 }
        let attack = try #require(messages.firstIndex { $0.message.hasPrefix("attack:") })
        #expect(messages[attack].model == "detecting", "the first attack started while the model was \(messages[attack].model ?? "not answering")")
        #expect(messages[..<attack].contains { $0.message == "the model is trained" }, "\(messages.map(\.message))")
        // The attack is shown: an incident about the attacker.
        try Wait.blockingUntil("an incident about the first attack", timeout: 90, every: 0.5, detail: { tail(dir.appendingPathComponent("sensor.log")) }) {
            let r = try Command.run(["curl", "-s", "-m", "2", "http://127.0.0.1:\(port)/api/incidents?ip=198.18.0.66"], timeout: 5)
            let body = try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
            return !((body?["incidents"] as? [Any]) ?? []).isEmpty
        }
    }
}
