/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Every record shared by the kernel program (flowforest.bpf.c) and user space
 * (the CLibbpf module that Swift imports): map keys and values, ring-buffer
 * events and counters. Both sides include this one file, so the drainer reads
 * the kernel's exact layout; the _Static_asserts at the end fail the build of
 * either side if a field moves.
 *
 * Conventions (the Swift pcap path follows the same rules, see
 * Sources/PcapCapture/PacketParser.swift):
 * - Addresses are 16 bytes in network order; IPv4 is stored IPv4-mapped
 *   (::ffff:a.b.c.d).
 * - The key is bidirectional: endpoint "lo" is the one whose (address bytes,
 *   port) compares lower, lexicographically. dir[0] counts packets sent by
 *   lo, dir[1] packets sent by hi.
 * - Ports are in host byte order. Non-first fragments have ports 0. ICMP and
 *   ICMPv6 use Zeek's convention: sender "port" is the type, receiver "port"
 *   is the counterpart type for request/reply pairs (echo 8<->0, 128<->129,
 *   ...) and the code otherwise, so a ping and its replies form one flow.
 * - Parsing: Ethernet with up to two VLAN tags, counting one the kernel
 *   moved into the skb's metadata (a third: not IP); IPv4 with its real
 *   header length; IPv6 with at most 6 extension headers (hop-by-hop,
 *   routing, fragment, destination options, AH; more: malformed), ending at
 *   a later fragment's fragment header, whose Next Header is the protocol. A
 *   packet whose IP length exceeds the frame, or whose transport header does
 *   not fit in the IP length, is malformed and attributed to no flow.
 * - Bytes and lengths are IP-layer: IPv4 total length, IPv6 payload length
 *   + 40, as NetFlow/IPFIX octet counts are.
 * - The initiator is the sender of the flow's first packet, except that a
 *   TCP SYN-ACK seen first makes its receiver the initiator.
 * - Inter-arrival time of a packet is (ts - last_seen_ns) / 1000 within its
 *   direction, clamped to 32 bits; none for a direction's first packet.
 * - Times are nanoseconds of CLOCK_MONOTONIC (bpf_ktime_get_ns); user space
 *   converts them to wall-clock time.
 * - A sensor counts a packet once: one that leaves a watched interface after
 *   entering through another watched interface (forwarded by this host) was
 *   counted where it entered, and is only counted as FF_STAT_FORWARDED_SEEN
 *   on the way out. A flow's ifindex is where its first packet was counted.
 * - Every packet counted ends in exactly one place: a flow (map entry, or the
 *   ring buffer when its insert failed or its slot's lock stayed held past
 *   the spin bound), an overflow aggregate, or a loss
 *   counter (FF_STAT_RINGBUF_FAILED); or it is not IP, malformed, or a
 *   forwarded packet's second sight.
 */
#ifndef FLOWFOREST_FLOW_TYPES_H
#define FLOWFOREST_FLOW_TYPES_H

#ifdef __BPF__
/* vmlinux.h or linux/types.h provides the __u* types in the BPF build. */
#else
#include <linux/types.h>
#include <linux/bpf.h>
#endif

#define FF_DIR_LO_TO_HI 0
#define FF_DIR_HI_TO_LO 1

/* TCP flag bits as on the wire (byte 13 of the TCP header). */
#define FF_TCP_FIN 0x01
#define FF_TCP_SYN 0x02
#define FF_TCP_RST 0x04
#define FF_TCP_PSH 0x08
#define FF_TCP_ACK 0x10
#define FF_TCP_URG 0x20

/* Value of iat_min_us before a direction has seen its second packet. */
#define FF_IAT_UNSET 0xFFFFFFFFu

/* Default number of flows the kernel map holds (--map-size overrides). */
#define FF_DEFAULT_MAP_ENTRIES 131072
/*
 * Entries of the flow table's small index (`flows_small`), used instead of
 * the full-size one (`flows`) while the table holds few flows: every
 * packet's lookup reads one bucket at a random place of its index's bucket
 * array (16 bytes an entry), and this one's 256 KiB stay in a core's L2
 * where the default map size's 2 MiB do not. User space moves the keys
 * between the two (struct flow_limits); a map size at or below this uses
 * `flows` alone.
 */
#define FF_SMALL_INDEX_ENTRIES 16384

/*
 * Sets of the slot-hint table (`hints`, struct flow_hint_set): two ways
 * each, 16 bytes a set, 512 KiB in all. Enough that 10,000 busy flows
 * rarely share a set with two others; past that a packet only goes
 * through the index's own lookup.
 */
#define FF_HINT_SETS 32768

