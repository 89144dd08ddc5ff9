internal import CLibbpf
import Foundation

extension EBPFFlowSource {
    /// The programs attached through tcx to an interface, as "ingress NAME"
    /// and "egress NAME" (FlowForest's is `ff_tc`): `tc filter show` does
    /// not list tcx links, so this is how to see them. Empty on kernels
    /// without tcx (the query says EINVAL there); other failures throw.
    public static func tcxPrograms(interface: String, namespace: String? = nil) throws -> [String] {
        try NetworkNamespace.run(namespace) { () -> [String] in
            let index = Int32(bitPattern: try Attachment.interfaceIndex(interface))
            var out: [String] = []
            for egress: Int32 in [0, 1] {
                var ids = [UInt32](repeating: 0, count: 64)
                var count = UInt32(ids.count)
                let rc = ff_tcx_query(index, egress, &ids, &count)
                if rc == -EINVAL { return [] }
                guard rc == 0 else {
                    throw EBPFError.readFailed("tcx query on \(interface): \(String(cString: strerror(-rc)))")
                }
                for id in ids.prefix(Int(count)) { out.append("\(egress == 1 ? "egress" : "ingress") \(Attachment.programName(id))") }
            }
            return out
        }
    }
}
