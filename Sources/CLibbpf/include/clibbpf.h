#ifndef FLOWFOREST_CLIBBPF_H
#define FLOWFOREST_CLIBBPF_H
/*
 * libbpf for the EBPFCapture module, the records shared with the kernel, and
 * small wrappers for libbpf APIs that take option structs built by macros
 * (LIBBPF_OPTS) or need socket calls Swift reaches awkwardly.
 *
 * All functions return 0 (or a non-negative fd) on success and a negative
 * errno on failure.
 */
#include <bpf/libbpf.h>
#include <bpf/bpf.h>
#include <stdint.h>
#include <stddef.h>
#include "flow_types.h"

/* Handle and priority of FlowForest's tc filters: fixed, so a new run finds
 * and replaces a filter that a killed run left behind. */
#define FF_TC_HANDLE 0x464c
#define FF_TC_PRIORITY 1

/* Routes libbpf's warnings into a buffer (read with ff_libbpf_last_log)
 * instead of stderr, so errors can name the verifier's or kernel's reason. */
void ff_libbpf_capture_logs(void);
/* Copies the warnings logged since the last ff_libbpf_clear_log. */
size_t ff_libbpf_last_log(char *buf, size_t size);
void ff_libbpf_clear_log(void);

/* Ensures a clsact qdisc on ifindex. *created is 1 when this call made it. */
int ff_tc_hook_create(int ifindex, int *created);
/* Removes the clsact qdisc (and every filter on it). */
int ff_tc_hook_destroy(int ifindex);
/* prog id of FlowForest's filter at this hook, 0 when none; <0 on error. */
int ff_tc_query(int ifindex, int egress, __u32 *prog_id);
/* Attaches (replacing any filter with FlowForest's handle and priority). */
int ff_tc_attach(int ifindex, int egress, int prog_fd);
int ff_tc_detach(int ifindex, int egress);
/* Filters of any owner at a clsact hook (netlink dump); a negative errno
 * when the device has no clsact qdisc or the dump fails. */
int ff_tc_filter_count(int ifindex, int egress);

/* tcx (Linux 6.6+): the program first at the device's tc ingress or egress
 * through a bpf_link, which the kernel removes when this process exits,
 * however it exits. Returns the link fd; -EINVAL when the kernel has no tcx. */
int ff_tcx_link(int prog_fd, int ifindex, int egress);
/* Ids of the programs attached through tcx at a hook; *count is the room in
 * prog_ids on entry and the number attached on return. */
int ff_tcx_query(int ifindex, int egress, __u32 *prog_ids, __u32 *count);

/* XDP through a bpf_link (gone when the process exits, even on SIGKILL).
 * xdp_flags: XDP_FLAGS_DRV_MODE or XDP_FLAGS_SKB_MODE. Returns the link fd. */
int ff_xdp_link(int prog_fd, int ifindex, __u32 xdp_flags);
/* Currently attached XDP program id and mode (XDP_ATTACHED_*). */
int ff_xdp_query(int ifindex, __u32 *prog_id, __u8 *mode);

/* An AF_PACKET socket bound to ifindex with prog_fd as its filter.
 * Returns the socket fd. */
int ff_packet_socket(int ifindex, int prog_fd);

/* Batch lookup with element flags (BPF_F_LOCK); *count in/out. */
int ff_lookup_batch(int map_fd, void *in_batch, void *out_batch, void *keys, void *values,
                    __u32 *count, __u64 elem_flags);

/* Batch update and delete; *count in, and out the entries done before an
 * error. Both return 0 or -errno. */
int ff_update_batch(int map_fd, const void *keys, const void *values, __u32 *count, __u64 elem_flags);
int ff_delete_batch(int map_fd, const void *keys, __u32 *count);

/* The program's cumulative run time and run count (BPF statistics). */
int ff_prog_run_stats(int prog_fd, __u64 *run_time_ns, __u64 *run_cnt);
/* Name of a loaded program by id, for recognising stale FlowForest hooks. */
int ff_prog_name(__u32 prog_id, char *name, size_t size);

/* Moves the calling thread into the network namespace open at fd. */
int ff_enter_netns(int fd);

/* The slot's `live` flag with acquire ordering: a reader that sees 1 sees
 * the key and figures the program wrote before it published the slot. */
__u32 ff_slot_live(const struct flow_slot *slot);
/* Marks a slot whose key was removed FF_SLOT_UNLINKED, before the wait for
 * program runs in flight: a run that reaches it through a hint after that
 * leaves it alone, so the final figures read after the wait are final. */
void ff_slot_unlink(struct flow_slot *slot);
/* Copies a slot whole and consistent: taken while its `seq` was even and
 * unchanged (no tc/xdp update in between) and with no direction half
 * added. Returns 0, or -EAGAIN when every one of `tries` copies met an
 * update; *out then holds the last copy. */
int ff_copy_slot(const struct flow_slot *slot, struct flow_slot *out, int tries);

/* CLOCK_MONOTONIC and CLOCK_REALTIME in ns, read back to back. */
void ff_clocks(__u64 *monotonic_ns, __u64 *realtime_ns);

#endif
