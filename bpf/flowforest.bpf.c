// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * FlowForest data plane: counts every packet into a bidirectional flow record
 * inside the kernel. Three entry points share one parser and one update:
 *
 *   ff_tc      tc ingress/egress (SEC "tc": tcx link or clsact filter), value
 *              guarded by its spin lock
 *   ff_xdp     XDP ingress, value guarded by its spin lock
 *   ff_socket  AF_PACKET socket filter returning 0; the kernel refuses
 *              bpf_spin_lock (and maps holding one) in socket filters, so this
 *              variant updates its own map with atomics. Counts, bytes and
 *              flag counts stay exact; min/max and inter-arrival figures are
 *              best-effort under concurrent updates of one flow.
 *
 * The record layouts and parsing conventions are in flow_types.h; the Swift
 * pcap path applies the same rules. Rules this file adds to them:
 * - Transport payload = IP payload minus the transport header (TCP data
 *   offset, UDP 8, ICMP/ICMPv6 8); non-first fragments and other protocols
 *   count their whole IP payload.
 * - The outer VLAN id comes from the skb's accelerated tag when the kernel
 *   already stripped it (tc, socket), else from the first tag in the frame;
 *   at most two tags are skipped, a third makes the frame "not IP".
 * - IPv6: up to FF_MAX_EXT_HDRS extension headers (hop-by-hop, routing,
 *   fragment, destination options, AH) are skipped; more is malformed.
 * - ICMP is parsed in IPv4 packets, ICMPv6 in IPv6 ones; the type and code
 *   need 4 bytes of transport header.
 * - Malformed: a header that cannot be read, a wrong IP version, an IPv4 IHL
 *   below 5 or total length below the header, an IP length beyond the frame,
 *   an extension header or transport header longer than what the IP length
 *   leaves for it.
 *
 * Nothing is lost silently: a packet whose flow cannot be inserted goes to
 * the ring buffer, and when that fails too it is counted as lost.
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "flow_types.h"
#include "ff_stats.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define ETH_HLEN_ 14
#define ETH_P_IP_ 0x0800
#define ETH_P_IPV6_ 0x86DD
#define ETH_P_8021Q_ 0x8100
#define ETH_P_8021AD_ 0x88A8
#define ETH_P_QINQ_OLD_ 0x9100
#define PROTO_ICMP 1
#define PROTO_TCP 6
#define PROTO_UDP 17
#define PROTO_ICMPV6 58
#define FF_MAX_EXT_HDRS 6
#define E2BIG_ 7
#define EEXIST_ 17

/*
 * Socket-filter twin of struct flow_value: same layout, but the first word
 * is a plain integer, because the verifier rejects any socket filter that
 * touches a map whose value holds a struct bpf_spin_lock.
 */
struct flow_value_atomic {
    __u32 unused_lock;
    __u32 ifindex;
    __u8 initiator;
    __u8 pad[7];
    struct flow_dir_stats dir[2];
};
_Static_assert(sizeof(struct flow_value_atomic) == sizeof(struct flow_value), "atomic value must mirror flow_value");


/*
 * Flows counted by tc and xdp. Preallocated, not LRU: a full map sends the
 * packet to `events` instead of evicting a flow without a trace.
 * Key: struct flow_key (both endpoints, lower first). Value: struct flow_value
 * (per-direction stats under the value's spin lock). Resized by the loader.
 */
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, FF_DEFAULT_MAP_ENTRIES);
    __type(key, struct flow_key);
    __type(value, struct flow_value);
} flows SEC(".maps");

/*
 * Flows counted by the socket filter, which may not touch a spin lock.
 * Key: struct flow_key. Value: struct flow_value_atomic (same layout as
 * flow_value, updated with atomic adds).
 */
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, FF_DEFAULT_MAP_ENTRIES);
    __type(key, struct flow_key);
    __type(value, struct flow_value_atomic);
} flows_atomic SEC(".maps");

/*
 * Packets whose flow could not be inserted, merged by the drainer.
 * Key: none (ring buffer). Value: struct flow_event per packet.
 */
struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 1 << 22);
} events SEC(".maps");

