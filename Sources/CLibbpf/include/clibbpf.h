#ifndef FLOWFOREST_CLIBBPF_H
#define FLOWFOREST_CLIBBPF_H
/* libbpf for the EBPFCapture module, plus the records shared with the kernel. */
#include <bpf/libbpf.h>
#include <bpf/bpf.h>
#include "flow_types.h"
#endif
