internal import CLibbpf
import Foundation

/// Runs netlink and socket work inside a named network namespace (as made
/// by `ip netns add`), so a sensor in the host namespace can attach to an
/// interface of a container or lab namespace.
///
/// A namespace switch is per thread: the work runs on a fresh thread that
/// enters the namespace and ends afterwards, so no pooled thread is ever
/// left in another namespace. Sockets and handles opened inside stay bound
/// to that namespace after the call.
public enum NetworkNamespace {
    /// Runs `body` inside namespace `name` (a name from `ip netns list` or a
    /// path); directly when `name` is nil.
    public static func run<T>(_ name: String?, _ body: () throws -> T) throws -> T {
        guard let name else { return try body() }
        let path = name.contains("/") ? name : "/var/run/netns/\(name)"
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw EBPFError.invalidConfiguration("no network namespace \(name) (\(path): \(String(cString: strerror(errno)))); see `ip netns list`")
        }
        defer { close(fd) }
        return try withoutActuallyEscaping(body) { body in
            let box = Box(body)
            let done = DispatchSemaphore(value: 0)
            let thread = Thread {
                let rc = ff_enter_netns(fd)
                if rc != 0 {
                    box.result = .failure(EBPFError.permissionDenied(
                        "entering network namespace \(name) needs root or CAP_SYS_ADMIN: \(String(cString: strerror(-rc)))"))
                } else {
                    box.result = Result { try box.body!() }
                }
                // Drop the closure before signalling: it must not outlive this call.
                box.body = nil
                done.signal()
            }
            thread.start()
            done.wait()
            return try box.result!.get()
        }
    }

    private final class Box<T>: @unchecked Sendable {
        // @unchecked: written by the worker thread before it signals, read after the wait.
        var body: (() throws -> T)?
        var result: Result<T, any Error>?
        init(_ body: @escaping () throws -> T) { self.body = body }
    }
}