/*
 * Packet accounting per CPU, summed by the drainer; per-CPU so counting
 * needs no atomic on the hot path.
 * Key: __u32 0 (one slot). Value: struct ff_stats (enum ff_stat counters).
 */
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct ff_stats);
} stats SEC(".maps");

enum { KIND_SKB = 0, KIND_XDP = 1 };
enum { PARSE_OK = 0, PARSE_NOT_IP = 1, PARSE_MALFORMED = 2 };

/* A parsed packet: the ordered key plus what the value update needs. */
struct pkt {
    struct flow_key key;
    __u32 ip_len;
    __u32 payload_len;
    __u16 window;
    __u8 flags;
    __u8 icmp_type;
    __u8 icmp_code;
    __u8 dir;
};

/* Sender and receiver before ordering; u64 words so comparison is cheap. */
struct endpoints {
    __u64 src[2];
    __u64 dst[2];
    __u16 sport;
    __u16 dport;
};

static __always_inline int load(void *ctx, int kind, __u32 off, void *to, __u32 len)
{
    /*
     * Loads rather than direct packet access: trafgen's and many virtual
     * devices' skbs keep only the Ethernet header linear.
     */
    if (kind == KIND_XDP)
        return bpf_xdp_load_bytes(ctx, off, to, len);
    return bpf_skb_load_bytes(ctx, off, to, len);
}

static __always_inline __u16 icmp_counterpart(__u8 type, __u8 code, int v6)
{
    if (v6) {
        switch (type) {
        case 128: return 129;
        case 129: return 128;
        case 130: return 131;
        case 131: return 130;
        case 133: return 134;
        case 134: return 133;
        case 135: return 136;
        case 136: return 135;
        }
    } else {
        switch (type) {
        case 8: return 0;
        case 0: return 8;
        case 13: return 14;
        case 14: return 13;
        case 15: return 16;
        case 16: return 15;
        case 17: return 18;
        case 18: return 17;
        }
    }
    return code;
}

/* Lexicographic (address bytes, port) order: true when a sorts after b. */
static __always_inline int endpoint_greater(const __u64 *a, __u16 ap, const __u64 *b, __u16 bp)
{
    __u64 a0 = bpf_be64_to_cpu(a[0]), b0 = bpf_be64_to_cpu(b[0]);
    if (a0 != b0)
        return a0 > b0;
    __u64 a1 = bpf_be64_to_cpu(a[1]), b1 = bpf_be64_to_cpu(b[1]);
    if (a1 != b1)
        return a1 > b1;
    return ap > bp;
}

/*
 * Fills ports, flags and payload from the first bytes of the transport
 * header (th: 16 for TCP, 4 for UDP, 2 for ICMP) and orders the key.
 */
static __always_inline int transport(struct pkt *p, struct endpoints *ep, __u16 vlan, __u8 l4proto, __u32 l4len,
                                     int ports, int is_v6, const __u8 *th)
{
    p->key.proto = l4proto;
    p->payload_len = l4len;
    if (ports) {
        if (l4proto == PROTO_TCP) {
            if (l4len < 20)
                return PARSE_MALFORMED;
            __u32 doff = (th[12] >> 4) * 4;
            if (doff < 20 || doff > l4len)
                return PARSE_MALFORMED;
            ep->sport = ((__u16)th[0] << 8) | th[1];
            ep->dport = ((__u16)th[2] << 8) | th[3];
            p->flags = th[13];
            p->window = ((__u16)th[14] << 8) | th[15];
            p->payload_len = l4len - doff;
        } else if (l4proto == PROTO_UDP) {
            if (l4len < 8)
                return PARSE_MALFORMED;
            ep->sport = ((__u16)th[0] << 8) | th[1];
            ep->dport = ((__u16)th[2] << 8) | th[3];
            p->payload_len = l4len - 8;
        } else if ((l4proto == PROTO_ICMP && !is_v6) || (l4proto == PROTO_ICMPV6 && is_v6)) {
            if (l4len < 4)
                return PARSE_MALFORMED;
            p->icmp_type = th[0];
            p->icmp_code = th[1];
            ep->sport = th[0];
            ep->dport = icmp_counterpart(th[0], th[1], is_v6);
            p->payload_len = l4len > 8 ? l4len - 8 : 0;
        }
    }

    p->key.vlan = vlan;
    if (endpoint_greater(ep->src, ep->sport, ep->dst, ep->dport)) {
        __builtin_memcpy(p->key.addr_lo, ep->dst, 16);
        __builtin_memcpy(p->key.addr_hi, ep->src, 16);
        p->key.port_lo = ep->dport;
        p->key.port_hi = ep->sport;
        p->dir = FF_DIR_HI_TO_LO;
    } else {
        __builtin_memcpy(p->key.addr_lo, ep->src, 16);
        __builtin_memcpy(p->key.addr_hi, ep->dst, 16);
        p->key.port_lo = ep->sport;
        p->key.port_hi = ep->dport;
        p->dir = FF_DIR_LO_TO_HI;
    }
    return PARSE_OK;
}

