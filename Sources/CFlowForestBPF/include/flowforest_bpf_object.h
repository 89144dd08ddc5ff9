#ifndef FLOWFOREST_BPF_OBJECT_H
#define FLOWFOREST_BPF_OBJECT_H
/*
 * The compiled eBPF program (out/bpf/flowforest.bpf.o), embedded in the
 * binary at build time, so the sensor needs no object file beside it.
 */
#include <stddef.h>

/* The object's ELF bytes, for bpf_object__open_mem; *size is their count. */
const unsigned char *ff_bpf_object(size_t *size);

#endif
