"""Traffic for the dashboard test: a capture file of ordinary TCP sessions to
train a model on, and an attack-shaped batch for POST /api/traffic.

Addresses are in 198.18.0.0/15 (the benchmarking range); nothing is sent on
any network, the capture file is written directly.
"""
import random
import struct

CLIENTS = [f"198.18.1.{i}" for i in range(10, 40)]
SERVERS = [f"198.18.2.{i}" for i in range(1, 6)]
SYN, ACK, FIN, PSH = 0x02, 0x10, 0x01, 0x08


def _ip(a):
    return bytes(int(x) for x in a.split("."))


def _frame(src, dst, sport, dport, flags, payload_len):
    tcp = struct.pack("!HHIIBBHHH", sport, dport, 1, 1, 5 << 4, flags, 64240, 0, 0)
    total = 20 + len(tcp) + payload_len
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 0, 0x4000, 64, 6, 0, _ip(src), _ip(dst))
    eth = b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01" + b"\x08\x00"
    return eth + ip + tcp + b"\x00" * payload_len


def write_normal_pcap(path, start, seconds=900, seed=7):
    """Clients open short HTTPS-like sessions (handshake, request, response,
    FIN both ways) at random times; returns the number of flows written."""
    rng = random.Random(seed)
    packets = []
    flows = 0
    for client in CLIENTS:
        t = start + rng.uniform(0, 3)
        while t < start + seconds:
            server = rng.choice(SERVERS)
            sport = rng.randint(32768, 60999)
            dport = rng.choice([443, 443, 443, 80])
            rtt = rng.uniform(0.0005, 0.02)
            request, response = rng.randint(200, 900), rng.randint(500, 1400)
            steps = [
                (0, client, server, sport, dport, SYN, 0),
                (rtt, server, client, dport, sport, SYN | ACK, 0),
                (2 * rtt, client, server, sport, dport, ACK, 0),
                (2 * rtt + 0.0001, client, server, sport, dport, PSH | ACK, request),
            ]
            at = 3 * rtt
            for _ in range(rng.randint(1, 6)):
                steps.append((at, server, client, dport, sport, PSH | ACK, response))
                at += rng.uniform(0.0002, 0.003)
            steps += [
                (at + rtt, client, server, sport, dport, ACK, 0),
                (at + 2 * rtt, client, server, sport, dport, FIN | ACK, 0),
                (at + 3 * rtt, server, client, dport, sport, FIN | ACK, 0),
                (at + 4 * rtt, client, server, sport, dport, ACK, 0),
            ]
            for dt, s, d, sp, dp, fl, pl in steps:
                packets.append((t + dt, _frame(s, d, sp, dp, fl, pl)))
            flows += 1
            t += rng.expovariate(1 / 2.5)
    packets.sort(key=lambda p: p[0])
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for ts, frame in packets:
            sec = int(ts)
            f.write(struct.pack("<IIII", sec, int((ts - sec) * 1e6), len(frame), len(frame)))
            f.write(frame)
    return flows


def syn_scan(attacker, victim, ports, start):
    """One source sends a SYN to each of `ports` on one victim within a second;
    no replies (closed or filtered). Records in the POST /api/traffic shape."""
    span = 0.9 / max(1, len(ports))
    return [
        {"src_ip": attacker, "dst_ip": victim, "src_port": 40000 + i, "dst_port": port,
         "protocol": "tcp", "length": 60, "timestamp": start + i * span, "tcp_flags": ["SYN"]}
        for i, port in enumerate(ports)
    ]