#define FAST_LEN 60

/*
 * The common case in one load: an untagged frame (or one whose tag the
 * kernel already stripped) with IPv4 without options or IPv6 without
 * extension headers. Every helper call costs tens of nanoseconds on a
 * non-linear skb, so this saves two or three of them per packet. Anything
 * else returns PARSE_SLOW and goes through parse(), which applies the same
 * rules step by step.
 */
#define PARSE_SLOW 3
static __always_inline int parse_fast(void *ctx, int kind, __u32 frame_len, int meta_vlan_present, __u16 meta_vlan,
                                      struct pkt *p)
{
    __u8 b[FAST_LEN];
    if (frame_len < FAST_LEN || load(ctx, kind, 0, b, FAST_LEN) < 0)
        return PARSE_SLOW;
    struct endpoints ep = {};
    __u16 vlan = meta_vlan_present ? (meta_vlan & 0x0fff) : 0;
    __u16 proto = ((__u16)b[12] << 8) | b[13];

    if (proto == ETH_P_IP_ && b[14] == 0x45) {
        __u32 tot = ((__u32)b[16] << 8) | b[17];
        if (tot < 20 || ETH_HLEN_ + tot > frame_len)
            return PARSE_MALFORMED;
        p->ip_len = tot;
        __u32 saddr, daddr;
        __builtin_memcpy(&saddr, &b[26], 4);
        __builtin_memcpy(&daddr, &b[30], 4);
        ep.src[1] = ((__u64)bpf_htonl(0xffff)) | ((__u64)saddr << 32);
        ep.dst[1] = ((__u64)bpf_htonl(0xffff)) | ((__u64)daddr << 32);
        __u16 frag = ((__u16)b[20] << 8) | b[21];
        return transport(p, &ep, vlan, b[23], tot - 20, (frag & 0x1fff) == 0, 0, &b[34]);
    }
    if (proto == ETH_P_IPV6_ && (b[14] >> 4) == 6) {
        __u8 nh = b[20];
        if (nh != PROTO_TCP && nh != PROTO_UDP && nh != PROTO_ICMPV6)
            return PARSE_SLOW;
        __u32 plen = ((__u32)b[18] << 8) | b[19];
        if (ETH_HLEN_ + 40 + plen > frame_len)
            return PARSE_MALFORMED;
        p->ip_len = plen + 40;
        __builtin_memcpy(ep.src, &b[22], 16);
        __builtin_memcpy(ep.dst, &b[38], 16);
        if (nh == PROTO_TCP) {
            __u8 th[16] = {};
            if (plen >= 20 && load(ctx, kind, ETH_HLEN_ + 40, th, 16) < 0)
                return PARSE_MALFORMED;
            return transport(p, &ep, vlan, nh, plen, 1, 1, th);
        }
        return transport(p, &ep, vlan, nh, plen, 1, 1, &b[54]);
    }
    return PARSE_SLOW;
}

