#!/usr/bin/env bash
# What FlowForest's tests could leave on the host: lab namespaces, ffv* veths,
# FlowForest programs still loaded (ff_tc/ff_xdp/ff_socket: any hook or link
# holding one), clsact qdiscs, XDP programs and pins under /sys/fs/bpf.
#
#   leftovers.sh snapshot FILE   record the state before the tests
#   leftovers.sh check FILE      fail, listing them, if anything is new since
set -euo pipefail

state() {
    ip netns list 2>/dev/null | awk '{print "netns " $1}' | grep ' fflab-' || true
    ip -o link show 2>/dev/null | awk -F': ' '{print "link " $2}' | grep '^link ffv' || true
    for dev in $(ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1); do
        tc qdisc show dev "$dev" 2>/dev/null | grep -q clsact && echo "clsact qdisc on $dev"
        ip -o link show dev "$dev" 2>/dev/null | grep -q ' xdp' && echo "xdp program on $dev"
    done
    # Without root (or bpftool) there is no program list; say so rather than fail.
    progs=$(bpftool -j prog show 2>/dev/null || echo '[]')
    echo "${progs:-[]}" | python3 -c '
import json, sys
try:
    progs = json.load(sys.stdin)
except ValueError:
    progs = []
for p in progs:
    if p.get("name") in ("ff_tc", "ff_xdp", "ff_socket"):
        print("loaded program", p["name"])' | sort | uniq -c | sed 's/^ *//'
    find /sys/fs/bpf -maxdepth 2 \( -iname '*flowforest*' -o -name 'ff_*' \) 2>/dev/null | sed 's/^/pin /'
}

case "${1:-}" in
snapshot) state > "$2" ;;
check)
    now=$(state | sort)
    new=$(comm -13 <(sort "$2") <(echo "$now"))
    if [ -n "$new" ]; then
        echo "left behind by the tests:" >&2
        echo "$new" >&2
        exit 1
    fi
    echo "nothing left behind (namespaces, veths, qdiscs, XDP, FlowForest programs, pins)"
    ;;
*) echo "usage: $0 snapshot|check FILE" >&2; exit 2 ;;
esac
