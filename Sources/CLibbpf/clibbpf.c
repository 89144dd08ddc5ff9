#define _GNU_SOURCE
#include "clibbpf.h"

#include <sched.h>

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/if_link.h>
#include <linux/if_packet.h>
#include <linux/netlink.h>
#include <linux/pkt_sched.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#ifndef SO_ATTACH_BPF
#define SO_ATTACH_BPF 50
#endif

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char log_buf[4096];
static size_t log_len;

static int capture_print(enum libbpf_print_level level, const char *fmt, va_list args)
{
    if (level == LIBBPF_DEBUG)
        return 0;
    char line[1024];
    int n = vsnprintf(line, sizeof(line), fmt, args);
    if (n <= 0)
        return 0;
    if ((size_t)n >= sizeof(line))
        n = sizeof(line) - 1;
    pthread_mutex_lock(&log_lock);
    /* Keep the tail: the last lines name the actual failure. */
    if (log_len + n >= sizeof(log_buf)) {
        size_t drop = log_len + n - sizeof(log_buf) + 1;
        if (drop > log_len)
            drop = log_len;
        memmove(log_buf, log_buf + drop, log_len - drop);
        log_len -= drop;
    }
    memcpy(log_buf + log_len, line, n);
    log_len += n;
    log_buf[log_len] = 0;
    pthread_mutex_unlock(&log_lock);
    return n;
}

void ff_libbpf_capture_logs(void) { libbpf_set_print(capture_print); }

size_t ff_libbpf_last_log(char *buf, size_t size)
{
    if (size == 0)
        return 0;
    pthread_mutex_lock(&log_lock);
    size_t n = log_len < size - 1 ? log_len : size - 1;
    memcpy(buf, log_buf + (log_len - n), n);
    buf[n] = 0;
    pthread_mutex_unlock(&log_lock);
    return n;
}

void ff_libbpf_clear_log(void)
{
    pthread_mutex_lock(&log_lock);
    log_len = 0;
    log_buf[0] = 0;
    pthread_mutex_unlock(&log_lock);
}

int ff_tc_hook_create(int ifindex, int *created)
{
    LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = BPF_TC_INGRESS | BPF_TC_EGRESS);
    int err = bpf_tc_hook_create(&hook);
    *created = err == 0;
    return err == -EEXIST ? 0 : err;
}

int ff_tc_hook_destroy(int ifindex)
{
    LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = BPF_TC_INGRESS | BPF_TC_EGRESS);
    return bpf_tc_hook_destroy(&hook);
}

int ff_tc_query(int ifindex, int egress, __u32 *prog_id)
{
    LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = egress ? BPF_TC_EGRESS : BPF_TC_INGRESS);
    LIBBPF_OPTS(bpf_tc_opts, opts, .handle = FF_TC_HANDLE, .priority = FF_TC_PRIORITY);
    int err = bpf_tc_query(&hook, &opts);
    if (err == -ENOENT || err == -EINVAL) {
        *prog_id = 0;
        return 0;
    }
    if (err)
        return err;
    *prog_id = opts.prog_id;
    return 0;
}

int ff_tc_attach(int ifindex, int egress, int prog_fd)
{
    LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = egress ? BPF_TC_EGRESS : BPF_TC_INGRESS);
    LIBBPF_OPTS(bpf_tc_opts, opts, .prog_fd = prog_fd, .flags = BPF_TC_F_REPLACE,
                .handle = FF_TC_HANDLE, .priority = FF_TC_PRIORITY);
    return bpf_tc_attach(&hook, &opts);
}