static __always_inline int parse(void *ctx, int kind, __u32 frame_len, int meta_vlan_present, __u16 meta_vlan, struct pkt *p)
{
    struct endpoints ep = {};
    __u8 eth[ETH_HLEN_];
    if (load(ctx, kind, 0, eth, sizeof(eth)) < 0)
        return PARSE_MALFORMED;
    __u16 proto = ((__u16)eth[12] << 8) | eth[13];
    __u32 off = ETH_HLEN_;
    __u16 vlan = meta_vlan_present ? (meta_vlan & 0x0fff) : 0;
    int have_vlan = meta_vlan_present;

#pragma unroll
    for (int i = 0; i < 2; i++) {
        if (proto != ETH_P_8021Q_ && proto != ETH_P_8021AD_ && proto != ETH_P_QINQ_OLD_)
            break;
        __u8 tag[4];
        if (load(ctx, kind, off, tag, sizeof(tag)) < 0)
            return PARSE_MALFORMED;
        if (!have_vlan) {
            vlan = (((__u16)tag[0] << 8) | tag[1]) & 0x0fff;
            have_vlan = 1;
        }
        proto = ((__u16)tag[2] << 8) | tag[3];
        off += 4;
    }

    __u8 l4proto;
    __u32 l4off, l4len;
    int ports = 1; /* false for non-first fragments */
    int is_v6 = 0;

    if (proto == ETH_P_IP_) {
        __u8 ip[20];
        if (load(ctx, kind, off, ip, sizeof(ip)) < 0)
            return PARSE_MALFORMED;
        __u32 hl = (ip[0] & 0x0f) * 4;
        __u32 tot = ((__u32)ip[2] << 8) | ip[3];
        if ((ip[0] >> 4) != 4 || hl < 20 || tot < hl || off + tot > frame_len)
            return PARSE_MALFORMED;
        p->ip_len = tot;
        l4proto = ip[9];
        __u32 saddr, daddr;
        __builtin_memcpy(&saddr, &ip[12], 4);
        __builtin_memcpy(&daddr, &ip[16], 4);
        /* ::ffff:a.b.c.d: bytes 10-11 are 0xff, 12-15 the address. */
        ep.src[1] = ((__u64)bpf_htonl(0xffff)) | ((__u64)saddr << 32);
        ep.dst[1] = ((__u64)bpf_htonl(0xffff)) | ((__u64)daddr << 32);
        __u16 frag = ((__u16)ip[6] << 8) | ip[7];
        l4off = off + hl;
        l4len = tot - hl;
        if (frag & 0x1fff)
            ports = 0;
    } else if (proto == ETH_P_IPV6_) {
        __u8 ip6[40];
        if (load(ctx, kind, off, ip6, sizeof(ip6)) < 0)
            return PARSE_MALFORMED;
        l4len = ((__u32)ip6[4] << 8) | ip6[5];
        if ((ip6[0] >> 4) != 6 || off + 40 + l4len > frame_len)
            return PARSE_MALFORMED;
        p->ip_len = l4len + 40;
        l4proto = ip6[6];
        __builtin_memcpy(ep.src, &ip6[8], 16);
        __builtin_memcpy(ep.dst, &ip6[24], 16);
        l4off = off + 40;
        is_v6 = 1;
        int done = 0;
#pragma unroll
        for (int i = 0; i < FF_MAX_EXT_HDRS; i++) {
            __u8 ext[4];
            __u32 extlen;
            if (l4proto != 0 && l4proto != 43 && l4proto != 44 && l4proto != 60 && l4proto != 51) {
                done = 1;
                break;
            }
            if (l4len < 8 || load(ctx, kind, l4off, ext, sizeof(ext)) < 0)
                return PARSE_MALFORMED;
            if (l4proto == 44) {
                extlen = 8;
                if (((((__u16)ext[2] << 8) | ext[3]) & 0xfff8) != 0)
                    ports = 0;
            } else if (l4proto == 51) {
                extlen = ((__u32)ext[1] + 2) * 4;
            } else {
                extlen = ((__u32)ext[1] + 1) * 8;
            }
            if (extlen > l4len)
                return PARSE_MALFORMED;
            l4off += extlen;
            l4len -= extlen;
            l4proto = ext[0];
            if (!ports) {
                done = 1;
                break;
            }
        }
        /* Still inside extension headers after the bound: give up on it. */
        if (!done && (l4proto == 0 || l4proto == 43 || l4proto == 44 || l4proto == 60 || l4proto == 51))
            return PARSE_MALFORMED;
    } else {
        return PARSE_NOT_IP;
    }

    __u8 th[16] = {};
    if (ports) {
        /* Load only what the transport needs: a short packet is malformed, not unreadable. */
        long err = 0;
        if (l4proto == PROTO_TCP) {
            if (l4len >= 20)
                err = load(ctx, kind, l4off, th, 16);
        } else if (l4proto == PROTO_UDP) {
            if (l4len >= 8)
                err = load(ctx, kind, l4off, th, 4);
        } else if ((l4proto == PROTO_ICMP && !is_v6) || (l4proto == PROTO_ICMPV6 && is_v6)) {
            if (l4len >= 4)
                err = load(ctx, kind, l4off, th, 2);
        }
        if (err < 0)
            return PARSE_MALFORMED;
    }
    return transport(p, &ep, vlan, l4proto, l4len, ports, is_v6, th);
}

