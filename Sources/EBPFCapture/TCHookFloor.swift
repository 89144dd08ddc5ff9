internal import CLibbpf
public import Logging

/// A tc program that returns at once (`ff_tc_floor`), attached where
/// `--mode tc` attaches (tcx where the kernel has it, ingress and egress):
/// the cost of the hook itself on this machine, so a benchmark shows how
/// much of the capture's cost is the program's own. Counts nothing.
public final class TCHookFloor {
    private let object: OpaquePointer
    private var attachments: [Attachment] = []
    /// How each interface is hooked: "tcx" or "clsact".
    public private(set) var hooks: [String: String] = [:]

    /// Loads the floor program from the embedded object (or `objectPath`)
    /// and attaches it to `interfaces` in `namespace`.
    public init(interfaces: [String], namespace: String? = nil, objectPath: String? = nil, logger: Logger) throws {
        let opened = try OpenedKernelObject(try KernelObjectSource.resolve(objectPath))
        object = opened.object
        for name in KernelProgramName.allCases {
            bpf_program__set_autoload(opened.program(name), name == .tcFloor)
        }
        // The program touches no map: create none of the capture's.
        for name in KernelMapName.allCases { bpf_map__set_autocreate(opened.map(name), false) }
        let rc = bpf_object__load(object)
        if rc != 0 {
            let log = KernelProgram.libbpfLog()
            bpf_object__close(object)
            throw KernelProgram.loadError(-rc, log: log)
        }
        let fd = bpf_program__fd(opened.program(.tcFloor)!)
        do {
            try NetworkNamespace.run(namespace) {
                for name in interfaces {
                    let a = try Attachment(interface: name, mode: .tc, namespace: namespace, programFD: fd, logger: logger)
                    attachments.append(a)
                    hooks[name] = a.tcHook
                }
            }
        } catch {
            detach()
            throw error
        }
    }

    deinit { detach() }

    /// Detaches from every interface and unloads the program; idempotent.
    public func detach() {
        for a in attachments { a.detach() }
        attachments = []
        if !closed {
            bpf_object__close(object)
            closed = true
        }
    }

    private var closed = false
}