int ff_tc_filter_count(int ifindex, int egress)
{
    /*
     * libbpf can only query one handle and priority, so count the hook's
     * filters with a netlink dump, as `tc filter show` does: a qdisc is
     * removed only when nothing else is attached to it.
     */
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (fd < 0)
        return -errno;
    struct {
        struct nlmsghdr nh;
        struct tcmsg tc;
    } req;
    memset(&req, 0, sizeof(req));
    req.nh.nlmsg_len = NLMSG_LENGTH(sizeof(struct tcmsg));
    req.nh.nlmsg_type = RTM_GETTFILTER;
    req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    req.nh.nlmsg_seq = 1;
    req.tc.tcm_family = AF_UNSPEC;
    req.tc.tcm_ifindex = ifindex;
    req.tc.tcm_parent = TC_H_MAKE(TC_H_CLSACT, egress ? TC_H_MIN_EGRESS : TC_H_MIN_INGRESS);
    if (send(fd, &req, req.nh.nlmsg_len, 0) < 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    int count = 0;
    char buf[16384];
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n < 0) {
            int err = -errno;
            close(fd);
            return err;
        }
        for (struct nlmsghdr *nh = (struct nlmsghdr *)buf; NLMSG_OK(nh, (size_t)n); nh = NLMSG_NEXT(nh, n)) {
            if (nh->nlmsg_type == NLMSG_DONE) {
                close(fd);
                return count;
            }
            if (nh->nlmsg_type == NLMSG_ERROR) {
                struct nlmsgerr *e = (struct nlmsgerr *)NLMSG_DATA(nh);
                close(fd);
                return e->error ? e->error : -EIO;
            }
            if (nh->nlmsg_type == RTM_NEWTFILTER)
                count++;
        }
    }
}

int ff_tc_detach(int ifindex, int egress)
{
    LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = egress ? BPF_TC_EGRESS : BPF_TC_INGRESS);
    LIBBPF_OPTS(bpf_tc_opts, opts, .handle = FF_TC_HANDLE, .priority = FF_TC_PRIORITY);
    return bpf_tc_detach(&hook, &opts);
}

/*
 * Attach types of tcx (link-based tc, Linux 6.6). The system's linux/bpf.h
 * may predate them; the numbers are kernel ABI and never change.
 */
#define FF_BPF_TCX_INGRESS 46
#define FF_BPF_TCX_EGRESS 47
#define FF_BPF_F_BEFORE (1U << 3)

int ff_tcx_link(int prog_fd, int ifindex, int egress)
{
    /*
     * First in line (BPF_F_BEFORE with no relative program): a program
     * ahead of the sensor that drops or redirects would hide packets from
     * it. The sensor's verdict is "next", so everyone after still runs.
     */
    LIBBPF_OPTS(bpf_link_create_opts, opts, .flags = FF_BPF_F_BEFORE);
    int fd = bpf_link_create(prog_fd, ifindex, egress ? FF_BPF_TCX_EGRESS : FF_BPF_TCX_INGRESS, &opts);
    return fd < 0 ? -errno : fd;
}

int ff_tcx_query(int ifindex, int egress, __u32 *prog_ids, __u32 *count)
{
    /*
     * Raw syscall with a zeroed attr larger than any kernel's: the kernel
     * writes the query's newer fields (revision, link ids) back into it, and
     * older libbpf headers do not know them.
     */
    union {
        union bpf_attr attr;
        char room[256];
    } u;
    memset(&u, 0, sizeof(u));
    u.attr.query.target_fd = ifindex;
    u.attr.query.attach_type = egress ? FF_BPF_TCX_EGRESS : FF_BPF_TCX_INGRESS;
    u.attr.query.prog_ids = (__u64)(unsigned long)prog_ids;
    u.attr.query.prog_cnt = *count;
    if (syscall(__NR_bpf, BPF_PROG_QUERY, &u.attr, sizeof(u.attr)) < 0)
        return -errno;
    *count = u.attr.query.prog_cnt;
    return 0;
}

int ff_xdp_link(int prog_fd, int ifindex, __u32 xdp_flags)
{
    LIBBPF_OPTS(bpf_link_create_opts, opts, .flags = xdp_flags);
    int fd = bpf_link_create(prog_fd, ifindex, BPF_XDP, &opts);
    return fd < 0 ? -errno : fd;
}

int ff_xdp_query(int ifindex, __u32 *prog_id, __u8 *mode)
{
    LIBBPF_OPTS(bpf_xdp_query_opts, opts);
    int err = bpf_xdp_query(ifindex, 0, &opts);
    if (err)
        return err;
    *prog_id = opts.prog_id;
    *mode = opts.attach_mode;
    return 0;
}

