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

    @Test("flow slots keep the kernel's layout and every mapped chunk starts on a page")
    func slotLayout() {
        // The kernel places array values 8-byte aligned at this stride.
        #expect(FlowSlotArray.slotBytes == 280)
        #expect(FlowSlotArray.slotBytes % 8 == 0)
        #expect((FlowSlotArray.slotsPerChunk * FlowSlotArray.slotBytes) % 4096 == 0)
        #expect(EBPFAttachMode.allCases.map { KernelProgramName($0).rawValue } == ["ff_tc", "ff_xdp", "ff_socket"])
        #expect(KernelMapName.sizedByMapSize.allSatisfy { KernelMapName.allCases.contains($0) })
    }
}
