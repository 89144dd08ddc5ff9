import Testing
@testable import EBPFCapture

/// The eBPF object compiled into the binary: opened from memory as the
/// loader does, without loading it into the kernel, so no root is needed.
@Suite("Embedded eBPF object")
struct KernelObjectTests {
    @Test("the embedded object opens and holds every program and map the loader reaches")
    func embedded() throws {
        #expect(try KernelObjectSource.resolve(nil) == .embedded)
        let object = try OpenedKernelObject(.embedded)
        defer { object.close() }
        for name in KernelProgramName.allCases { #expect(object.program(name) != nil, "\(name)") }
        for name in KernelMapName.allCases { #expect(object.map(name) != nil, "\(name)") }
    }

    @Test("--bpf-object naming a missing file is an error that says how to build one")
    func missingOverride() {
        #expect(throws: EBPFError.self) { try KernelObjectSource.resolve("/nonexistent/flowforest.bpf.o") }
        do {
            _ = try KernelObjectSource.resolve("/nonexistent/flowforest.bpf.o")
        } catch {
            #expect(error.description.contains("make bpf"))
        }
    }

    @Test("each attach mode counts into its own flow map")
    func flowMaps() {
        #expect(KernelMapName.flows(for: .tc) == .flows)
        #expect(KernelMapName.flows(for: .xdp) == .flows)
        #expect(KernelMapName.flows(for: .socket) == .flowsAtomic)
        #expect(EBPFAttachMode.allCases.map { KernelProgramName($0).rawValue } == ["ff_tc", "ff_xdp", "ff_socket"])
    }
}