static __always_inline void count_flags(struct flow_dir_stats *d, __u8 f)
{
    if (!f)
        return;
    if (f & FF_TCP_SYN) {
        if (f & FF_TCP_ACK)
            d->syn_ack++;
        else
            d->syn++;
    }
    if (f & FF_TCP_FIN)
        d->fin++;
    if (f & FF_TCP_RST)
        d->rst++;
    if (f & FF_TCP_PSH)
        d->psh++;
    if (f & FF_TCP_ACK)
        d->ack++;
    if (f & FF_TCP_URG)
        d->urg++;
    d->flags_or |= f;
}

/* Adds one packet to a direction; the caller holds the value's lock. */
static __always_inline void dir_add(struct flow_dir_stats *d, const struct pkt *p, __u64 now)
{
    __u32 len = p->ip_len;
    if (d->packets == 0) {
        d->first_seen_ns = now;
        d->len_min = len;
        d->len_max = len;
        d->init_window = p->window;
        d->icmp_type = p->icmp_type;
        d->icmp_code = p->icmp_code;
    } else {
        __u64 iat = now > d->last_seen_ns ? (now - d->last_seen_ns) / 1000 : 0;
        if (iat > 0xffffffffULL)
            iat = 0xffffffffULL;
        if (iat < d->iat_min_us)
            d->iat_min_us = iat;
        if (iat > d->iat_max_us)
            d->iat_max_us = iat;
        d->iat_sum_us += iat;
        d->iat_sum_sq_us += iat * iat;
        if (len < d->len_min)
            d->len_min = len;
        if (len > d->len_max)
            d->len_max = len;
    }
    d->packets++;
    d->bytes += len;
    if (now > d->last_seen_ns)
        d->last_seen_ns = now;
    d->len_sum_sq += (__u64)len * len;
    if (p->payload_len)
        d->payload_packets++;
    count_flags(d, p->flags);
}

