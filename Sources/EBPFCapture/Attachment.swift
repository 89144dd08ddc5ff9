internal import CLibbpf
import Foundation
import Logging

/// The program hooked into one interface in one mode, and exactly what was
/// created for it, so ``detach()`` removes that and nothing else.
final class Attachment {
    let interface: String
    let ifindex: UInt32
    let mode: EBPFAttachMode
    /// Network namespace the interface lives in (nil: the process's own).
    let namespace: String?
    private var createdQdisc = false
    private var tcHooks: [Int32] = []   // clsact filters: 0 ingress, 1 egress
    private var tcxLinks: [Int32] = []
    private var xdpLink: Int32 = -1
    private var socketFD: Int32 = -1
    /// "native" or "generic" for XDP, empty otherwise.
    private(set) var xdpMode = ""
    /// "tcx" or "clsact" for tc, empty otherwise.
    private(set) var tcHook = ""

    private static let xdpSKBMode: UInt32 = 1 << 1
    private static let xdpDriverMode: UInt32 = 1 << 2

    /// Resolves an interface name, with the error users expect.
    static func interfaceIndex(_ name: String) throws(EBPFError) -> UInt32 {
        guard !name.isEmpty, name.utf8.count < 16 else { throw .noSuchInterface(name) }
        let index = if_nametoindex(name)
        guard index != 0 else { throw .noSuchInterface(name) }
        return index
    }

    /// Attaches; call inside ``NetworkNamespace/run(_:_:)`` for `namespace`.
    init(interface: String, mode: EBPFAttachMode, tcHook: EBPFTCHook = .auto, namespace: String?, programFD: Int32,
         logger: Logger) throws(EBPFError) {
        self.namespace = namespace
        self.interface = interface
        self.ifindex = try Attachment.interfaceIndex(interface)
        self.mode = mode
        do {
            switch mode {
            case .tc: try attachTC(programFD: programFD, hook: tcHook, logger: logger)
            case .xdp: try attachXDP(programFD: programFD, logger: logger)
            case .socket: try attachSocket(programFD: programFD)
            }
        } catch {
            detachHere()
            throw error
        }
    }

    deinit { detach() }

    private func attachTC(programFD: Int32, hook: EBPFTCHook, logger: Logger) throws(EBPFError) {
        let index = Int32(bitPattern: ifindex)
        // On loopback every packet leaves (egress) and comes back (ingress) on
        // the same device: hooking both would count it twice. The kernel
        // gives loopback ifindex 1 in every namespace (LOOPBACK_IFINDEX).
        let hooks: [Int32] = index == 1 ? [1] : [0, 1]
        let hookNames = hooks == [1] ? "egress (loopback)" : "ingress+egress"
        if hook != .clsact {
            try removeStaleFilters(hooks, logger: logger)
            // tcx first: the kernel runs it without the qdisc and classifier
            // layers (measured in docs/benchmarks.md), and the links go away
            // with this process however it ends, so a killed run leaves nothing.
            for egress in hooks {
                let fd = ff_tcx_link(programFD, index, egress)
                if fd >= 0 {
                    tcxLinks.append(fd)
                    continue
                }
                // Kernels before 6.6 know no tcx attach type and say EINVAL.
                if -fd == EINVAL && tcxLinks.isEmpty {
                    if hook == .tcx {
                        throw .unsupported("tc on \(interface): the kernel refused a tcx link (\(String(cString: strerror(EINVAL)))); tcx needs Linux 6.6 or later: use --tc-hook clsact")
                    }
                    logger.info("the kernel refused a tcx link (tcx needs Linux 6.6+): attaching clsact filters instead",
                                metadata: ["interface": "\(interface)", "error": "\(String(cString: strerror(EINVAL)))"])
                    break
                }
                throw tcxError(-fd, egress: egress)
            }
            if !tcxLinks.isEmpty {
                tcHook = "tcx"
                logger.info("eBPF attached", metadata: ["mode": "tc", "hook": "tcx", "interface": "\(interface)", "hooks": "\(hookNames)"])
                return
            }
        }
        try attachClsact(hooks, programFD: programFD, logger: logger)
        tcHook = "clsact"
        logger.info("eBPF attached", metadata: ["mode": "tc", "hook": "clsact", "interface": "\(interface)", "hooks": "\(hookNames)"])
    }

    /// A clsact filter at FlowForest's handle and priority.
    private struct Filter {
        var egress: Int32
        var programID: UInt32
        var programName: String
        /// Processes holding the program open: a live FlowForest capture.
        /// None: a run that was killed left it behind.
        var holders: [Int32]
        var isFlowForest: Bool { programName == KernelProgramName.tc.rawValue }
        var hookName: String { egress == 1 ? "egress" : "ingress" }
    }