/* flow_slot.live: what a slot holds. */
#define FF_SLOT_FREE 0      /* free, or taken and filled but not yet published */
#define FF_SLOT_LIVE 1      /* published after its key went into an index */
#define FF_SLOT_UNLINKED 2  /* its key was removed; user space takes its final figures */

/*
 * Overflow aggregates: what the kernel keeps of packets it does not admit as
 * flows (see struct overflow_key). Entries of the aggregate map, and the
 * share of the flow map (in 1/8ths) that new flows may fill before only
 * answered TCP flows are admitted; the rest is headroom for those.
 */
#define FF_OVERFLOW_ENTRIES 8192
#define FF_ADMIT_EIGHTHS 7
/*
 * Aggregates keyed by a reply's sender (enum ff_side) that may exist at
 * once: past them, replies fold under their destination. Forged or
 * reflected replies from many senders to one victim would otherwise take an
 * aggregate per sender and fill the map, hiding every other flood.
 */
#define FF_SENDER_AGGREGATES (FF_OVERFLOW_ENTRIES / 4)
/*
 * Aggregates that may exist at once before new ones stop being keyed by
 * port: past them, a packet whose (endpoint, port) has no aggregate yet
 * folds into its endpoint's any-port aggregate (overflow_key.any_port). A
 * forged flood over random ports would otherwise take an aggregate per
 * port, fill the map and send the rest through the ring buffer into user
 * space, one flow each, hiding every other flood.
 */
#define FF_PORT_AGGREGATES (FF_OVERFLOW_ENTRIES / 2)
/* Registers of the distinct-peer sketch (a HyperLogLog of 2^6 registers). */
#define FF_SKETCH_REGISTERS 64
/* Interfaces one sensor may watch (size of the watched-interface map). */
#define FF_MAX_WATCHED 64

struct flow_key {
    __u8 addr_lo[16];
    __u8 addr_hi[16];
    __u16 port_lo;
    __u16 port_hi;
    __u16 vlan;      /* outer 802.1Q/802.1ad id, 0 when untagged */
    __u8 proto;      /* IPPROTO_* */
    __u8 pad;        /* always 0: the key is hashed bytewise */
};

struct flow_dir_stats {
    __u64 packets;
    __u64 bytes;
    __u64 first_seen_ns;
    __u64 last_seen_ns;
    __u64 len_sum_sq;     /* sum of squared IP lengths */
    __u64 iat_sum_us;     /* inter-arrival times within this direction */
    __u64 iat_sum_sq_us;  /* microseconds, so squares fit in 64 bits */
    __u32 iat_min_us;     /* FF_IAT_UNSET until the second packet */
    __u32 iat_max_us;
    __u32 len_min;
    __u32 len_max;
    __u32 syn;            /* SYN without ACK */
    __u32 syn_ack;        /* SYN with ACK */
    __u32 fin;
    __u32 rst;
    __u32 psh;
    __u32 ack;
    __u32 urg;
    __u32 payload_packets; /* packets carrying transport payload */
    __u16 init_window;    /* TCP window of this direction's first packet */
    __u8 flags_or;        /* OR of all TCP flags seen */
    __u8 icmp_type;       /* of this direction's first ICMP packet */
    __u8 icmp_code;
    __u8 pad[3];
};

/*
 * One flow, in slot N of the mmapped `flow_slots` array; the `flows` hash
 * map holds N under the flow's key. User space reads every slot in place,
 * with no system call, and tells changed flows by their packet counts.
 * The program fills a slot it took from the free list before it publishes
 * the key, then sets `live`. User space removes the key, marks the slot
 * FF_SLOT_UNLINKED, waits for every program run in flight (an RCU grace
 * period, through an update of the `grace` map-in-map), then takes the
 * final figures, clears `live` and returns the slot to the free list: a
 * slot never holds two flows at once, and a run that reached the slot
 * through a hint (struct flow_hint_set) rather than the index adds to it
 * only while it is FF_SLOT_LIVE, so no packet lands after the final read.
 */
struct flow_slot {
    struct flow_key key;
    __u32 live;                  /* FF_SLOT_* */
    __u32 ifindex;               /* interface of first sight */
    __u8 initiator;              /* FF_DIR_* of the side that opened the flow */
    __u8 pad[3];
    /*
     * Odd while tc or xdp adds a packet: it is their writer lock, taken
     * by compare-and-swap from even to odd and released by an exchange
     * to the next even value. A reader copies the slot and keeps the copy
     * if `seq` was even and unchanged. The socket filter's atomic updates
     * leave it 0.
     */
    __u32 seq;
    struct flow_dir_stats dir[2];
};

