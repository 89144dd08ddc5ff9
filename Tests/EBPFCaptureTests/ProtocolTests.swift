import EBPFCapture
import FlowForestCore
import FlowForestLab
import Foundation
import Logging
import Testing

/// IPv6, VLAN-tagged and fragmented traffic produce the flows the parsing
/// rules in `bpf/flow_types.h` promise, in every attach mode.
@Suite("eBPF protocols (root, namespace lab)", .serialized, .enabled(if: Command.isRoot))
struct ProtocolTests {
    static func find(_ result: CaptureResult, proto: UInt8, sport: UInt16, dport: UInt16) -> FlowRecord? {
        result.records.values.first { $0.ipProtocol == proto && $0.sourcePort == sport && $0.destinationPort == dport }
    }

    @Test("IPv6 ping is one ICMPv6 flow with both directions", arguments: [EBPFAttachMode.tc, .xdp, .socket])
    func ipv6(mode: EBPFAttachMode) async throws {
        let lab = try SensorLab(ipv6: true)
        defer { lab.lab.teardown() }
        let source = try lab.source(mode)
        let result = try await capture(source, in: lab, rxOnly: mode == .xdp) {
            try lab.lab.check(in: lab.gen, ["ping", "-6", "-c", "5", "-i", "0.05", "-s", "56", "2001:2::2"])
        }
        let flow = try #require(Self.find(result, proto: IPProtocol.icmpv6, sport: 128, dport: 129))
        #expect(flow.sourceAddress == IPAddress("2001:2::1"))
        #expect(flow.destinationAddress == IPAddress("2001:2::2"))
        // The request enters the sensor's interface; with xdp (ingress only) the replies are not seen.
        #expect(flow.forward.packets == 5)
        #expect(flow.forward.bytes == 5 * 104)  // 40 + 8 + 56
        #expect(flow.reverse.packets == (mode == .xdp ? 0 : 5))
        #expect(flow.forward.icmpType == 128)
        #expect(flow.interfaceName == lab.sensorInterface)
        #expect(result.statistics.malformed == 0)
    }

    @Test("on loopback, which sees each packet leave and come back, a ping is one flow with each packet counted once",
          arguments: [EBPFAttachMode.tc, .socket])
    func loopback(mode: EBPFAttachMode) async throws {
        let lab = try SensorLab()
        defer { lab.lab.teardown() }
        try lab.lab.check(in: lab.sensor, ["ip", "link", "set", "lo", "up"])
        var logger = Logger(label: "ebpf-test")
        logger.logLevel = .warning
        let source = try EBPFFlowSource(
            configuration: EBPFConfiguration(mode: mode, interfaces: ["lo"], pollInterval: 0.25, namespace: lab.sensor),
            logger: logger)
        let collector = LiveCollector(source)
        let result = try await collector.stop(source) {
            try await onThread { try lab.lab.check(in: lab.sensor, ["ping", "-c", "5", "-i", "0.05", "127.0.0.1"]) }
            try await collector.wait(for: "the five echo replies") { r in
                r.records.values.contains { $0.ipProtocol == IPProtocol.icmp && $0.reverse.packets >= 5 }
            }
        }
        let flow = try #require(Self.find(result, proto: IPProtocol.icmp, sport: 8, dport: 0))
        #expect(flow.forward.packets == 5 && flow.reverse.packets == 5, "\(flow.forward.packets) requests, \(flow.reverse.packets) replies")
        #expect(flow.forward.bytes == 5 * 84)
        #expect(result.statistics.packetsSeen == 10, "each of the ten packets seen once: \(result.statistics.packetsSeen)")
    }

    @Test("VLAN ids come from the outer tag, 802.1Q and 802.1ad", arguments: [EBPFAttachMode.tc, .xdp, .socket])
    func vlan(mode: EBPFAttachMode) async throws {
        let lab = try SensorLab()
        defer { lab.lab.teardown() }
        let source = try lab.source(mode)
        let single = "{ eth(da=02:00:00:00:00:02, sa=02:00:00:00:00:01), vlan(id=100), ipv4(sa=198.18.1.1, da=198.18.1.2), udp(sp=4000, dp=53), fill(0, 30) }"
        let double = "{ eth(da=02:00:00:00:00:02, sa=02:00:00:00:00:01), vlan(tpid=0x88a8, id=200), vlan(id=300), ipv4(sa=198.18.2.1, da=198.18.2.2), udp(sp=4001, dp=53), fill(0, 30) }"
        let result = try await capture(source, in: lab, rxOnly: mode == .xdp) {
            try lab.trafgen(single, packets: 7)
            try lab.trafgen(double, packets: 9)
        }
        let a = try #require(Self.find(result, proto: IPProtocol.udp, sport: 4000, dport: 53))
        let b = try #require(Self.find(result, proto: IPProtocol.udp, sport: 4001, dport: 53))
        #expect(a.vlan == 100)
        #expect(a.forward.packets == 7)
        #expect(a.forward.bytes == 7 * 58)  // 20 + 8 + 30
        #expect(a.sourceAddress == IPAddress("198.18.1.1"))
        #expect(b.vlan == 200)
        #expect(b.forward.packets == 9)
        #expect(b.destinationAddress == IPAddress("198.18.2.2"))
        #expect(result.statistics.malformed == 0)
    }

    @Test("fragments: ports from the first, later fragments in a port-less flow", arguments: [EBPFAttachMode.tc, .socket])
    func fragments(mode: EBPFAttachMode) async throws {
        let lab = try SensorLab(ipv6: true)
        defer { lab.lab.teardown() }
        let source = try lab.source(mode)
        let result = try await capture(source, in: lab, rxOnly: mode == .xdp) {
            // 3000 bytes of ICMP data: three IPv4 fragments of 1500, 1500 and 68 bytes each way.
            try lab.lab.check(in: lab.gen, ["ping", "-4", "-c", "3", "-i", "0.05", "-s", "3000", "198.18.0.2"])
            try lab.lab.check(in: lab.gen, ["ping", "-6", "-c", "2", "-i", "0.05", "-s", "3000", "2001:2::2"])
        }
        let icmp = try #require(Self.find(result, proto: IPProtocol.icmp, sport: 8, dport: 0))
        #expect(icmp.forward.packets == 3)
        #expect(icmp.forward.bytes == 3 * 1500)
        #expect(icmp.reverse.packets == 3)
        let later = try #require(Self.find(result, proto: IPProtocol.icmp, sport: 0, dport: 0))
        #expect(later.forward.packets == 6)
        #expect(later.forward.bytes == 3 * (1500 + 68))
        #expect(later.reverse.packets == 6)
        #expect(later.forward.payloadPackets == 6)

        let icmp6 = try #require(Self.find(result, proto: IPProtocol.icmpv6, sport: 128, dport: 129))
        #expect(icmp6.forward.packets == 2)
        #expect(icmp6.reverse.packets == 2)
        let later6 = try #require(Self.find(result, proto: IPProtocol.icmpv6, sport: 0, dport: 0))
        #expect(later6.forward.packets == 4)
        #expect(later6.reverse.packets == 4)
        // Every fragment's bytes: the 3008-byte ICMPv6 message plus a 48-byte
        // header (IPv6 + fragment) per fragment, across three fragments.
        #expect(icmp6.forward.bytes + later6.forward.bytes == 2 * (3008 + 3 * 48))
        #expect(result.statistics.malformed == 0)
    }
}