    private func filtersAtOurHandle(_ hooks: [Int32]) -> [Filter] {
        hooks.compactMap { egress in
            var id: UInt32 = 0
            guard ff_tc_query(Int32(bitPattern: ifindex), egress, &id) == 0, id != 0 else { return nil }
            let name = Attachment.programName(id)
            let holders = name == KernelProgramName.tc.rawValue ? Attachment.processes(holdingProgram: id) : []
            return Filter(egress: egress, programID: id, programName: name, holders: holders)
        }
    }

    /// A run killed while attached through clsact leaves its filters counting
    /// into a map nobody reads; they would cost every packet twice, so remove
    /// them before attaching through tcx. A live run's filters stay: two
    /// sensors on one interface is a choice, not debris.
    private func removeStaleFilters(_ hooks: [Int32], logger: Logger) throws(EBPFError) {
        let ours = filtersAtOurHandle(hooks).filter(\.isFlowForest)
        for live in ours where !live.holders.isEmpty {
            logger.info("another FlowForest process also captures here through a clsact filter",
                        metadata: ["interface": "\(interface)", "hook": "\(live.hookName)", "pids": "\(live.holders)"])
        }
        let stale = ours.filter(\.holders.isEmpty)
        guard !stale.isEmpty else { return }
        logger.warning("removing FlowForest tc filters left behind by an earlier run", metadata: ["interface": "\(interface)"])
        let index = Int32(bitPattern: ifindex)
        for filter in stale { _ = ff_tc_detach(index, filter.egress) }
        removeQdiscIfEmpty()
    }

    /// Removes the clsact qdisc when no filter of anyone's is left on it.
    private func removeQdiscIfEmpty() {
        let index = Int32(bitPattern: ifindex)
        if ff_tc_filter_count(index, 0) == 0 && ff_tc_filter_count(index, 1) == 0 {
            _ = ff_tc_hook_destroy(index)
        }
    }

    private func attachClsact(_ hooks: [Int32], programFD: Int32, logger: Logger) throws(EBPFError) {
        let index = Int32(bitPattern: ifindex)
        var created: Int32 = 0
        let rc = ff_tc_hook_create(index, &created)
        if rc != 0 { throw tcError(-rc, what: "create a clsact qdisc") }
        createdQdisc = created != 0
        let existing = filtersAtOurHandle(hooks)
        for filter in existing {
            guard filter.isFlowForest else {
                throw .attachFailed(
                    "\(interface) has a tc \(filter.hookName) filter at FlowForest's handle 0x464c priority 1 (program \(filter.programName)); "
                        + "remove it with `tc filter del dev \(interface) \(filter.hookName) prio 1`")
            }
            guard filter.holders.isEmpty else {
                throw .attachFailed(
                    "FlowForest (pid \(filter.holders.map(String.init).joined(separator: ", "))) already captures on \(interface) through a clsact filter; "
                        + "stop it, or run beside it with --tc-hook tcx")
            }
        }
        if !existing.isEmpty {
            // A killed run left its filters behind: replace them, and remove
            // the qdisc at exit if nothing else is on it then.
            logger.warning("replacing FlowForest tc filters left behind by an earlier run", metadata: ["interface": "\(interface)"])
            createdQdisc = true
        }
        for egress in hooks {
            let rc = ff_tc_attach(index, egress, programFD)
            if rc != 0 { throw tcError(-rc, what: "attach the \(egress == 1 ? "egress" : "ingress") filter") }
            tcHooks.append(egress)
        }
    }

    private func tcxError(_ err: Int32, egress: Int32) -> EBPFError {
        let what = "tc on \(interface): cannot attach the tcx \(egress == 1 ? "egress" : "ingress") link"
        switch err {
        case EPERM, EACCES:
            return .permissionDenied("\(what): needs root or CAP_NET_ADMIN and CAP_BPF (run with sudo)")
        case ENODEV, ENOENT, ENXIO:
            return .noSuchInterface(interface)
        default:
            return .attachFailed("\(what): \(String(cString: strerror(err))); try --tc-hook clsact\(KernelProgram.libbpfLog())")
        }
    }

    /// Processes with the program open (its loader keeps an fd; a filter
    /// whose loader died is held by nobody), from `/proc/*/fdinfo`. This
    /// process counts too: the program is never the one just loaded, so
    /// here it belongs to another capture source. Read only when a
    /// FlowForest filter is found.
    static func processes(holdingProgram id: UInt32) -> [Int32] {
        let fm = FileManager.default
        var found: [Int32] = []
        for entry in (try? fm.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = Int32(entry), let fds = try? fm.contentsOfDirectory(atPath: "/proc/\(pid)/fdinfo") else { continue }
            for fd in fds {
                guard let info = try? String(contentsOfFile: "/proc/\(pid)/fdinfo/\(fd)", encoding: .utf8),
                      info.contains("prog_id:\t\(id)\n") else { continue }
                found.append(pid)
                break
            }
        }
        return found
    }