/*
 * Where the tc and XDP programs last found flows' slots, so a packet of a
 * busy flow reaches its slot without the index's hash lookup (hashing a
 * 40-byte key and reading a bucket and an element that are rarely in
 * cache with thousands of flows). Each way holds (tag << 32) | slot, the
 * tag being the low half of the key's hash with its lowest bit set (so an
 * empty way, 0, matches nothing); way[0] holds the latest found. A hint is
 * never trusted: the slot must be FF_SLOT_LIVE and hold the same key, and
 * anything else goes through the index.
 */
struct flow_hint_set {
    __u64 way[2];
};

/*
 * A packet whose flow could not be inserted (map full or another insert
 * failure), or whose flow's slot stayed locked past the spin bound, goes to
 * the ring buffer as one of these; user space merges it.
 */
struct flow_event {
    struct flow_key key;
    __u64 ts_ns;
    __u32 ifindex;
    __u32 ip_len;
    __u32 payload_len;
    __u16 tcp_window;
    __u8 dir;                    /* FF_DIR_* of the sender */
    __u8 tcp_flags;
    __u8 icmp_type;
    __u8 icmp_code;
    __u8 pad[2];
};

/*
 * What kind of packets an overflow aggregate holds. The class decides which
 * endpoint the aggregate is keyed by (enum ff_side): the one that is being
 * hit for requests, the one that answers for replies, so the answers of a
 * victim to forged sources fold into one aggregate of the victim too.
 */
enum ff_overflow_class {
    FF_CLASS_TCP_SYN = 0,       /* SYN without ACK */
    FF_CLASS_TCP_SYN_ACK,       /* reply: keyed by its sender */
    FF_CLASS_TCP_RST,           /* bare RST (RST+ACK is a reply: FF_CLASS_TCP_RST_ACK) */
    FF_CLASS_TCP_RST_ACK,       /* reply: keyed by its sender */
    FF_CLASS_TCP_FIN,
    FF_CLASS_TCP_OTHER,         /* ACK, PSH, no flags, ... */
    FF_CLASS_UDP,
    FF_CLASS_ICMP,              /* requests and other ICMP/ICMPv6 */
    FF_CLASS_ICMP_REPLY,        /* echo replies and errors: keyed by their sender */
    FF_CLASS_OTHER,             /* any other IP protocol */
    FF_CLASS_MAX,
};

/* Which endpoint of its packets an overflow aggregate's address and port are. */
enum ff_side {
    FF_SIDE_DESTINATION = 0,
    FF_SIDE_SOURCE = 1,
};

/*
 * Packets not admitted as flows, folded per (endpoint, port, protocol,
 * class): a forged flood from a million sources is one entry for its victim.
 */
struct overflow_key {
    __u8 addr[16];   /* the keyed endpoint (enum ff_side), IPv4-mapped as in flow_key */
    __u16 port;      /* its port (ICMP: type), host order; 0 without ports */
    __u16 vlan;
    __u8 proto;
    __u8 cls;        /* enum ff_overflow_class */
    __u8 side;       /* enum ff_side */
    __u8 any_port;   /* 1: every port of the endpoint (port is 0), past FF_PORT_AGGREGATES; else 0 */
};

struct overflow_value {
    __u64 packets;
    __u64 bytes;
    __u64 first_seen_ns;
    __u64 last_seen_ns;
    /*
     * Distinct peers (the other endpoint's address): register h % 64 of a
     * HyperLogLog, kept as a bitmap of the rank values seen (bit r-1 for
     * rank r) so each update is one atomic OR; the register's value is the
     * highest bit set. User space turns the registers into an estimate.
     */
    __u32 peers[FF_SKETCH_REGISTERS];
};

/*
 * What user space tells the program (slot 0 of `limits`, written whole by
 * the drainer). Only the drainer removes entries, so inserts (counted by the
 * program in struct ff_inserts) minus these removals is exactly what each
 * map holds, however the drainer's writes and the program's inserts
 * interleave.
 */
struct flow_limits {
    __u64 slots;             /* slots of `flow_slots` (--map-size): none past them is ever handed out */
    __u64 admit;             /* above this many flows in the map only answered TCP flows are inserted */
    __u64 flows_removed;     /* flows the drainer took out of the flow map since the program was loaded */
    __u64 senders_removed;   /* sender-keyed aggregates it took out of `overflow` */
    __u64 aggregates_removed; /* aggregates of any kind it took out of `overflow` */
    /*
     * The flow table's index: lookups and inserts go to `flows` when
     * index_large is 1, to `flows_small` when it is 0. While index_both
     * is 1 (the drainer is moving keys between them) a lookup that misses
     * there looks in the other index too, and no flow is inserted: two
     * CPUs that read different index_large values could otherwise put one
     * new flow in both.
     */
    __u32 index_large;
    __u32 index_both;
};

