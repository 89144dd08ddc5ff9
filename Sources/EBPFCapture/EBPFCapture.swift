// The eBPF capture source: loads bpf/flowforest.bpf.o, attaches it and drains its maps.
