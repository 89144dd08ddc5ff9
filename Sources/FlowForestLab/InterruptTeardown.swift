public import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Runs a lab's teardown when the process is interrupted (SIGINT, SIGTERM)
/// and exits with status 130, so an interrupted bench or evaluation leaves
/// no namespace, veth, process or work directory behind.
///
/// The teardown runs ip(8) and takes locks, neither of which is safe inside
/// a signal handler, so the signals are ignored and arrive through dispatch
/// sources instead. Keep the value while the lab exists and ``cancel()`` it
/// before tearing the lab down the ordinary way.
public final class InterruptTeardown {
    private let sources: [any DispatchSourceSignal]
    private let interrupted: Flag

    private final class Flag: Sendable {
        let raised = Atomic<Bool>(false)
    }

    /// - Parameters:
    ///   - name: the command, for the line printed on interruption.
    ///   - teardown: what removes the lab; called at most once, on a global queue.
    public init(_ name: String, teardown: @escaping @Sendable () -> Void) {
        let flag = Flag()
        interrupted = flag
        sources = [SIGINT, SIGTERM].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler {
                guard !flag.raised.exchange(true, ordering: .sequentiallyConsistent) else { return }
                FileHandle.standardError.write(Data("\(name): interrupted, removing the lab\n".utf8))
                teardown()
                exit(130)
            }
            source.resume()
            return source
        }
    }

    /// Stops watching; the signals' default actions are restored. Once an
    /// interruption is being handled it never returns: the handler's
    /// teardown ends the process, and the caller's own teardown (or its
    /// exit) racing it would leave the lab half removed. The caller's work
    /// fails as the handler removes the lab, which is how it gets here.
    public func cancel() {
        while interrupted.raised.load(ordering: .sequentiallyConsistent) { sleep(60) }
        for s in sources { s.cancel() }
        signal(SIGINT, SIG_DFL)
        signal(SIGTERM, SIG_DFL)
    }
}
