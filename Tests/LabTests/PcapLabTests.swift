import FlowForestLab
import Foundation
import Testing

/// Known traffic between two namespaces, captured by tcpdump (then
/// `flowforest analyze`) and live by `flowforest run --mode pcap` at the
/// same time: both must report exactly the packets and bytes the traffic
/// implies, per flow and direction.
@Suite("Lab: libpcap path end to end", .serialized, .enabled(if: Command.isRoot, "needs root for network namespaces"))
struct PcapLabTests {
    struct Counts: Equatable, CustomStringConvertible {
        var fwdPackets: Int, fwdBytes: Int, revPackets: Int, revBytes: Int
        var description: String { "fwd \(fwdPackets)/\(fwdBytes) rev \(revPackets)/\(revBytes)" }
    }

    static let client = "198.18.0.1", server = "198.18.0.2"

    @Test("ping, UDP burst and a TCP transfer: exact counts from analyze and from live capture")
    func knownTraffic() throws {
        let lab = try NetworkLab()
        defer { lab.teardown() }
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let a = try lab.addNamespace("client"), b = try lab.addNamespace("server")
        let (_, serverIf) = try lab.connect(a, address: "\(Self.client)/24", b, address: "\(Self.server)/24")

        let pcap = dir.appendingPathComponent("lab.pcap")
        let dump = try PacketDump(lab: lab, namespace: b, interface: serverIf, file: pcap, snapLength: 256)
        let before = try Self.packets(lab, b, serverIf)
        let liveOut = dir.appendingPathComponent("live.jsonl"), liveErr = dir.appendingPathComponent("live.err")
        let live = try lab.spawn(in: b, [Binary.path, "run", "--mode", "pcap", "--interface", serverIf, "--print-flows", "json",
                                          "--idle-timeout", "60", "--poll-interval", "0.2", "--database", dir.appendingPathComponent("live.db").path],
                                    stdout: liveOut, stderr: liveErr)
        try Wait.blockingUntil("flowforest run --mode pcap to start capturing", timeout: 20, detail: { tail(liveErr) }) {
            Wait.file(liveErr, contains: "capture started")
        }

        // 50 echo requests of 84 IP bytes each, 50 replies.
        try lab.check(in: a, ["ping", "-c", "50", "-i", "0.01", "-W", "2", "-q", Self.server], timeout: 30)
        // 100 UDP datagrams of 200 payload bytes to a listening sink: 228 IP bytes each.
        let sink = try lab.spawn(in: b, ["python3", "-c", """
            import socket
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("\(Self.server)", 9999)); s.settimeout(15)
            n = 0
            while n < 100: s.recv(2048); n += 1
            """])
        try Self.waitForListener(lab, b, "-u", port: 9999)
        try lab.check(in: a, ["python3", "-c", """
            import socket, time
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            for i in range(100):
                s.sendto(b"x" * 200, ("\(Self.server)", 9999)); time.sleep(0.001)
            """], timeout: 30)
        // A TCP transfer of 100,000 bytes; packets and segment sizes are up to the stack.
        let tcpServer = try lab.spawn(in: b, ["python3", "-c", """
            import socket
            l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); l.bind(("\(Self.server)", 5001)); l.listen(1); l.settimeout(15)
            c, _ = l.accept(); n = 0
            while True:
                d = c.recv(65536)
                if not d: break
                n += len(d)
            c.close()
            assert n == 100000, n
            """])
        try Self.waitForListener(lab, b, "-t", port: 5001)
        try lab.check(in: a, ["python3", "-c", """
            import socket
            s = socket.create_connection(("\(Self.server)", 5001), timeout=10); s.sendall(b"y" * 100000); s.shutdown(socket.SHUT_WR); s.recv(1); s.close()
            """], timeout: 30)
        #expect(lab.wait(tcpServer, timeout: 10) == 0, "the TCP server did not receive 100000 bytes")
        #expect(lab.wait(sink, timeout: 10) == 0, "the UDP sink did not receive 100 datagrams")
        // Every packet the interface counted is in the file. The live run
        // needs no wait: on SIGINT it reads what its capture ring still holds.
        try dump.finish(expecting: { Int(try Self.packets(lab, b, serverIf) - before) })
        #expect(lab.stop(live, signal: SIGINT, timeout: 15) == 0, "run did not exit cleanly on SIGINT")

        // The oracle: tcpdump's own reading of the IP length of every packet.
        let oracle = try Self.oracle(pcap)
        let analyzed = try Binary.run(["analyze", pcap.path, "--format", "json"])
        #expect(analyzed.status == 0, "\(analyzed.stderr)")
        let report = try #require(JSONSerialization.jsonObject(with: Data(analyzed.stdout.utf8)) as? [String: Any])
        let fileFlows = try #require(report["flows"] as? [[String: Any]])
        let liveFlows = try String(contentsOf: liveOut, encoding: .utf8).split(separator: "\n").compactMap {
            try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }

        let ping = Counts(fwdPackets: 50, fwdBytes: 50 * 84, revPackets: 50, revBytes: 50 * 84)
        let udp = Counts(fwdPackets: 100, fwdBytes: 100 * 228, revPackets: 0, revBytes: 0)
        let tcp = try #require(oracle[5001])
        #expect(tcp.fwdBytes > 100_000 && tcp.fwdBytes < 100_000 + 60 * tcp.fwdPackets)
        #expect(oracle[0] == ping && oracle[9999] == udp, "tcpdump itself disagrees with the traffic: \(oracle)")

        for (name, flows) in [("analyze", fileFlows), ("run --mode pcap", liveFlows)] {
            #expect(Self.counts(flows, protocol: "icmp", port: nil) == ping, "\(name): ping")
            #expect(Self.counts(flows, protocol: "udp", port: 9999) == udp, "\(name): udp")
            #expect(Self.counts(flows, protocol: "tcp", port: 5001) == tcp, "\(name): tcp")
            let tcpFlow = flows.first { $0["dst_port"] as? Int == 5001 }
            #expect(tcpFlow?["src_ip"] as? String == Self.client, "\(name): the client initiated the TCP flow")
            #expect((tcpFlow?["fwd"] as? [String: Any])?["tcp_flags"] as? [String] == ["FIN", "SYN", "PSH", "ACK"], "\(name): flags")
        }
        // Every captured packet is accounted: in a flow, or counted as not IP (ARP).
        let stats = try #require(report["stats"] as? [String: Any])
        let total = try Command.check(["tcpdump", "-r", pcap.path, "-n"]).stdout.split(separator: "\n").count
        #expect(stats["packets_seen"] as? Int == total)
        #expect((stats["packets_accounted"] as? Int ?? 0) + (stats["not_ip"] as? Int ?? 0) == total)
    }

