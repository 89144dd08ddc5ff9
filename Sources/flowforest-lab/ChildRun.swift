import Foundation

/// A command run to completion and measured by the kernel: wall time around
/// it and the resource usage `wait4` reports for it (all its threads).
/// Foundation's `Process` does not expose that usage, so the child is
/// started with `posix_spawnp` and reaped here.
struct ChildRun: Sendable {
    var status: Int32
    var wallSeconds: Double
    var userSeconds: Double
    var systemSeconds: Double
    /// Peak resident memory, KiB.
    var maxRSSKiB: Int

    var cpuSeconds: Double { userSeconds + systemSeconds }

    /// Runs `arguments` (the first looked up on PATH) with standard output
    /// and error to the given files and standard input from /dev/null.
    static func run(_ arguments: [String], stdout: URL, stderr: URL) throws -> ChildRun {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, stdout.path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, stderr.path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        // Pool threads block signals and a child inherits the mask: start it with none blocked.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK))
        let argv = arguments.map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        var pid: pid_t = 0
        let started = DispatchTime.now().uptimeNanoseconds
        let spawned = posix_spawnp(&pid, arguments[0], &actions, &attributes, argv, environ)
        guard spawned == 0 else { throw BenchError("cannot start \(arguments[0]): \(String(cString: strerror(spawned)))") }
        ChildProcesses.shared.started(pid)
        var status: Int32 = 0
        var usage = rusage()
        while wait4(pid, &status, 0, &usage) < 0 {
            guard errno == EINTR else { throw BenchError("wait4 for \(arguments[0]): \(String(cString: strerror(errno)))") }
        }
        ChildProcesses.shared.reaped(pid)
        let wall = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
        // Exited normally: low 7 bits 0, the code in the next byte; otherwise the signal, negated.
        let code = status & 0x7F == 0 ? (status >> 8) & 0xFF : -(status & 0x7F)
        return ChildRun(status: code, wallSeconds: wall, userSeconds: seconds(usage.ru_utime),
                        systemSeconds: seconds(usage.ru_stime), maxRSSKiB: Int(usage.ru_maxrss))
    }
}
