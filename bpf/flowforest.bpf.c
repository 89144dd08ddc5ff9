// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * FlowForest data plane: counts every packet into a bidirectional flow record
 * inside the kernel. Three entry points share one parser and one
 * parse-and-insert path (account), which differs only in how a direction's
 * figures are added:
 *
 *   ff_tc      tc ingress/egress (SEC "tc": tcx link or clsact filter), a
 *              flow's figures changed under its slot's writer lock (seq_lock)
 *   ff_xdp     XDP ingress, likewise under the slot's writer lock
 *   ff_socket  AF_PACKET socket filter returning 0, which updates with
 *              atomics. Counts, bytes and flag counts stay exact; min/max and
 *              inter-arrival figures are best-effort under concurrent updates
 *              of one flow.
 *
 * A flow is a key in the flow table's index pointing at a slot of the
 * mmapped `flow_slots` array, which the drainer reads in place; slots come
 * from a free stack the drainer refills (see struct flow_slot). The index
 * is one of two hash maps, `flows_small` while the table holds few flows
 * and `flows` (--map-size) once it holds more; the drainer picks which and
 * moves the keys (struct flow_limits).
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
 * Flood-proofing: a new flow is inserted while the map holds fewer than its
 * admission limit (7/8 of it, struct flow_limits); past it only TCP
 * connections that got past the handshake are, into the headroom left.
 * Nothing already in the map is ever evicted. Every other new flow's packet
 * is folded into an overflow aggregate of its victim (or, for replies, of
 * the host replying) with a sketch of distinct peers, so a forged flood
 * costs one entry, not one per forged source.
 *
 * Nothing is lost silently: a packet whose aggregate cannot be inserted
 * either goes to the ring buffer, and when that fails too it is counted as
 * lost.
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "flow_types.h"

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
#define PROTO_SCTP 132
#define FF_MAX_EXT_HDRS 6
#define EEXIST_ 17
#define E2BIG_ 7
#define LOOPBACK_IFINDEX_ 1  /* the kernel's LOOPBACK_IFINDEX, the same in every namespace */
#define PACKET_OUTGOING_ 4   /* linux/if_packet.h */

/*
 * The flow table's index: a flow's key to its slot in `flow_slots`.
 * Preallocated, not LRU: a full table sends the packet to an overflow
 * aggregate or `events` instead of evicting a flow without a trace. Sized
 * by the loader (--map-size), as are the three slot maps below.
 * Key: struct flow_key (both endpoints, lower first).
 * Value: __u32, the flow's slot.
 */
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, FF_DEFAULT_MAP_ENTRIES);
    __type(key, struct flow_key);
    __type(value, __u32);
} flows SEC(".maps");

/*
 * The same index for a table holding few flows: the drainer makes it the
 * one in use while the flows fit in it comfortably, since a lookup's
 * bucket then lies in a 256 KiB array instead of one 16 bytes per entry of
 * --map-size (FF_SMALL_INDEX_ENTRIES). A new flow that finds it full is
 * treated as one past the admission limit and counted (ff_inserts.spills),
 * and the drainer moves to `flows`.
 * Key: struct flow_key. Value: __u32, the flow's slot.
 */
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, FF_SMALL_INDEX_ENTRIES);
    __type(key, struct flow_key);
    __type(value, __u32);
} flows_small SEC(".maps");

/*
 * The flows' figures, one slot each, mmapped by the drainer: it reads every
 * flow in place once per poll, where a batch lookup of a hash map copied
 * each entry out and walked every bucket of the map, empty or not.
 * Key: __u32 slot. Value: struct flow_slot.
 */
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(map_flags, BPF_F_MMAPABLE);
    __uint(max_entries, FF_DEFAULT_MAP_ENTRIES);
    __type(key, __u32);
    __type(value, struct flow_slot);
} flow_slots SEC(".maps");

/*
 * Slots the drainer freed, taken again before fresh ones (a stack, so the
 * slots in use stay packed at the start of the array and the drainer's
 * walk stays short). Slots never used are handed out by counting
 * (ff_inserts.slots_used), so nothing has to fill this at load.
 * Key: none. Value: __u32 slot.
 */
struct {
    __uint(type, BPF_MAP_TYPE_STACK);
    __uint(max_entries, FF_DEFAULT_MAP_ENTRIES);
    __type(value, __u32);
} free_slots SEC(".maps");

/*
 * Slot hints for tc and XDP (struct flow_hint_set): a packet of a flow
 * found before goes from its key's hash straight to the slot, checked
 * there, instead of through the index. Shared by every CPU; a lost or
 * torn-between-ways update only costs the next packet an index lookup.
 * Key: __u32 set, from the key's hash. Value: struct flow_hint_set.
 */
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, FF_HINT_SETS);
    __type(key, __u32);
    __type(value, struct flow_hint_set);
} hints SEC(".maps");

/*
 * How the drainer waits for every program run in flight: a successful
 * update of a map-in-map returns only after an RCU grace period
 * (synchronize_rcu in the bpf() syscall), and every run of a tc, XDP or
 * socket program is inside an RCU read-side section. Nothing here reads
 * either map; the drainer writes `grace_inner` into `grace` before it
 * frees slots whose keys it removed.
 * Key: __u32 0. Value: the fd of `grace_inner` (an inner map).
 */
struct grace_inner_map {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u32);
} grace_inner SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
    __uint(max_entries, 1);
    __type(key, __u32);
    __array(values, struct grace_inner_map);
} grace SEC(".maps");

/*
 * Packets whose flow could not be inserted, merged by the drainer.
 * Key: none (ring buffer). Value: one struct flow_event per packet.
 */
struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 1 << 22);
} events SEC(".maps");

/*
 * Packets not admitted as flows (the flow map past its admission limit, or
 * an insert failed), folded per endpoint, port, protocol and class, with
 * atomic adds so every entry point shares it. Preallocated: a flood costs
 * no allocation. A packet whose aggregate cannot be inserted goes to
 * `events` like a failed flow insert.
 * Key: struct overflow_key. Value: struct overflow_value.
 */
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, FF_OVERFLOW_ENTRIES);
    __type(key, struct overflow_key);
    __type(value, struct overflow_value);
} overflow SEC(".maps");

/*
 * The interfaces this sensor watches, written by the loader before it
 * attaches: a packet leaving one of them that entered through another was
 * already counted.
 * Key: __u32 ifindex. Value: __u8 1.
 */
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, FF_MAX_WATCHED);
    __type(key, __u32);
    __type(value, __u8);
} watched SEC(".maps");

