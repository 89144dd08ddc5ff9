/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The kernel's per-CPU counter slot: one array entry per CPU holding every
 * enum ff_stat counter (flow_types.h), so a packet costs one map lookup.
 * Included by flowforest.bpf.c and by the CLibbpf module.
 */
#ifndef FLOWFOREST_FF_STATS_H
#define FLOWFOREST_FF_STATS_H
#include "flow_types.h"

struct ff_stats {
    __u64 count[FF_STAT_MAX];
};

#endif