    private func tcError(_ err: Int32, what: String) -> EBPFError {
        switch err {
        case EPERM, EACCES:
            return .permissionDenied("tc on \(interface): cannot \(what): needs root or CAP_NET_ADMIN and CAP_BPF (run with sudo)")
        case ENODEV, ENOENT:
            return .noSuchInterface(interface)
        case EOPNOTSUPP, EINVAL:
            return .unsupported("tc on \(interface): cannot \(what) (\(String(cString: strerror(err)))): the kernel needs CONFIG_NET_SCH_INGRESS and CONFIG_NET_CLS_BPF; try --mode socket")
        default:
            return .attachFailed("tc on \(interface): cannot \(what): \(String(cString: strerror(err)))\(KernelProgram.libbpfLog())")
        }
    }

    private func attachXDP(programFD: Int32, logger: Logger) throws(EBPFError) {
        let index = Int32(bitPattern: ifindex)
        var existing: UInt32 = 0
        var attachMode: UInt8 = 0
        if ff_xdp_query(index, &existing, &attachMode) == 0, existing != 0 {
            throw .attachFailed(
                "\(interface) already runs XDP program \(Attachment.programName(existing)) (id \(existing)); FlowForest does not replace it: "
                    + "detach it (`ip link set dev \(interface) xdp off`) or use --mode tc")
        }
        // A bpf_link, not a netlink attach: the kernel removes it when this
        // process exits, however it exits.
        let native = ff_xdp_link(programFD, index, Attachment.xdpDriverMode)
        if native >= 0 {
            xdpLink = native
            xdpMode = "native"
            logger.info("eBPF attached", metadata: ["mode": "xdp", "interface": "\(interface)", "xdp": "native"])
            return
        }
        let generic = ff_xdp_link(programFD, index, Attachment.xdpSKBMode)
        if generic >= 0 {
            xdpLink = generic
            xdpMode = "generic"
            logger.info(
                "eBPF attached; the driver has no native XDP, using generic XDP",
                metadata: ["mode": "xdp", "interface": "\(interface)", "xdp": "generic", "native_error": "\(String(cString: strerror(-native)))"])
            return
        }
        switch -generic {
        case EPERM, EACCES:
            throw .permissionDenied("xdp on \(interface): needs root or CAP_NET_ADMIN and CAP_BPF (run with sudo)")
        case EBUSY, EEXIST:
            throw .attachFailed("\(interface) already has an XDP program; detach it (`ip link set dev \(interface) xdp off`) or use --mode tc")
        case EOPNOTSUPP, EINVAL:
            throw .unsupported("xdp on \(interface): neither native (\(String(cString: strerror(-native)))) nor generic XDP (\(String(cString: strerror(-generic)))) is available; use --mode tc")
        default:
            throw .attachFailed("xdp on \(interface): \(String(cString: strerror(-generic)))")
        }
    }

    private func attachSocket(programFD: Int32) throws(EBPFError) {
        let fd = ff_packet_socket(Int32(bitPattern: ifindex), programFD)
        guard fd >= 0 else {
            switch -fd {
            case EPERM, EACCES:
                throw .permissionDenied("socket mode on \(interface): an AF_PACKET socket needs root or CAP_NET_RAW (run with sudo)")
            case ENODEV:
                throw .noSuchInterface(interface)
            case EAFNOSUPPORT, EINVAL, ENOPROTOOPT:
                throw .unsupported("socket mode on \(interface): the kernel refused an eBPF socket filter (\(String(cString: strerror(-fd)))); needs CONFIG_PACKET")
            default:
                throw .attachFailed("socket mode on \(interface): \(String(cString: strerror(-fd)))")
            }
        }
        socketFD = fd
    }

    /// Removes what this attachment created; safe to call more than once.
    func detach() {
        guard !tcHooks.isEmpty || createdQdisc || !tcxLinks.isEmpty || xdpLink >= 0 || socketFD >= 0 else { return }
        do {
            try NetworkNamespace.run(namespace) { detachHere() }
        } catch {
            // The namespace is gone, and with it the interface and its hooks.
            tcHooks.removeAll()
            createdQdisc = false
            detachHere()  // still closes links and sockets
        }
    }

    private func detachHere() {
        let index = Int32(bitPattern: ifindex)
        for egress in tcHooks { _ = ff_tc_detach(index, egress) }
        tcHooks.removeAll()
        if createdQdisc {
            // Someone may have added filters of their own since; they keep it.
            removeQdiscIfEmpty()
            createdQdisc = false
        }
        for link in tcxLinks { Glibc.close(link) }
        tcxLinks.removeAll()
        if xdpLink >= 0 {
            Glibc.close(xdpLink)
            xdpLink = -1
        }
        if socketFD >= 0 {
            Glibc.close(socketFD)
            socketFD = -1
        }
    }

    static func programName(_ id: UInt32) -> String {
        var buffer = [CChar](repeating: 0, count: 64)
        guard ff_prog_name(id, &buffer, buffer.count) == 0 else { return "id \(id)" }
        return decodeCString(buffer)
    }
}
