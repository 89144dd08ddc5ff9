/// Why the eBPF capture could not start or stopped; each message says what is
/// missing and how to fix it, so `--mode auto` can log it when falling back.
public enum EBPFError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The named interface does not exist.
    case noSuchInterface(String)
    /// Missing privilege: what is missing and how to get it.
    case permissionDenied(String)
    /// The kernel or interface does not support what was asked.
    case unsupported(String)
    /// The object file given instead of the embedded one cannot be read.
    case objectNotFound(String)
    /// libbpf or the verifier refused the object.
    case loadFailed(String)
    /// Attaching to an interface failed for another reason.
    case attachFailed(String)
    /// A setting is out of range.
    case invalidConfiguration(String)
    /// Reading the kernel maps failed while running.
    case readFailed(String)

    public var description: String {
        switch self {
        case .noSuchInterface(let name): return "no such interface: \(name) (see `ip link`)"
        case .permissionDenied(let s): return "permission denied: \(s)"
        case .unsupported(let s): return "not supported: \(s)"
        case .objectNotFound(let s): return "eBPF object not found: \(s)"
        case .loadFailed(let s): return "loading the eBPF program failed: \(s)"
        case .attachFailed(let s): return "attaching the eBPF program failed: \(s)"
        case .invalidConfiguration(let s): return "invalid eBPF capture setting: \(s)"
        case .readFailed(let s): return "reading the kernel flow map failed: \(s)"
        }
    }
}