    /// Received plus sent packets of an interface.
    static func packets(_ lab: NetworkLab, _ ns: String, _ dev: String) throws -> UInt64 {
        try lab.counter("rx_packets", interface: dev, in: ns) + lab.counter("tx_packets", interface: dev, in: ns)
    }

    /// Waits until a socket listens on `port` in `ns` (`-t` TCP, `-u` UDP).
    static func waitForListener(_ lab: NetworkLab, _ ns: String, _ proto: String, port: Int) throws {
        try Wait.blockingUntil("a listener on port \(port) in \(ns)", timeout: 10) {
            !(try lab.check(in: ns, ["ss", "-Hln", proto, "sport = :\(port)"]).stdout.isEmpty)
        }
    }

    /// Sums packets and IP bytes of the flows matching a protocol (and destination port).
    static func counts(_ flows: [[String: Any]], protocol proto: String, port: Int?) -> Counts? {
        let matching = flows.filter { $0["protocol"] as? String == proto && (port == nil || $0["dst_port"] as? Int == port) }
        guard !matching.isEmpty else { return nil }
        var c = Counts(fwdPackets: 0, fwdBytes: 0, revPackets: 0, revBytes: 0)
        for flow in matching {
            let fwd = flow["fwd"] as? [String: Any] ?? [:], rev = flow["rev"] as? [String: Any] ?? [:]
            c.fwdPackets += fwd["packets"] as? Int ?? 0
            c.fwdBytes += fwd["bytes"] as? Int ?? 0
            c.revPackets += rev["packets"] as? Int ?? 0
            c.revBytes += rev["bytes"] as? Int ?? 0
        }
        return c
    }

    /// Packets and IP lengths per service port (0 for ICMP) from `tcpdump -v`.
    static func oracle(_ pcap: URL) throws -> [Int: Counts] {
        let text = try Command.check(["tcpdump", "-r", pcap.path, "-n", "-v", "-t"]).stdout
        var result: [Int: Counts] = [:]
        var pendingLength: Int?
        for line in text.split(separator: "\n") {
            // Line 1: "IP (tos 0x0, ttl 64, ..., proto TCP (6), length 60)"; line 2: "    a.b.c.d.p > e.f.g.h.q: ..."
            if line.hasPrefix("IP "), let range = line.range(of: "length ") {
                pendingLength = Int(line[range.upperBound...].prefix(while: \.isNumber))
                continue
            }
            guard let length = pendingLength else { continue }
            pendingLength = nil
            let parts = line.trimmingCharacters(in: .whitespaces).split(separator: " ")
            guard parts.count >= 3 else { continue }
            let src = String(parts[0]), dst = String(parts[2].dropLast())
            let fromClient = src.hasPrefix(client)
            let port: Int
            if line.contains("ICMP") { port = 0 } else {
                let servicePort = fromClient ? dst : src
                port = Int(servicePort.split(separator: ".").last ?? "") ?? -1
            }
            var c = result[port] ?? Counts(fwdPackets: 0, fwdBytes: 0, revPackets: 0, revBytes: 0)
            if fromClient { c.fwdPackets += 1; c.fwdBytes += length } else { c.revPackets += 1; c.revBytes += length }
            result[port] = c
        }
        return result
    }
}
