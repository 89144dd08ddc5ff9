import FlowForestCore
import FlowForestPipeline
import FlowForestStore
import Foundation
import Hummingbird

/// `/api/suppressions`: admins say "this is expected". Stored rules are
/// listed with those of `--suppress FILE` (`source: "file"`, no id, not
/// editable here); every change is handed to the pipeline at once.
extension API {
    struct SuppressionList: Encodable {
        var suppressions: [SuppressionJSON]
    }

    func listSuppressions(_ context: AppRequestContext) async throws -> Response {
        let stored = try await storeCall { try await store.suppressions() }
        return try json(SuppressionList(suppressions: (configuration.suppressions + stored).map(SuppressionJSON.init)))
    }

    func oneSuppression(_ context: AppRequestContext) async throws -> Response {
        let id = try suppressionID(context)
        guard let rule = try await storeCall({ try await store.suppression(id: id) }) else { throw APIError(.notFound, "no suppression rule \(id)") }
        return try json(SuppressionJSON(rule: rule))
    }

    func createSuppression(_ request: Request, _ context: AppRequestContext) async throws -> Response {
        let p = try context.authenticated()
        let rule = try await suppressionBody(request, who: p.name)
        let stored = try await storeCall { try await store.insertSuppression(rule) }
        await applySuppressions()
        logger.notice("suppression rule added", metadata: ["by": "\(p.name)", "id": "\(stored.id ?? 0)", "reason": "\(rule.reason)"])
        return try json(SuppressionJSON(rule: stored), status: .created)
    }

    func replaceSuppression(_ request: Request, _ context: AppRequestContext) async throws -> Response {
        let p = try context.authenticated()
        let id = try suppressionID(context)
        var rule = try await suppressionBody(request, who: p.name)
        guard try await storeCall({ try await store.updateSuppression(id: id, with: rule) }) else {
            throw APIError(.notFound, "no suppression rule \(id)")
        }
        rule.id = id
        await applySuppressions()
        logger.notice("suppression rule changed", metadata: ["by": "\(p.name)", "id": "\(id)"])
        return try json(SuppressionJSON(rule: rule))
    }

    func deleteSuppression(_ context: AppRequestContext) async throws -> Response {
        let p = try context.authenticated()
        let id = try suppressionID(context)
        guard try await storeCall({ try await store.deleteSuppression(id: id) }) else { throw APIError(.notFound, "no suppression rule \(id)") }
        await applySuppressions()
        logger.notice("suppression rule removed", metadata: ["by": "\(p.name)", "id": "\(id)"])
        return Response(status: .noContent)
    }

    /// Hands the file's and the store's rules to the pipeline; a failed read keeps the rules it has (and is logged).
    func applySuppressions() async {
        do {
            // From the writer's connection: the rule just written must be among them.
            let stored = try await store.suppressions(.write)
            await pipeline.setSuppressions(configuration.suppressions + stored)
        } catch {
            logger.error("suppression rules not reloaded", metadata: ["error": "\(error)"])
        }
    }

    private func suppressionID(_ context: AppRequestContext) throws -> Int64 {
        guard let text = context.parameters.get("id"), let id = Self.positiveInteger(text) else {
            throw APIError(.badRequest, "id: expected a positive integer")
        }
        return id
    }

    private func suppressionBody(_ request: Request, who: String) async throws -> Suppression {
        let body: ByteBuffer
        do {
            body = try await request.body.collect(upTo: 16 * 1024)
        } catch {
            throw APIError(.contentTooLarge, "a suppression rule is at most 16 KiB")
        }
        guard let object = try? JSONSerialization.jsonObject(with: Data(buffer: body)) else {
            throw APIError(.badRequest, "expected a JSON object with reason and at least one of actor, target, ports, label")
        }
        do {
            return try SuppressionInput.rule(from: object, who: who, nowMs: Store.nowMs())
        } catch {
            throw APIError(.badRequest, error.description)
        }
    }
}