/*
 * How full the flow map may get with unanswered flows, and what the drainer
 * removed, and which index is in use (struct flow_limits); user space only.
 * Key: __u32 0 (one slot). Value: struct flow_limits.
 */
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct flow_limits);
} limits SEC(".maps");

/*
 * Entries this program inserted (struct ff_inserts), with atomic adds;
 * written by the program only, so no write of user space loses one.
 * Key: __u32 0 (one slot). Value: struct ff_inserts.
 */
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct ff_inserts);
} inserts SEC(".maps");

/* The value a new aggregate starts from: inserted, then added to like any other. */
const volatile struct overflow_value overflow_zero = {};

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

/* Which context the loads read: an skb (tc, socket) or an XDP buffer. */
enum { KIND_SKB = 0, KIND_XDP = 1 };
/* How a direction's figures are added: under the slot's writer lock (tc,
 * xdp) or with atomics (socket filter). A constant at every call site, so
 * each program holds only its own variant. */
enum { UPDATE_LOCKED = 0, UPDATE_ATOMIC = 1 };
enum { PARSE_OK = 0, PARSE_NOT_IP = 1, PARSE_MALFORMED = 2, PARSE_SLOW = 3 };

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
    __u8 icmp;      /* an ICMP header of the IP version's own ICMP was read: icmp_type means something */
};

/* Sender and receiver before ordering; u64 words so comparison is cheap. */
struct endpoints {
    __u64 src[2];
    __u64 dst[2];
    __u16 sport;
    __u16 dport;
};

/* What the IP layer leaves to the transport layer. */
struct l4 {
    __u32 off;      /* of the transport header, from the frame start */
    __u32 len;      /* IP length left for the transport header and payload */
    __u8 proto;
    __u8 ports;     /* 0 for non-first fragments: no transport header */
    __u8 is_v6;
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

/* The bidirectional key: lower endpoint first; dir says who sent. */
static __always_inline void order_key(struct pkt *p, const struct endpoints *ep, __u16 vlan)
{
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
}

/*
 * L4: ports, flags and payload from the first bytes of the transport
 * header (th: 16 for TCP, 4 for UDP and SCTP, 2 for ICMP), then the ordered key.
 */
static __always_inline int transport(struct pkt *p, struct endpoints *ep, __u16 vlan, const struct l4 *l4,
                                     const __u8 *th)
{
    p->key.proto = l4->proto;
    p->payload_len = l4->len;
    if (l4->ports) {
        if (l4->proto == PROTO_TCP) {
            if (l4->len < 20)
                return PARSE_MALFORMED;
            __u32 doff = (th[12] >> 4) * 4;
            if (doff < 20 || doff > l4->len)
                return PARSE_MALFORMED;
            ep->sport = ((__u16)th[0] << 8) | th[1];
            ep->dport = ((__u16)th[2] << 8) | th[3];
            p->flags = th[13];
            p->window = ((__u16)th[14] << 8) | th[15];
            p->payload_len = l4->len - doff;
        } else if (l4->proto == PROTO_UDP || l4->proto == PROTO_SCTP) {
            /* SCTP's ports lead its 12-byte common header as UDP's lead
             * its 8: an SCTP scan is then one flow per port, like any
             * other port scan. */
            __u32 hdr = l4->proto == PROTO_UDP ? 8 : 12;
            if (l4->len < hdr)
                return PARSE_MALFORMED;
            ep->sport = ((__u16)th[0] << 8) | th[1];
            ep->dport = ((__u16)th[2] << 8) | th[3];
            p->payload_len = l4->len - hdr;
        } else if ((l4->proto == PROTO_ICMP && !l4->is_v6) || (l4->proto == PROTO_ICMPV6 && l4->is_v6)) {
            if (l4->len < 4)
                return PARSE_MALFORMED;
            p->icmp_type = th[0];
            p->icmp_code = th[1];
            p->icmp = 1;
            ep->sport = th[0];
            ep->dport = icmp_counterpart(th[0], th[1], l4->is_v6);
            p->payload_len = l4->len > 8 ? l4->len - 8 : 0;
        }
    }
    order_key(p, ep, vlan);
    return PARSE_OK;
}

#define FAST_LEN 60

/*
 * The common case in one load: an untagged frame (or one whose tag the
 * kernel already stripped) with IPv4 without options or IPv6 without
 * extension headers. Every helper call costs tens of nanoseconds on a
 * non-linear skb, so this saves two or three of them per packet. Anything
 * else returns PARSE_SLOW and goes through parse_slow(), which applies the
 * same rules layer by layer.
 */
static __always_inline int parse_fast(void *ctx, int kind, __u32 frame_len, int meta_vlan_present, __u16 meta_vlan,
                                      struct pkt *p)
{
    __u8 b[FAST_LEN];
    if (frame_len < FAST_LEN || load(ctx, kind, 0, b, FAST_LEN) < 0)
        return PARSE_SLOW;
    struct endpoints ep = {};
    struct l4 l4 = { .ports = 1 };
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
        l4.proto = b[23];
        l4.len = tot - 20;
        l4.ports = (frag & 0x1fff) == 0;
        return transport(p, &ep, vlan, &l4, &b[34]);
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
        l4.proto = nh;
        l4.len = plen;
        l4.is_v6 = 1;
        if (nh == PROTO_TCP) {
            __u8 th[16] = {};
            if (plen >= 20 && load(ctx, kind, ETH_HLEN_ + 40, th, 16) < 0)
                return PARSE_MALFORMED;
            return transport(p, &ep, vlan, &l4, th);
        }
        return transport(p, &ep, vlan, &l4, &b[54]);
    }
    return PARSE_SLOW;
}

/*
 * L2: Ethernet and up to two VLAN tags. Leaves the EtherType after them in
 * *proto, their end in *off and the outer VLAN id in *vlan.
 */