/* What the program inserted since it was loaded (slot 0 of `inserts`, atomic adds; user space reads it). */
struct ff_inserts {
    __u64 flows;       /* entries of the flow map */
    __u64 senders;     /* sender-keyed entries of `overflow` */
    __u64 aggregates;  /* entries of `overflow` of any kind */
    __u64 slots_used;  /* slots of `flow_slots` ever taken fresh (N < this have been used); passes its size by at most one per CPU */
    __u64 spills;      /* new flows' packets not inserted because `flows_small` was full while it was the index in use (aggregated, or sent to the ring buffer when answered TCP) */
    __u64 deferred;    /* new flows' packets not inserted because the drainer was moving the index (handled the same way) */
};

/* Per-CPU counters: index into struct ff_stats. */
enum ff_stat {
    FF_STAT_PACKETS_SEEN = 0,    /* every packet the hook saw */
    FF_STAT_PACKETS_ACCOUNTED,   /* added to a map entry */
    FF_STAT_NOT_IP,              /* ARP, LLDP, ...: seen, not a flow */
    FF_STAT_MALFORMED,           /* truncated or inconsistent headers */
    FF_STAT_RINGBUF_SENT,        /* failed inserts (or lock waits past the bound) delivered via ring buffer */
    FF_STAT_RINGBUF_FAILED,      /* ring buffer full too: packet lost, counted */
    FF_STAT_AGGREGATED,          /* not admitted as a flow: added to an overflow aggregate */
    FF_STAT_FORWARDED_SEEN,      /* leaving after it was counted entering on a watched interface */
    FF_STAT_SLOT_LOCKED,         /* of those sent to the ring buffer (or lost with it), why: the flow's slot stayed locked past the spin bound */
    FF_STAT_MAX,
};

/* The one slot of the per-CPU stats array: every counter, one lookup per packet. */
struct ff_stats {
    __u64 count[FF_STAT_MAX];
};

_Static_assert(sizeof(struct flow_key) == 40, "flow_key layout changed");
_Static_assert(sizeof(struct flow_dir_stats) == 112, "flow_dir_stats layout changed");
_Static_assert(sizeof(struct flow_slot) == 40 + 16 + 2 * 112, "flow_slot layout changed");
_Static_assert(__builtin_offsetof(struct flow_slot, dir) == 56, "flow_slot.dir moved");
_Static_assert(__builtin_offsetof(struct flow_slot, seq) == 52, "flow_slot.seq moved");
_Static_assert(sizeof(struct flow_slot) % 8 == 0, "flow_slot must keep its 64-bit fields aligned in the array");
/* The socket filter ORs flags_or through the aligned 32-bit word that starts at init_window. */
_Static_assert(__builtin_offsetof(struct flow_dir_stats, init_window) % 4 == 0, "init_window must start a 32-bit word");
_Static_assert(__builtin_offsetof(struct flow_dir_stats, flags_or) == __builtin_offsetof(struct flow_dir_stats, init_window) + 2,
               "flags_or must be byte 2 of init_window's word");
_Static_assert(sizeof(struct flow_hint_set) == 16, "flow_hint_set layout changed");
_Static_assert((FF_HINT_SETS & (FF_HINT_SETS - 1)) == 0, "FF_HINT_SETS must be a power of two");
_Static_assert(sizeof(struct flow_event) == 72, "flow_event layout changed");
_Static_assert(sizeof(struct ff_stats) == 8 * FF_STAT_MAX, "ff_stats layout changed");
_Static_assert(sizeof(struct overflow_key) == 24, "overflow_key layout changed");
_Static_assert(sizeof(struct overflow_value) == 32 + 4 * FF_SKETCH_REGISTERS, "overflow_value layout changed");
_Static_assert(__builtin_offsetof(struct overflow_value, peers) == 32, "overflow_value.peers moved");
_Static_assert(sizeof(struct flow_limits) == 48, "flow_limits layout changed");
/* The program reads index_large and index_both as one aligned 64-bit word. */
_Static_assert(__builtin_offsetof(struct flow_limits, index_large) % 8 == 0, "index_large must start a 64-bit word");
_Static_assert(__builtin_offsetof(struct flow_limits, index_both) == __builtin_offsetof(struct flow_limits, index_large) + 4,
               "index_both must follow index_large in its word");
_Static_assert(sizeof(struct ff_inserts) == 48, "ff_inserts layout changed");

#endif /* FLOWFOREST_FLOW_TYPES_H */
