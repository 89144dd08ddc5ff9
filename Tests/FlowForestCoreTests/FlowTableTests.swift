import FlowForestCore
import Testing

private let client = IPAddress("198.18.0.10")!
private let server = IPAddress("198.18.0.1")!

private func packet(_ t: Double, from src: IPAddress, _ sport: UInt16, to dst: IPAddress, _ dport: UInt16,
                    length: UInt32 = 60, flags: TCPFlags = [.ack], proto: UInt8 = IPProtocol.tcp) -> PacketSummary {
    PacketSummary(timestampNs: UInt64(t * 1e9), source: src, destination: dst, sourcePort: sport, destinationPort: dport,
                  ipProtocol: proto, ipLength: length, payloadLength: length > 52 ? length - 52 : 0, tcpFlags: flags, tcpWindow: 1000)
}

@Suite("Flow table")
struct FlowTableTests {
    @Test("Both directions merge into one flow; the SYN sender is the initiator")
    func bidirectional() throws {
        var table = FlowTable()
        table.add(packet(0.0, from: client, 40000, to: server, 80, length: 60, flags: [.syn]))
        table.add(packet(0.001, from: server, 80, to: client, 40000, length: 60, flags: [.syn, .ack]))
        table.add(packet(0.002, from: client, 40000, to: server, 80, length: 52, flags: [.ack]))
        table.add(packet(0.010, from: client, 40000, to: server, 80, length: 552, flags: [.psh, .ack]))
        let records = table.advance(to: UInt64(0.5e9))
        let flow = try #require(records.first)
        #expect(records.count == 1 && flow.state == .active)
        #expect(flow.sourceAddress == client && flow.sourcePort == 40000)
        #expect(flow.forward.packets == 3 && flow.forward.bytes == 664)
        #expect(flow.reverse.packets == 1 && flow.reverse.bytes == 60)
        #expect(flow.forward.synCount == 1 && flow.reverse.synAckCount == 1)
        #expect(flow.handshakeCompleted)
        #expect(flow.forward.minLength == 52 && flow.forward.maxLength == 552)
        #expect(flow.forward.sumSquaredLength == 60 * 60 + 52 * 52 + 552 * 552)
        #expect(flow.forward.iatMinUs == 2_000 && flow.forward.iatMaxUs == 8_000 && flow.forward.iatSumUs == 10_000)
        #expect(flow.forward.payloadPackets == 2)
        #expect(flow.forward.flags == [.syn, .ack, .psh])
    }

    @Test("A SYN-ACK seen first makes its receiver the initiator")
    func synAckFirst() throws {
        var table = FlowTable()
        table.add(packet(0, from: server, 80, to: client, 40000, flags: [.syn, .ack]))
        let flow = try #require(table.advance(to: 1).first)
        #expect(flow.sourceAddress == client && flow.destinationPort == 80)
        #expect(flow.reverse.synAckCount == 1 && flow.forward.packets == 0)
    }

    @Test("Idle timeout ends a flow once, with final totals")
    func idle() throws {
        var table = FlowTable(configuration: FlowTableConfiguration(idleTimeoutNs: 15_000_000_000, activeTimeoutNs: 60_000_000_000))
        table.add(packet(0, from: client, 5000, to: server, 53, proto: IPProtocol.udp))
        #expect(table.advance(to: UInt64(1e9)).map(\.state) == [.active])
        #expect(table.advance(to: UInt64(14e9)).isEmpty)
        let ended = table.advance(to: UInt64(15e9))
        #expect(ended.count == 1 && ended[0].state == .ended && ended[0].endReason == .idle)
        #expect(table.activeCount == 0 && table.statistics.flowsEnded == 1)
        #expect(table.advance(to: UInt64(30e9)).isEmpty)
    }

    @Test("RST ends a TCP flow after the close timeout; FIN one way does not")
    func tcpClose() {
        var table = FlowTable()
        table.add(packet(0, from: client, 1, to: server, 22, flags: [.syn]))
        table.add(packet(0.001, from: server, 22, to: client, 1, flags: [.rst, .ack]))
        table.add(packet(0, from: client, 2, to: server, 22, flags: [.fin, .ack]))
        _ = table.advance(to: UInt64(0.5e9))
        let ended = table.advance(to: UInt64(1.5e9))
        #expect(ended.count == 1 && ended[0].sourcePort == 1 && ended[0].endReason == .tcpClose)
        #expect(table.activeCount == 1)
    }

    @Test("Active timeout emits interim records with running totals and keeps the flow")
    func activeTimeout() {
        var table = FlowTable(configuration: FlowTableConfiguration(idleTimeoutNs: 15_000_000_000, activeTimeoutNs: 10_000_000_000))
        var interims: [FlowRecord] = []
        for second in 0..<25 {
            table.add(packet(Double(second), from: client, 7, to: server, 8, proto: IPProtocol.udp))
            interims += table.advance(to: UInt64(Double(second) * 1e9 + 0.5e9)).filter { $0.state == .interim }
        }
        #expect(interims.map(\.forward.packets) == [11, 21])
        #expect(Set(interims.map(\.id)).count == 1)
        let final = table.flush()
        #expect(final.count == 1 && final[0].forward.packets == 25 && final[0].endReason == .shutdown)
    }

    @Test("A full table counts the packets it could not place")
    func tableFull() {
        var table = FlowTable(configuration: FlowTableConfiguration(idleTimeoutNs: 15_000_000_000, activeTimeoutNs: 60_000_000_000, maxFlows: 2))
        for port in UInt16(1)...5 { table.add(packet(0, from: client, port, to: server, 80)) }
        table.add(packet(0, from: client, 1, to: server, 80))
        #expect(table.activeCount == 2)
        #expect(table.statistics.tableFull == 3)
        #expect(table.statistics.packetsSeen == 6 && table.statistics.packetsAccounted == 3)
    }

    @Test("Ids counted in a block of 2^32 (an exporter's) wrap within it instead of running into the next block")
    func idBlock() {
        let block: UInt64 = 1 << 52 | 5 << 32
        var table = FlowTable(firstID: block | 0xFFFF_FFFE, idBits: 32)
        for port in UInt16(1)...3 { table.add(packet(0, from: client, port, to: server, 80)) }
        let ids = table.flush().map(\.id).sorted()
        #expect(ids == [block, block | 0xFFFF_FFFE, block | 0xFFFF_FFFF])
    }

    @Test("Only flows that changed are re-emitted as active")
    func dirtyTracking() {
        var table = FlowTable()
        table.add(packet(0, from: client, 1, to: server, 80))
        table.add(packet(0, from: client, 2, to: server, 80))
        #expect(table.advance(to: 1).count == 2)
        table.add(packet(0.5, from: client, 2, to: server, 80))
        let changed = table.advance(to: UInt64(1e9))
        #expect(changed.map(\.sourcePort) == [2])
    }
}