static __always_inline int parse_l2(void *ctx, int kind, int meta_vlan_present, __u16 meta_vlan, __u16 *proto,
                                    __u32 *off, __u16 *vlan)
{
    __u8 eth[ETH_HLEN_];
    if (load(ctx, kind, 0, eth, sizeof(eth)) < 0)
        return PARSE_MALFORMED;
    *proto = ((__u16)eth[12] << 8) | eth[13];
    *off = ETH_HLEN_;
    *vlan = meta_vlan_present ? (meta_vlan & 0x0fff) : 0;
    /*
     * Two tags in all, the one the kernel moved into the metadata included:
     * a frame's third tag makes it not IP whichever hook sees it (XDP sees
     * every tag in the frame, tc and socket filters one fewer).
     */
    int tags = meta_vlan_present ? 1 : 0;

#pragma unroll
    for (int i = 0; i < 2; i++) {
        if (tags >= 2 || (*proto != ETH_P_8021Q_ && *proto != ETH_P_8021AD_ && *proto != ETH_P_QINQ_OLD_))
            break;
        __u8 tag[4];
        if (load(ctx, kind, *off, tag, sizeof(tag)) < 0)
            return PARSE_MALFORMED;
        if (tags == 0)
            *vlan = (((__u16)tag[0] << 8) | tag[1]) & 0x0fff;
        tags++;
        *proto = ((__u16)tag[2] << 8) | tag[3];
        *off += 4;
    }
    return PARSE_OK;
}

/* L3, IPv4 at off: addresses (IPv4-mapped), IP length and the L4 bounds. */
static __always_inline int parse_ipv4(void *ctx, int kind, __u32 off, __u32 frame_len, struct pkt *p,
                                      struct endpoints *ep, struct l4 *l4)
{
    __u8 ip[20];
    if (load(ctx, kind, off, ip, sizeof(ip)) < 0)
        return PARSE_MALFORMED;
    __u32 hl = (ip[0] & 0x0f) * 4;
    __u32 tot = ((__u32)ip[2] << 8) | ip[3];
    if ((ip[0] >> 4) != 4 || hl < 20 || tot < hl || off + tot > frame_len)
        return PARSE_MALFORMED;
    p->ip_len = tot;
    __u32 saddr, daddr;
    __builtin_memcpy(&saddr, &ip[12], 4);
    __builtin_memcpy(&daddr, &ip[16], 4);
    /* ::ffff:a.b.c.d: bytes 10-11 are 0xff, 12-15 the address. */
    ep->src[1] = ((__u64)bpf_htonl(0xffff)) | ((__u64)saddr << 32);
    ep->dst[1] = ((__u64)bpf_htonl(0xffff)) | ((__u64)daddr << 32);
    __u16 frag = ((__u16)ip[6] << 8) | ip[7];
    l4->proto = ip[9];
    l4->off = off + hl;
    l4->len = tot - hl;
    l4->ports = (frag & 0x1fff) == 0;
    return PARSE_OK;
}

static __always_inline int is_ipv6_ext(__u8 nh)
{
    return nh == 0 || nh == 43 || nh == 44 || nh == 60 || nh == 51;
}

/*
 * L3, IPv6 at off: addresses, IP length, then up to FF_MAX_EXT_HDRS
 * extension headers skipped to reach the L4 bounds.
 */
static __always_inline int parse_ipv6(void *ctx, int kind, __u32 off, __u32 frame_len, struct pkt *p,
                                      struct endpoints *ep, struct l4 *l4)
{
    __u8 ip6[40];
    if (load(ctx, kind, off, ip6, sizeof(ip6)) < 0)
        return PARSE_MALFORMED;
    l4->len = ((__u32)ip6[4] << 8) | ip6[5];
    if ((ip6[0] >> 4) != 6 || off + 40 + l4->len > frame_len)
        return PARSE_MALFORMED;
    p->ip_len = l4->len + 40;
    l4->proto = ip6[6];
    __builtin_memcpy(ep->src, &ip6[8], 16);
    __builtin_memcpy(ep->dst, &ip6[24], 16);
    l4->off = off + 40;
    l4->is_v6 = 1;
    l4->ports = 1;
#pragma unroll
    for (int i = 0; i < FF_MAX_EXT_HDRS; i++) {
        if (!is_ipv6_ext(l4->proto))
            return PARSE_OK;
        __u8 ext[4];
        __u32 extlen;
        if (l4->len < 8 || load(ctx, kind, l4->off, ext, sizeof(ext)) < 0)
            return PARSE_MALFORMED;
        if (l4->proto == 44) {
            extlen = 8;
            if (((((__u16)ext[2] << 8) | ext[3]) & 0xfff8) != 0)
                l4->ports = 0;
        } else if (l4->proto == 51) {
            extlen = ((__u32)ext[1] + 2) * 4;
        } else {
            extlen = ((__u32)ext[1] + 1) * 8;
        }
        if (extlen > l4->len)
            return PARSE_MALFORMED;
        l4->off += extlen;
        l4->len -= extlen;
        l4->proto = ext[0];
        if (!l4->ports)
            return PARSE_OK;
    }
    /* Still inside extension headers after the bound: give up on it. */
    return is_ipv6_ext(l4->proto) ? PARSE_MALFORMED : PARSE_OK;
}

/* L4 bytes: loads only what the transport needs, so a short packet is malformed, not unreadable. */
static __always_inline int load_transport(void *ctx, int kind, const struct l4 *l4, __u8 *th)
{
    long err = 0;
    if (!l4->ports)
        return PARSE_OK;
    if (l4->proto == PROTO_TCP) {
        if (l4->len >= 20)
            err = load(ctx, kind, l4->off, th, 16);
    } else if (l4->proto == PROTO_UDP || l4->proto == PROTO_SCTP) {
        if (l4->len >= (l4->proto == PROTO_UDP ? 8u : 12u))
            err = load(ctx, kind, l4->off, th, 4);
    } else if ((l4->proto == PROTO_ICMP && !l4->is_v6) || (l4->proto == PROTO_ICMPV6 && l4->is_v6)) {
        if (l4->len >= 4)
            err = load(ctx, kind, l4->off, th, 2);
    }
    return err < 0 ? PARSE_MALFORMED : PARSE_OK;
}

/* Any frame, layer by layer: what parse_fast() leaves. */
static __always_inline int parse_slow(void *ctx, int kind, __u32 frame_len, int meta_vlan_present, __u16 meta_vlan,
                                      struct pkt *p)
{
    struct endpoints ep = {};
    struct l4 l4 = {};
    __u16 proto, vlan;
    __u32 off;
    int rc = parse_l2(ctx, kind, meta_vlan_present, meta_vlan, &proto, &off, &vlan);
    if (rc != PARSE_OK)
        return rc;
    if (proto == ETH_P_IP_)
        rc = parse_ipv4(ctx, kind, off, frame_len, p, &ep, &l4);
    else if (proto == ETH_P_IPV6_)
        rc = parse_ipv6(ctx, kind, off, frame_len, p, &ep, &l4);
    else
        return PARSE_NOT_IP;
    if (rc != PARSE_OK)
        return rc;
    __u8 th[16] = {};
    rc = load_transport(ctx, kind, &l4, th);
    if (rc != PARSE_OK)
        return rc;
    return transport(p, &ep, vlan, &l4, th);
}

