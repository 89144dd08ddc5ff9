internal import CLibbpf
import Foundation

/// Turns on the kernel's BPF run-time statistics (`run_time_ns`, `run_cnt`
/// per program) for as long as this value lives; the kernel turns them off
/// again when the last holder closes, so nothing is left switched on.
public final class BPFStatistics {
    private var fd: Int32

    /// - Throws: ``EBPFError/permissionDenied(_:)`` without root, or
    ///   ``EBPFError/unsupported(_:)`` on kernels before 5.8.
    public init() throws(EBPFError) {
        let rc = bpf_enable_stats(BPF_STATS_RUN_TIME)
        guard rc >= 0 else {
            let err = errno
            if err == EPERM || err == EACCES {
                throw .permissionDenied("BPF statistics need root or CAP_SYS_ADMIN (run with sudo)")
            }
            throw .unsupported("this kernel cannot enable BPF statistics: \(String(cString: strerror(err)))")
        }
        fd = rc
    }

    deinit { close(fd) }
}
