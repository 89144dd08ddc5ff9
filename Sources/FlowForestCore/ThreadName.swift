#if canImport(Glibc)
import Glibc
#endif

/// Names the calling thread as `ps -L`, `top -H` and `perf` show it (the
/// kernel keeps the first 15 bytes).
///
/// Foundation's `Thread.name` does not do this reliably on Linux: set
/// before `start()` it never reaches the kernel, and set from inside the
/// thread it was lost now and then, leaving the name of the thread that
/// created it (a Dispatch worker's, "…oot.default-qos").
public func nameCurrentThread(_ name: String) {
    #if os(Linux)
    let fd = open("/proc/thread-self/comm", O_WRONLY | O_CLOEXEC)
    guard fd >= 0 else { return }
    defer { close(fd) }
    var bytes = Array(name.utf8.prefix(15))
    _ = write(fd, &bytes, bytes.count)
    #endif
}
