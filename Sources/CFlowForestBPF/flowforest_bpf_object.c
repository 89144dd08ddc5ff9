#include "flowforest_bpf_object.h"

/*
 * `make bpf` compiles bpf/flowforest.bpf.c and writes the object's bytes as
 * a C initializer list to out/bpf/flowforest.bpf.inc. The include is
 * tracked like any header, so `swift build` recompiles this file whenever
 * `make bpf` has rebuilt the object.
 */
#if __has_include("../../out/bpf/flowforest.bpf.inc")

/* Aligned like a heap buffer: libelf reads the ELF headers in place. */
static const unsigned char object[] __attribute__((aligned(8))) = {
#include "../../out/bpf/flowforest.bpf.inc"
};

const unsigned char *ff_bpf_object(size_t *size)
{
    *size = sizeof(object);
    return object;
}

#else
#error "out/bpf/flowforest.bpf.inc is missing: run `make bpf` before `swift build` (or build with `make build`), so the eBPF object can be embedded"
#endif