static __always_inline int parse(void *ctx, int kind, __u32 frame_len, int meta_vlan_present, __u16 meta_vlan,
                                 struct pkt *p)
{
    int rc = parse_fast(ctx, kind, frame_len, meta_vlan_present, meta_vlan, p);
    if (rc != PARSE_SLOW)
        return rc;
    __builtin_memset(p, 0, sizeof(*p));
    return parse_slow(ctx, kind, frame_len, meta_vlan_present, meta_vlan, p);
}

/* Counter additions: plain under the value's lock, atomic in the socket filter. */
static __always_inline void add64(__u64 *field, __u64 n, int update)
{
    if (update == UPDATE_ATOMIC)
        __sync_fetch_and_add(field, n);
    else
        *field += n;
}

static __always_inline void add32(__u32 *field, __u32 n, int update)
{
    if (update == UPDATE_ATOMIC)
        __sync_fetch_and_add(field, n);
    else
        *field += n;
}

static __always_inline void count_flags(struct flow_dir_stats *d, __u8 f, int update)
{
    if (!f)
        return;
    if (f & FF_TCP_SYN) {
        if (f & FF_TCP_ACK)
            add32(&d->syn_ack, 1, update);
        else
            add32(&d->syn, 1, update);
    }
    if (f & FF_TCP_FIN)
        add32(&d->fin, 1, update);
    if (f & FF_TCP_RST)
        add32(&d->rst, 1, update);
    if (f & FF_TCP_PSH)
        add32(&d->psh, 1, update);
    if (f & FF_TCP_ACK)
        add32(&d->ack, 1, update);
    if (f & FF_TCP_URG)
        add32(&d->urg, 1, update);
    if (update == UPDATE_ATOMIC)
        /*
         * flags_or is a byte; atomics work on 32-bit words, so OR it into
         * the aligned word it shares with init_window (flow_types.h asserts
         * the offsets). ORing zero bits elsewhere leaves those fields untouched.
         */
        __sync_fetch_and_or((__u32 *)&d->init_window, (__u32)f << 16);
    else
        d->flags_or |= f;
}

/*
 * Raises last_seen to `now` by compare-and-swap (the socket filter's
 * runs on several CPUs at once): an exchange would let a run with an older
 * clock reading go second and leave last_seen below first_seen. Returns
 * the value it replaced (0: this is the direction's first packet), or one
 * at or after `now` when another run got further. Past the bound (every
 * try lost to another CPU raising it) last_seen is left to those runs.
 */
#define FF_MAX_TRIES 8

static __always_inline __u64 raise_last_seen(struct flow_dir_stats *d, __u64 now)
{
    __u64 prev = *(volatile __u64 *)&d->last_seen_ns;
    for (int i = 0; i < FF_MAX_TRIES && prev < now; i++) {
        __u64 seen = __sync_val_compare_and_swap(&d->last_seen_ns, prev, now);
        if (seen == prev)
            break;
        prev = seen;
    }
    return prev;
}

/*
 * Adds one packet to a direction. Locked: the caller holds the value's
 * lock. Atomic: counts, bytes and flag counts stay exact; last_seen only
 * rises, and each packet's inter-arrival time is measured from the latest
 * before it, while min/max are plain stores that a concurrent update of the
 * same flow can overwrite.
 */
static __always_inline void dir_add(struct flow_dir_stats *d, const struct pkt *p, __u64 now, int update)
{
    __u32 len = p->ip_len;
    __u64 prev = d->last_seen_ns;
    if (update == UPDATE_ATOMIC)
        prev = raise_last_seen(d, now);
    else if (now > prev)
        d->last_seen_ns = now;
    if (prev == 0) {
        /* The direction's first packet (atomic: or a racing twin). */
        if (update == UPDATE_ATOMIC)
            __sync_val_compare_and_swap(&d->first_seen_ns, 0, now);
        else
            d->first_seen_ns = now;
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
        add64(&d->iat_sum_us, iat, update);
        add64(&d->iat_sum_sq_us, iat * iat, update);
        if (len < d->len_min)
            d->len_min = len;
        if (len > d->len_max)
            d->len_max = len;
    }
    add64(&d->packets, 1, update);
    add64(&d->bytes, len, update);
    add64(&d->len_sum_sq, (__u64)len * len, update);
    if (p->payload_len)
        add32(&d->payload_packets, 1, update);
    count_flags(d, p->flags, update);
}

/* A packet its flow's slot cannot take: to the ring buffer, or counted as lost. */
static __always_inline void lost_insert(struct ff_stats *st, const struct pkt *p, __u64 now, __u32 ifindex)
{
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
    if (bpf_ringbuf_output(&events, &ev, sizeof(ev), 0) == 0)
        st->count[FF_STAT_RINGBUF_SENT]++;
    else
        st->count[FF_STAT_RINGBUF_FAILED]++;
}

/* Which aggregate a packet belongs to; replies are keyed by their sender. */
static __always_inline __u8 overflow_class(const struct pkt *p)
{
    __u8 f = p->flags;
    /*
     * No ICMP header read (a later fragment, or the other IP version's
     * ICMP): its type 0 is no echo reply.
     */
    if (!p->icmp && (p->key.proto == PROTO_ICMP || p->key.proto == PROTO_ICMPV6))
        return FF_CLASS_ICMP;
    switch (p->key.proto) {
    case PROTO_TCP:
        if (f & FF_TCP_SYN)
            return (f & FF_TCP_ACK) ? FF_CLASS_TCP_SYN_ACK : FF_CLASS_TCP_SYN;
        if (f & FF_TCP_RST)
            return (f & FF_TCP_ACK) ? FF_CLASS_TCP_RST_ACK : FF_CLASS_TCP_RST;
        return (f & FF_TCP_FIN) ? FF_CLASS_TCP_FIN : FF_CLASS_TCP_OTHER;
    case PROTO_UDP:
        return FF_CLASS_UDP;
    case PROTO_ICMP:
        /* Echo reply, unreachable, source quench, redirect, time exceeded, parameter problem. */
        return (p->icmp_type == 0 || (p->icmp_type >= 3 && p->icmp_type <= 5) || p->icmp_type == 11 ||
                p->icmp_type == 12) ? FF_CLASS_ICMP_REPLY : FF_CLASS_ICMP;
    case PROTO_ICMPV6:
        /* Errors 1-4 and echo reply 129. */
        return ((p->icmp_type >= 1 && p->icmp_type <= 4) || p->icmp_type == 129) ? FF_CLASS_ICMP_REPLY
                                                                                  : FF_CLASS_ICMP;
    }
    return FF_CLASS_OTHER;
}