int ff_packet_socket(int ifindex, int prog_fd)
{
    int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
    if (fd < 0)
        return -errno;
    /* Attach before bind so no packet is queued unfiltered in between. */
    if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_BPF, &prog_fd, sizeof(prog_fd)) < 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    struct sockaddr_ll sll;
    memset(&sll, 0, sizeof(sll));
    sll.sll_family = AF_PACKET;
    sll.sll_protocol = htons(ETH_P_ALL);
    sll.sll_ifindex = ifindex;
    if (bind(fd, (struct sockaddr *)&sll, sizeof(sll)) < 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    return fd;
}

int ff_lookup_batch(int map_fd, void *in_batch, void *out_batch, void *keys, void *values,
                    __u32 *count, __u64 elem_flags)
{
    LIBBPF_OPTS(bpf_map_batch_opts, opts, .elem_flags = elem_flags);
    int err = bpf_map_lookup_batch(map_fd, in_batch, out_batch, keys, values, count, &opts);
    return err < 0 ? -errno : 0;
}

int ff_update_batch(int map_fd, const void *keys, const void *values, __u32 *count, __u64 elem_flags)
{
    LIBBPF_OPTS(bpf_map_batch_opts, opts, .elem_flags = elem_flags);
    int err = bpf_map_update_batch(map_fd, keys, values, count, &opts);
    return err < 0 ? -errno : 0;
}

int ff_delete_batch(int map_fd, const void *keys, __u32 *count)
{
    int err = bpf_map_delete_batch(map_fd, keys, count, NULL);
    return err < 0 ? -errno : 0;
}

int ff_prog_run_stats(int prog_fd, __u64 *run_time_ns, __u64 *run_cnt)
{
    struct bpf_prog_info info;
    __u32 len = sizeof(info);
    memset(&info, 0, sizeof(info));
    int err = bpf_obj_get_info_by_fd(prog_fd, &info, &len);
    if (err)
        return -errno;
    *run_time_ns = info.run_time_ns;
    *run_cnt = info.run_cnt;
    return 0;
}

int ff_prog_name(__u32 prog_id, char *name, size_t size)
{
    int fd = bpf_prog_get_fd_by_id(prog_id);
    if (fd < 0)
        return -errno;
    struct bpf_prog_info info;
    __u32 len = sizeof(info);
    memset(&info, 0, sizeof(info));
    int err = bpf_obj_get_info_by_fd(fd, &info, &len);
    close(fd);
    if (err)
        return -errno;
    snprintf(name, size, "%s", info.name);
    return 0;
}

void ff_clocks(__u64 *monotonic_ns, __u64 *realtime_ns)
{
    struct timespec m, r;
    clock_gettime(CLOCK_MONOTONIC, &m);
    clock_gettime(CLOCK_REALTIME, &r);
    *monotonic_ns = (__u64)m.tv_sec * 1000000000ull + m.tv_nsec;
    *realtime_ns = (__u64)r.tv_sec * 1000000000ull + r.tv_nsec;
}

int ff_enter_netns(int fd)
{
    return setns(fd, CLONE_NEWNET) == 0 ? 0 : -errno;
}

__u32 ff_slot_live(const struct flow_slot *slot)
{
    return __atomic_load_n(&slot->live, __ATOMIC_ACQUIRE);
}

void ff_slot_unlink(struct flow_slot *slot)
{
    __atomic_store_n(&slot->live, FF_SLOT_UNLINKED, __ATOMIC_RELEASE);
}

/* A direction's figures as they can be between two packets. */
static int plausible(const struct flow_dir_stats *d)
{
    return d->packets == 0 || (d->first_seen_ns != 0 && d->last_seen_ns >= d->first_seen_ns);
}

int ff_copy_slot(const struct flow_slot *slot, struct flow_slot *out, int tries)
{
    for (int i = 0; i < tries; i++) {
        __u32 before = __atomic_load_n(&slot->seq, __ATOMIC_ACQUIRE);
        memcpy(out, (const void *)slot, sizeof(*out));
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        __u32 after = __atomic_load_n(&slot->seq, __ATOMIC_RELAXED);
        if (!(before & 1) && before == after && plausible(&out->dir[0]) && plausible(&out->dir[1]))
            return 0;
    }
    return -EAGAIN;
}
