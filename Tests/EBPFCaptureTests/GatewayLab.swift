import EBPFCapture
import FlowForestCore
import FlowForestLab
import Foundation
import Logging

/// A router between two networks: `client` (198.18.1.1) — `gateway`
/// (198.18.1.2 on `clientSide`, 198.18.2.2 on `serverSide`) — `server`
/// (198.18.2.1). The gateway forwards between its two veths, with reverse-path
/// filtering off so forged sources pass; the sensor watches both of its
/// interfaces. IPv6 is off everywhere, so no neighbour discovery disturbs counts.
final class GatewayLab: Sendable {
    let lab: NetworkLab
    let client: String
    let gateway: String
    let server: String
    let clientSide: String
    let serverSide: String
    let clientAddress = "198.18.1.1"
    let serverAddress = "198.18.2.1"

    init() throws {
        lab = try NetworkLab()
        do {
            client = try lab.addNamespace("cli")
            gateway = try lab.addNamespace("gw")
            server = try lab.addNamespace("srv")
            for ns in [client, gateway, server] {
                try lab.check(in: ns, ["sh", "-c", "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6; echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6"])
            }
            var clientEnd = "", serverEnd = ""
            (clientEnd, clientSide) = try lab.connect(client, address: "198.18.1.1/24", gateway, address: "198.18.1.2/24", queues: 2)
            (serverSide, serverEnd) = try lab.connect(gateway, address: "198.18.2.2/24", server, address: "198.18.2.1/24", queues: 2)
            _ = (clientEnd, serverEnd)
            try lab.check(in: client, ["ip", "route", "add", "default", "via", "198.18.1.2"])
            try lab.check(in: server, ["ip", "route", "add", "default", "via", "198.18.2.2"])
            try lab.check(in: gateway, ["sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward; for f in /proc/sys/net/ipv4/conf/*/rp_filter; do echo 0 > $f; done"])
        } catch {
            lab.teardown()
            throw error
        }
    }

    deinit { lab.teardown() }

    /// Received plus sent packets of both gateway interfaces: every packet
    /// the sensor's hooks see.
    func gatewayPackets() throws -> UInt64 {
        var total: UInt64 = 0
        for interface in [clientSide, serverSide] {
            total += try lab.counter("rx_packets", interface: interface, in: gateway)
            total += try lab.counter("tx_packets", interface: interface, in: gateway)
        }
        return total
    }

    func source(_ mode: EBPFAttachMode, mapEntries: Int = EBPFConfiguration.defaultMapEntries,
                pollInterval: Double = 0.25) throws -> EBPFFlowSource {
        var logger = Logger(label: "ebpf-gateway-test")
        logger.logLevel = .warning
        return try EBPFFlowSource(
            configuration: EBPFConfiguration(
                mode: mode, interfaces: [clientSide, serverSide], pollInterval: pollInterval, mapEntries: mapEntries,
                namespace: gateway),
            logger: logger)
    }
}