/* A 64-bit finalizer (MurmurHash3's): spreads an address over the sketch. */
static __always_inline __u64 mix64(__u64 x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

/* The aggregate key of a packet's endpoint on `side`; its other endpoint into *peer. */
static __always_inline void overflow_key_of(const struct pkt *p, __u8 cls, __u8 side, struct overflow_key *k, __u64 *peer)
{
    /* dir says who sent: lo for FF_DIR_LO_TO_HI. */
    int keyed_lo = (side == FF_SIDE_SOURCE) == (p->dir == FF_DIR_LO_TO_HI);
    if (keyed_lo) {
        __builtin_memcpy(k->addr, p->key.addr_lo, 16);
        __builtin_memcpy(peer, p->key.addr_hi, 16);
        k->port = p->key.port_lo;
    } else {
        __builtin_memcpy(k->addr, p->key.addr_hi, 16);
        __builtin_memcpy(peer, p->key.addr_lo, 16);
        k->port = p->key.port_hi;
    }
    k->vlan = p->key.vlan;
    k->proto = p->key.proto;
    k->cls = cls;
    k->side = side;
}

/*
 * A packet the flow map does not take: added to its aggregate. Counts are
 * atomic (every CPU and the socket filter share the map); the peer goes
 * into the sketch as one bit, also atomic. A reply folds under its sender
 * (a victim answering forged sources is one aggregate) while fewer than
 * FF_SENDER_AGGREGATES such aggregates exist, and under its destination
 * after that (replies from many senders: a reflection or backscatter flood
 * on that destination). Past FF_PORT_AGGREGATES aggregates in all, a
 * destination without an aggregate for the packet's port takes it in its
 * any-port aggregate. When even the aggregate cannot be inserted, the
 * packet takes the ring buffer like a failed flow insert.
 */
static __always_inline void aggregate(struct ff_stats *st, const struct pkt *p, __u64 now, __u32 ifindex,
                                      const struct flow_limits *lim, struct ff_inserts *ins)
{
    __u8 cls = overflow_class(p);
    int by_sender = cls == FF_CLASS_TCP_SYN_ACK || cls == FF_CLASS_TCP_RST_ACK || cls == FF_CLASS_ICMP_REPLY;
    struct overflow_key k = {};
    __u64 peer[2];
    overflow_key_of(p, cls, by_sender ? FF_SIDE_SOURCE : FF_SIDE_DESTINATION, &k, peer);

    struct overflow_value *v = bpf_map_lookup_elem(&overflow, &k);
    if (!v && by_sender && ins->senders - lim->senders_removed >= FF_SENDER_AGGREGATES) {
        by_sender = 0;
        overflow_key_of(p, cls, FF_SIDE_DESTINATION, &k, peer);
        v = bpf_map_lookup_elem(&overflow, &k);
    }
    if (!v && !by_sender && ins->aggregates - lim->aggregates_removed >= FF_PORT_AGGREGATES) {
        k.port = 0;
        k.any_port = 1;
        v = bpf_map_lookup_elem(&overflow, &k);
    }
    if (!v) {
        /* EEXIST (another CPU first) is fine: the lookup below finds its entry. */
        long err = bpf_map_update_elem(&overflow, &k, (void *)&overflow_zero, BPF_NOEXIST);
        if (err == 0) {
            __sync_fetch_and_add(&ins->aggregates, 1);
            if (by_sender)
                __sync_fetch_and_add(&ins->senders, 1);
        }
        v = bpf_map_lookup_elem(&overflow, &k);
        if (!v) {
            lost_insert(st, p, now, ifindex);
            return;
        }
        __sync_val_compare_and_swap(&v->first_seen_ns, 0, now);
    }
    __sync_fetch_and_add(&v->packets, 1);
    __sync_fetch_and_add(&v->bytes, p->ip_len);
    if (now > v->last_seen_ns)
        v->last_seen_ns = now;  /* a racing older time may win: best-effort, as documented */
    __u64 h = mix64(peer[0] ^ mix64(peer[1]));
    __u32 rest = (__u32)(h >> 6);
    /* Rank r (trailing zeros + 1) as bit r-1: the lowest set bit itself. */
    __u32 bit = rest ? (rest & (~rest + 1)) : 0x80000000u;
    __sync_fetch_and_or(&v->peers[h & (FF_SKETCH_REGISTERS - 1)], bit);
    st->count[FF_STAT_AGGREGATED]++;
}

/*
 * A TCP packet with ACK and neither SYN nor RST: its connection got past
 * the handshake, which a forged source cannot do. Above the admission
 * limit only these start flows.
 */
static __always_inline int answered_tcp(const struct pkt *p)
{
    return p->key.proto == PROTO_TCP && (p->flags & FF_TCP_ACK) && !(p->flags & (FF_TCP_SYN | FF_TCP_RST));
}

/* A forwarded packet leaving a watched interface after entering another: already counted. */
static __always_inline int counted_on_entry(__u32 ifindex, __u32 ingress_ifindex)
{
    if (ingress_ifindex == 0 || ingress_ifindex == ifindex)
        return 0;
    return bpf_map_lookup_elem(&watched, &ingress_ifindex) != 0;
}

static __always_inline __u8 initiator_of(const struct pkt *p)
{
    /* A SYN-ACK seen first means the SYN was missed: its receiver opened the flow. */
    int reply_first = (p->flags & (FF_TCP_SYN | FF_TCP_ACK)) == (FF_TCP_SYN | FF_TCP_ACK);
    return reply_first ? !p->dir : p->dir;
}

/* Key equality as five 64-bit words (struct flow_key is 40 bytes, padding zeroed). */
static __always_inline int same_key(const struct flow_key *a, const struct flow_key *b)
{
    const __u64 *x = (const __u64 *)a, *y = (const __u64 *)b;
    return x[0] == y[0] && x[1] == y[1] && x[2] == y[2] && x[3] == y[3] && x[4] == y[4];
}

/*
 * The key's hash for the hint table: each 64-bit word times its own odd
 * constant, summed, then finalized. Not the index's jhash, and cheaper;
 * a collision only sends a packet through the index.
 */
static __always_inline __u64 key_hash(const struct flow_key *k)
{
    const __u64 *w = (const __u64 *)k;
    return mix64(w[0] * 0x9e3779b97f4a7c15ULL + w[1] * 0xc2b2ae3d27d4eb4fULL + w[2] * 0x165667b19e3779f9ULL +
                 w[3] * 0xd6e8feb86659fd93ULL + w[4] * 0xff51afd7ed558ccdULL);
}

/* A key's hint set (its hash's high half picks it) and tag (low half, lowest bit set). */
static __always_inline struct flow_hint_set *hint_set_of(__u64 h)
{
    __u32 i = (__u32)(h >> 32) & (FF_HINT_SETS - 1);
    return bpf_map_lookup_elem(&hints, &i);
}

static __always_inline __u32 hint_tag(__u64 h)
{
    return (__u32)h | 1;
}

static __always_inline __u64 hint_entry(__u64 h, __u32 slot)
{
    return ((__u64)hint_tag(h) << 32) | slot;
}

/*
 * The slot a hint names for this key, when it is live and holds the key;
 * NULL otherwise. A run that sees this flow's FF_SLOT_LIVE started before
 * the drainer marked the slot unlinked, so the drainer's grace period
 * waits for it before the final read (flow_slot). Without ordered loads
 * the key read here may predate a reuse of the slot whose `live` it read;
 * the caller checks both again under the slot's lock, whose
 * compare-and-swap orders its reads.
 */
static __always_inline struct flow_slot *hinted_slot(const struct flow_hint_set *hs, __u64 h, const struct flow_key *key)
{
    if (!hs)
        return 0;
    __u32 tag = hint_tag(h);
    __u64 e0 = hs->way[0], e1 = hs->way[1];
    __u32 n;
    if ((__u32)(e0 >> 32) == tag)
        n = (__u32)e0;
    else if ((__u32)(e1 >> 32) == tag)
        n = (__u32)e1;
    else
        return 0;
    struct flow_slot *v = bpf_map_lookup_elem(&flow_slots, &n);
    if (!v || *(volatile __u32 *)&v->live != FF_SLOT_LIVE || !same_key(&v->key, key))
        return 0;
    return v;
}

/* Makes `slot` the set's latest way; the other way keeps the one before. */
static __always_inline void remember_slot(struct flow_hint_set *hs, __u64 h, __u32 slot)
{
    if (!hs)
        return;
    __u64 e = hint_entry(h, slot);
    __u64 first = hs->way[0];
    if (first != e) {
        hs->way[1] = first;
        hs->way[0] = e;
    }
}

/*
 * Which flow index is in use, read once per run as one 64-bit load: a run
 * that read the two flags apart, across the drainer's writes at the end of
 * a move, could pair the old index with "no move under way" and insert a
 * moved flow into the index it just left. One snapshot taken before the
 * drainer announced a move belongs to a run that ends before keys move
 * (the drainer waits for program runs in flight).
 */
struct index_state {
    __u32 large;
    __u32 both;
};

static __always_inline struct index_state index_state_of(const struct flow_limits *lim)
{
    __u64 word = *(volatile const __u64 *)&lim->index_large;
    struct index_state idx;
    __builtin_memcpy(&idx, &word, sizeof(idx));
    return idx;
}

/*
 * A slot for a new flow: a freed one, else the next never used; NULL when
 * every slot is taken (the table is full). The count of fresh slots stops
 * at the array's size (CPUs racing past the check add at most one each),
 * so a table that stays full cannot wrap it onto slots in use.
 */
static __always_inline struct flow_slot *take_slot(const struct flow_limits *lim, struct ff_inserts *ins, __u32 *slot)
{
    if (bpf_map_pop_elem(&free_slots, slot) != 0) {
        if (ins->slots_used >= lim->slots)
            return 0;
        __u64 n = __sync_fetch_and_add(&ins->slots_used, 1);
        if (n >= lim->slots)
            return 0;
        *slot = (__u32)n;
    }
    return bpf_map_lookup_elem(&flow_slots, slot);
}

/*
 * A slot holding a new flow's first packet, filled before its key is
 * published: nobody else sees it yet, so no lock or atomic; `live` stays 0
 * until the key is in `flows`.
 */
static __always_inline void fill_slot(struct flow_slot *v, const struct pkt *p, __u64 now, __u32 ifindex)
{
    __builtin_memset(v, 0, sizeof(*v));
    v->key = p->key;
    v->ifindex = ifindex;
    v->initiator = initiator_of(p);
    v->dir[0].iat_min_us = FF_IAT_UNSET;
    v->dir[1].iat_min_us = FF_IAT_UNSET;
    if (p->dir == FF_DIR_LO_TO_HI)
        dir_add(&v->dir[0], p, now, UPDATE_LOCKED);
    else
        dir_add(&v->dir[1], p, now, UPDATE_LOCKED);
}

/*
 * Inserts a new flow: takes a slot, fills it, publishes its key. Returns
 * 1 when the packet is counted in the new flow (its slot in *slot_out),
 * 0 when another CPU inserted the same flow first (the slot goes back; the
 * caller adds the packet to that flow), -1 when the table has no room, INSERT_SMALL_FULL
 * when the small index is full before the drainer moved to the large one
 * (more than a few thousand new flows between two of its checks, 20 ms
 * apart: a flood or a scan). That flow is not put in the large index
 * meanwhile: another CPU could put the same key in the small one as the
 * drainer frees an entry there, and the flow would have two slots. The
 * caller treats the packet as one past the admission limit, and the
 * counted spill tells the drainer to move now. Once the program's own count
 * says the small index is full, a new flow's packet spills at once: taking
 * a slot, filling it and failing the insert under the bucket's lock, then
 * giving the slot back, would otherwise be the cost of every such packet
 * of a flood until the drainer moves. (The count can lag by the inserts
 * under way on other CPUs; a packet it lets through finds the map full and
 * spills below.)
 */
#define INSERT_SMALL_FULL (-2)

static __always_inline int small_full(struct ff_inserts *ins)
{
    __sync_fetch_and_add(&ins->spills, 1);
    return INSERT_SMALL_FULL;
}

static __always_inline int insert_flow(const struct pkt *p, __u64 now, __u32 ifindex, const struct flow_limits *lim,
                                       struct index_state idx, struct ff_inserts *ins, __u32 *slot_out)
{
    if (!idx.large && ins->flows - lim->flows_removed >= FF_SMALL_INDEX_ENTRIES)
        return small_full(ins);
    __u32 slot;
    struct flow_slot *v = take_slot(lim, ins, &slot);
    if (!v)
        return -1;
    fill_slot(v, p, now, ifindex);
    long err;
    if (idx.large) {
        err = bpf_map_update_elem(&flows, &p->key, &slot, BPF_NOEXIST);
    } else {
        err = bpf_map_update_elem(&flows_small, &p->key, &slot, BPF_NOEXIST);
        if (err == -E2BIG_) {
            bpf_map_push_elem(&free_slots, &slot, 0);
            return small_full(ins);
        }
    }
    if (err == 0) {
        __sync_fetch_and_add(&ins->flows, 1);
        /* An exchange, a full barrier: the drainer that sees `live` sees the filled slot. */
        __sync_lock_test_and_set(&v->live, FF_SLOT_LIVE);
        *slot_out = slot;
        return 1;
    }
    bpf_map_push_elem(&free_slots, &slot, 0);
    return err == -EEXIST_ ? 0 : -1;
}

/*
 * A slot's writer lock is its `seq`, made odd by compare-and-swap while a
 * packet is added; the drainer keeps no copy taken while it is odd. The
 * lock lives in the cache line the key check has just read, where a
 * bpf_spin_lock would need a line of its own (the kernel maps no array
 * whose values hold one) and turns interrupts off and on. Its holder is
 * another CPU in the middle of a few dozen stores (tc and XDP programs do
 * not nest on one CPU), so the spin is bounded: past the bound (the holder
 * interrupted or preempted that long, or this CPU losing every race to
 * other waiters) the caller sends the packet to the ring buffer.
 * Returns the odd value taken, 0 when the bound was reached.
 */
#define FF_LOCK_TRIES 256

static __always_inline __u32 seq_lock(struct flow_slot *v)
{
    for (int i = 0; i < FF_LOCK_TRIES; i++) {
        __u32 s = *(volatile __u32 *)&v->seq;
        if (!(s & 1) && __sync_val_compare_and_swap(&v->seq, s, s + 1) == s)
            return s + 1;
    }
    return 0;
}

/*
 * Even again. An exchange, not an add: the compiler turns an add whose
 * result is unused into BPF's non-fetching atomic add, which arm64 runs
 * without ordering, so the figures' stores could become visible after the
 * release. An exchange always fetches and is fully ordered on every JIT.
 */
static __always_inline void seq_unlock(struct flow_slot *v, __u32 held)
{
    __sync_lock_test_and_set(&v->seq, held + 1);
}

/*
 * A flow's slot number in the index in use; on a miss, in the other index
 * too while the drainer moves keys between them (struct flow_limits). Each
 * map has its own call, so the verifier inlines both lookups; one call fed
 * either map would go through the helper's indirect call. The barrier
 * after one of them keeps the compiler from merging the two into one call.
 */
static __always_inline __u32 *index_lookup(struct index_state idx, const struct flow_key *key)
{
    __u32 *slot;
    int large = idx.large;
    if (large) {
        slot = bpf_map_lookup_elem(&flows, key);
        asm volatile("" ::: "memory");
    } else {
        slot = bpf_map_lookup_elem(&flows_small, key);
    }
    if (slot || !idx.both)
        return slot;
    if (large) {
        slot = bpf_map_lookup_elem(&flows_small, key);
        asm volatile("" ::: "memory");
    } else {
        slot = bpf_map_lookup_elem(&flows, key);
    }
    return slot;
}

/*
 * A new flow's packet that the index cannot take now (full small index, or
 * a move under way): as past the admission limit, folded into an aggregate,
 * except that an answered connection stays a flow through the ring buffer.
 */
static __always_inline void not_inserted(struct ff_stats *st, const struct pkt *p, __u64 now, __u32 ifindex,
                                         const struct flow_limits *lim, struct ff_inserts *ins)
{
    if (answered_tcp(p))
        lost_insert(st, p, now, ifindex);
    else
        aggregate(st, p, now, ifindex, lim, ins);
}

static __always_inline struct flow_limits *limits_slot(void)
{
    __u32 zero = 0;
    return bpf_map_lookup_elem(&limits, &zero);
}

static __always_inline struct ff_stats *stats_slot(void)
{
    __u32 zero = 0;
    return bpf_map_lookup_elem(&stats, &zero);
}

/*
 * A new flow's packet, or one whose flow the drainer ended meanwhile:
 * inserted while the table admits it (the new slot becomes the key's
 * hint), else aggregated or sent to the ring buffer. Returns the slot of
 * the same flow another CPU inserted first, into which the caller adds
 * the packet; NULL when the packet was counted here.
 */
static __always_inline __u32 *insert_or_fold(struct ff_stats *st, const struct pkt *p, __u64 now, __u32 ifindex,
                                             const struct flow_limits *lim, struct index_state idx,
                                             struct flow_hint_set *hs, __u64 h)
{
    __u32 zero = 0;
    struct ff_inserts *ins = bpf_map_lookup_elem(&inserts, &zero);
    if (!ins)
        return 0;
    /*
     * Past the limit the rest of the table is kept for connections that
     * were answered. CPUs that pass this check at once may each insert:
     * the table can pass the limit by a few entries, never its size.
     */
    if (ins->flows - lim->flows_removed >= lim->admit && !answered_tcp(p)) {
        aggregate(st, p, now, ifindex, lim, ins);
        return 0;
    }
    if (idx.both) {
        __sync_fetch_and_add(&ins->deferred, 1);
        not_inserted(st, p, now, ifindex, lim, ins);
        return 0;
    }
    __u32 n = 0;
    int inserted = insert_flow(p, now, ifindex, lim, idx, ins, &n);
    if (inserted > 0) {
        remember_slot(hs, h, n);
        st->count[FF_STAT_PACKETS_ACCOUNTED]++;
        return 0;
    }
    if (inserted == INSERT_SMALL_FULL) {
        not_inserted(st, p, now, ifindex, lim, ins);
        return 0;
    }
    /* Another CPU inserted the same flow first: add to its slot. */
    __u32 *slot = inserted == 0 ? index_lookup(idx, &p->key) : 0;
    if (!slot)
        aggregate(st, p, now, ifindex, lim, ins);
    return slot;
}

/*
 * The packet's flow's slot through the index, holding its key (the slot
 * becomes the key's hint); NULL when the packet was counted on the way
 * (a new flow, an aggregate, the ring buffer).
 */
static __always_inline struct flow_slot *indexed_slot(struct ff_stats *st, const struct pkt *p, __u64 now,
                                                      __u32 ifindex, struct flow_hint_set *hs, __u64 h)
{
    struct flow_limits *lim = limits_slot();
    if (!lim)
        return 0;
    struct index_state idx = index_state_of(lim);
    __u32 *slot = index_lookup(idx, &p->key);
    if (!slot)
        slot = insert_or_fold(st, p, now, ifindex, lim, idx, hs, h);
    if (!slot)
        return 0;
    __u32 n = *slot;
    struct flow_slot *v = bpf_map_lookup_elem(&flow_slots, &n);
    /*
     * The key's hash element may have been removed and reused for another
     * flow between the lookup and this read (the preallocated map recycles
     * elements at once): then the slot is another live flow's. Look again.
     */
    if (v && !same_key(&v->key, &p->key)) {
        slot = index_lookup(idx, &p->key);
        n = slot ? *slot : 0;
        v = slot ? bpf_map_lookup_elem(&flow_slots, &n) : 0;
        if (v && !same_key(&v->key, &p->key))
            v = 0;
    }
    if (!v) {
        /* The flow was ended meanwhile: the packet belongs to no slot. */
        __u32 zero = 0;
        struct ff_inserts *ins = bpf_map_lookup_elem(&inserts, &zero);
        if (ins)
            aggregate(st, p, now, ifindex, lim, ins);
        return 0;
    }
    remember_slot(hs, h, n);
    return v;
}

/*
 * Adds the packet to its flow's slot. Locked: under the slot's writer
 * lock; with `recheck` (a slot a hint named) only if the slot, seen under
 * the lock, is still live and holds the key. Returns 0 when it was not,
 * and the packet must take the index; 1 when the packet is counted.
 */
static __always_inline int add_to_slot(struct ff_stats *st, struct flow_slot *v, const struct pkt *p, __u64 now,
                                       __u32 ifindex, int update, int recheck)
{
    struct flow_dir_stats *d = p->dir == FF_DIR_LO_TO_HI ? &v->dir[0] : &v->dir[1];
    if (update == UPDATE_ATOMIC) {
        dir_add(d, p, now, UPDATE_ATOMIC);
    } else {
        __u32 held = seq_lock(v);
        if (!held) {
            /* Adding beside the holder's plain stores would lose counts: the drainer merges it instead. */
            st->count[FF_STAT_SLOT_LOCKED]++;
            lost_insert(st, p, now, ifindex);
            return 1;
        }
        if (recheck && (*(volatile __u32 *)&v->live != FF_SLOT_LIVE || !same_key(&v->key, &p->key))) {
            seq_unlock(v, held);
            return 0;
        }
        dir_add(d, p, now, UPDATE_LOCKED);
        seq_unlock(v, held);
    }
    st->count[FF_STAT_PACKETS_ACCOUNTED]++;
    return 1;
}

/*
 * Parses one packet and counts it into its flow: the path every entry point
 * shares. `update` picks how figures are added; the locked programs (tc,
 * XDP) try the key's hint before the index.
 */
static __always_inline void account(void *ctx, int kind, int update, __u32 frame_len, int vlan_present, __u16 vlan,
                                    __u32 ifindex, __u32 ingress_ifindex)
{
    struct ff_stats *st = stats_slot();
    if (!st)
        return;
    st->count[FF_STAT_PACKETS_SEEN]++;
    if (counted_on_entry(ifindex, ingress_ifindex)) {
        st->count[FF_STAT_FORWARDED_SEEN]++;
        return;
    }

    struct pkt p = {};
    int rc = parse(ctx, kind, frame_len, vlan_present, vlan, &p);
    if (rc != PARSE_OK) {
        st->count[rc == PARSE_NOT_IP ? FF_STAT_NOT_IP : FF_STAT_MALFORMED]++;
        return;
    }
    __u64 now = bpf_ktime_get_ns();
    struct flow_hint_set *hs = 0;
    __u64 h = 0;
    if (update == UPDATE_LOCKED) {
        h = key_hash(&p.key);
        hs = hint_set_of(h);
        struct flow_slot *hinted = hinted_slot(hs, h, &p.key);
        if (hinted && add_to_slot(st, hinted, &p, now, ifindex, update, 1))
            return;
    }
    struct flow_slot *v = indexed_slot(st, &p, now, ifindex, hs, h);
    if (v)
        add_to_slot(st, v, &p, now, ifindex, update, 0);
}

SEC("tc")
int ff_tc(struct __sk_buff *skb)
{
    account(skb, KIND_SKB, UPDATE_LOCKED, skb->len, skb->vlan_present, skb->vlan_tci, skb->ifindex,
            skb->ingress_ifindex);
    return TC_ACT_UNSPEC;
}

SEC("xdp")
int ff_xdp(struct xdp_md *ctx)
{
    /* XDP sees ingress only: nothing it sees was counted before. */
    account(ctx, KIND_XDP, UPDATE_LOCKED, bpf_xdp_get_buff_len(ctx), 0, 0, ctx->ingress_ifindex, 0);
    return XDP_PASS;
}

SEC("socket")
int ff_socket(struct __sk_buff *skb)
{
    /*
     * A packet socket on loopback gets each packet twice, leaving and
     * coming back (libpcap drops the first the same way); tc hooks only
     * loopback's egress for the same reason. The kernel gives loopback
     * ifindex 1 in every namespace.
     */
    if (skb->ifindex == LOOPBACK_IFINDEX_ && skb->pkt_type == PACKET_OUTGOING_)
        return 0;
    account(skb, KIND_SKB, UPDATE_ATOMIC, skb->len, skb->vlan_present, skb->vlan_tci, skb->ifindex,
            skb->ingress_ifindex);
    /* Nothing is queued to the socket: user space reads only the map. */
    return 0;
}

/*
 * The benchmark's floor: a tc program that returns at once, so the cost of
 * the hook itself on a machine is measured beside ff_tc's (flowforest-lab
 * bench, mode tc-empty). Never loaded by a capture.
 */
SEC("tc")
int ff_tc_floor(struct __sk_buff *skb)
{
    return TC_ACT_UNSPEC;
}