/* The same update with atomics, for the socket filter (no spin lock there). */
static __always_inline void dir_add_atomic(struct flow_dir_stats *d, const struct pkt *p, __u64 now)
{
    __u32 len = p->ip_len;
    __u64 prev = __sync_lock_test_and_set(&d->last_seen_ns, now);
    if (prev == 0) {
        /* First packet of this direction (or a racing twin): seed the firsts. */
        __sync_val_compare_and_swap(&d->first_seen_ns, 0, now);
        d->len_min = len;
        d->len_max = len;
        d->init_window = p->window;
        d->icmp_type = p->icmp_type;
        d->icmp_code = p->icmp_code;
    } else {
        __u64 iat = now > prev ? (now - prev) / 1000 : 0;
        if (iat > 0xffffffffULL)
            iat = 0xffffffffULL;
        if (iat < d->iat_min_us)
            d->iat_min_us = iat;
        if (iat > d->iat_max_us)
            d->iat_max_us = iat;
        __sync_fetch_and_add(&d->iat_sum_us, iat);
        __sync_fetch_and_add(&d->iat_sum_sq_us, iat * iat);
        if (len < d->len_min)
            d->len_min = len;
        if (len > d->len_max)
            d->len_max = len;
    }
    __sync_fetch_and_add(&d->packets, 1);
    __sync_fetch_and_add(&d->bytes, len);
    __sync_fetch_and_add(&d->len_sum_sq, (__u64)len * len);
    if (p->payload_len)
        __sync_fetch_and_add(&d->payload_packets, 1);
    __u8 f = p->flags;
    if (f) {
        if (f & FF_TCP_SYN) {
            if (f & FF_TCP_ACK)
                __sync_fetch_and_add(&d->syn_ack, 1);
            else
                __sync_fetch_and_add(&d->syn, 1);
        }
        if (f & FF_TCP_FIN)
            __sync_fetch_and_add(&d->fin, 1);
        if (f & FF_TCP_RST)
            __sync_fetch_and_add(&d->rst, 1);
        if (f & FF_TCP_PSH)
            __sync_fetch_and_add(&d->psh, 1);
        if (f & FF_TCP_ACK)
            __sync_fetch_and_add(&d->ack, 1);
        if (f & FF_TCP_URG)
            __sync_fetch_and_add(&d->urg, 1);
        /*
         * flags_or is a byte; atomics work on 32-bit words, so OR it into
         * the aligned word it shares with init_window (bytes 104..107 of the
         * direction: window, flags_or, icmp_type). ORing zero bits elsewhere
         * leaves those fields untouched.
         */
        __sync_fetch_and_or((__u32 *)&d->init_window, (__u32)f << 16);
    }
}

static __always_inline void lost_insert(struct ff_stats *st, const struct pkt *p, __u64 now, __u32 ifindex, long err)
{
    __u8 reason = err == -E2BIG_ ? FF_FAIL_MAP_FULL : FF_FAIL_OTHER;
    st->count[reason == FF_FAIL_MAP_FULL ? FF_STAT_MAP_FULL : FF_STAT_INSERT_OTHER]++;
    struct flow_event ev = {};
    ev.key = p->key;
    ev.ts_ns = now;
    ev.ifindex = ifindex;
    ev.ip_len = p->ip_len;
    ev.payload_len = p->payload_len;
    ev.tcp_window = p->window;
    ev.dir = p->dir;
    ev.tcp_flags = p->flags;
    ev.icmp_type = p->icmp_type;
    ev.icmp_code = p->icmp_code;
    ev.reason = reason;
    if (bpf_ringbuf_output(&events, &ev, sizeof(ev), 0) == 0)
        st->count[FF_STAT_RINGBUF_SENT]++;
    else
        st->count[FF_STAT_RINGBUF_FAILED]++;
}

static __always_inline __u8 initiator_of(const struct pkt *p)
{
    /* A SYN-ACK seen first means the SYN was missed: its receiver opened the flow. */
    int reply_first = (p->flags & (FF_TCP_SYN | FF_TCP_ACK)) == (FF_TCP_SYN | FF_TCP_ACK);
    return reply_first ? !p->dir : p->dir;
}

static __always_inline void new_value(struct flow_value *v, const struct pkt *p, __u64 now, __u32 ifindex)
{
    __builtin_memset(v, 0, sizeof(*v));
    v->ifindex = ifindex;
    v->initiator = initiator_of(p);
    v->dir[0].iat_min_us = FF_IAT_UNSET;
    v->dir[1].iat_min_us = FF_IAT_UNSET;
    if (p->dir == FF_DIR_LO_TO_HI)
        dir_add(&v->dir[0], p, now);
    else
        dir_add(&v->dir[1], p, now);
}

static __always_inline struct ff_stats *stats_slot(void)
{
    __u32 zero = 0;
    return bpf_map_lookup_elem(&stats, &zero);
}

/* Parse and count one packet into the spin-locked map (tc and xdp). */
static __always_inline void account_locked(void *ctx, int kind, __u32 frame_len, int vlan_present, __u16 vlan, __u32 ifindex)
{
    struct ff_stats *st = stats_slot();
    if (!st)
        return;
    st->count[FF_STAT_PACKETS_SEEN]++;

    struct pkt p = {};
    int rc = parse_fast(ctx, kind, frame_len, vlan_present, vlan, &p);
    if (rc == PARSE_SLOW) {
        __builtin_memset(&p, 0, sizeof(p));
        rc = parse(ctx, kind, frame_len, vlan_present, vlan, &p);
    }
    if (rc != PARSE_OK) {
        st->count[rc == PARSE_NOT_IP ? FF_STAT_NOT_IP : FF_STAT_MALFORMED]++;
        return;
    }
    __u64 now = bpf_ktime_get_ns();
    struct flow_value *v = bpf_map_lookup_elem(&flows, &p.key);
    if (!v) {
        struct flow_value nv;
        new_value(&nv, &p, now, ifindex);
        long err = bpf_map_update_elem(&flows, &p.key, &nv, BPF_NOEXIST);
        if (err == 0) {
            st->count[FF_STAT_PACKETS_ACCOUNTED]++;
            return;
        }
        /* Another CPU inserted the same flow first: add to its entry. */
        if (err == -EEXIST_)
            v = bpf_map_lookup_elem(&flows, &p.key);
        if (!v) {
            lost_insert(st, &p, now, ifindex, err);
            return;
        }
    }
    bpf_spin_lock(&v->lock);
    if (p.dir == FF_DIR_LO_TO_HI)
        dir_add(&v->dir[0], &p, now);
    else
        dir_add(&v->dir[1], &p, now);
    bpf_spin_unlock(&v->lock);
    st->count[FF_STAT_PACKETS_ACCOUNTED]++;
}

SEC("tc")
int ff_tc(struct __sk_buff *skb)
{
    account_locked(skb, KIND_SKB, skb->len, skb->vlan_present, skb->vlan_tci, skb->ifindex);
    return TC_ACT_UNSPEC;
}

SEC("xdp")
int ff_xdp(struct xdp_md *ctx)
{
    account_locked(ctx, KIND_XDP, bpf_xdp_get_buff_len(ctx), 0, 0, ctx->ingress_ifindex);
    return XDP_PASS;
}

SEC("socket")
int ff_socket(struct __sk_buff *skb)
{
    struct ff_stats *st = stats_slot();
    if (!st)
        return 0;
    st->count[FF_STAT_PACKETS_SEEN]++;

    struct pkt p = {};
    int rc = parse_fast(skb, KIND_SKB, skb->len, skb->vlan_present, skb->vlan_tci, &p);
    if (rc == PARSE_SLOW) {
        __builtin_memset(&p, 0, sizeof(p));
        rc = parse(skb, KIND_SKB, skb->len, skb->vlan_present, skb->vlan_tci, &p);
    }
    if (rc != PARSE_OK) {
        st->count[rc == PARSE_NOT_IP ? FF_STAT_NOT_IP : FF_STAT_MALFORMED]++;
        return 0;
    }
    __u64 now = bpf_ktime_get_ns();
    __u32 ifindex = skb->ifindex;
    struct flow_value_atomic *v = bpf_map_lookup_elem(&flows_atomic, &p.key);
    if (!v) {
        struct flow_value nv;
        new_value(&nv, &p, now, ifindex);
        long err = bpf_map_update_elem(&flows_atomic, &p.key, &nv, BPF_NOEXIST);
        if (err == 0) {
            st->count[FF_STAT_PACKETS_ACCOUNTED]++;
            return 0;
        }
        if (err == -EEXIST_)
            v = bpf_map_lookup_elem(&flows_atomic, &p.key);
        if (!v) {
            lost_insert(st, &p, now, ifindex, err);
            return 0;
        }
    }
    if (p.dir == FF_DIR_LO_TO_HI)
        dir_add_atomic(&v->dir[0], &p, now);
    else
        dir_add_atomic(&v->dir[1], &p, now);
    st->count[FF_STAT_PACKETS_ACCOUNTED]++;
    /* Nothing is queued to the socket: user space reads only the map. */
    return 0;
}
