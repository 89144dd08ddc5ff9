import FlowForestCore
import FlowForestPipeline
import FlowForestServer
import FlowForestStore
import Foundation
import Hummingbird
import HTTPTypes
import HummingbirdTesting
import Testing
import FlowForestTestSupport
import PcapCapture

func storedAnomaly(_ i: Int, src: String, dst: String, severity: Severity, kind: AnomalyKind = .host) -> PendingAnomaly {
    PendingAnomaly(anomaly: Anomaly(
        sensor: "test-sensor", timeMs: 1_790_000_000_000 + Int64(i) * 1000, kind: kind,
        sourceAddress: IPAddress(src), destinationAddress: IPAddress(dst), sourcePort: nil, destinationPort: 22,
        ipProtocol: IPProtocol.tcp, score: 0.8, severity: severity, label: .portScan,
        explanation: [ExplanationItem(feature: "distinct_dst_ports_10s", value: 412, baseline: 9, direction: "above",
                                      text: "distinct destination ports 412 (baseline p99: 9)")],
        features: ["distinct_dst_ports_10s": 412]))
}

/// Writes a classic pcap file (Ethernet) of UDP packets.
func writePcap(_ path: String, packets: [(src: [UInt8], dst: [UInt8], sport: UInt16, dport: UInt16, payload: Int, time: Double)]) throws {
    var data: [UInt8] = []
    func le32(_ v: UInt32) { data += withUnsafeBytes(of: v.littleEndian, Array.init) }
    func le16(_ v: UInt16) { data += withUnsafeBytes(of: v.littleEndian, Array.init) }
    func be16(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xff)] }
    le32(0xa1b2_c3d4); le16(2); le16(4); le32(0); le32(0); le32(65535); le32(1)
    for p in packets {
        let ipLength = 20 + 8 + p.payload
        var frame: [UInt8] = [2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00]
        frame += [0x45, 0] + be16(UInt16(ipLength)) + [0, 0, 0, 0, 64, 17, 0, 0] + p.src + p.dst
        frame += be16(p.sport) + be16(p.dport) + be16(UInt16(8 + p.payload)) + [0, 0]
        frame += [UInt8](repeating: 0x61, count: p.payload)
        le32(UInt32(p.time)); le32(UInt32((p.time - p.time.rounded(.down)) * 1e6))
        le32(UInt32(frame.count)); le32(UInt32(frame.count))
        data += frame
    }
    try Data(data).write(to: URL(fileURLWithPath: path))
}

/// A capture source that reports one poll's statistics, then ends.
struct OnePollSource: FlowSource {
    let mode: String
    let statistics: CaptureStatistics
    let activeFlows: Int

    func batches() -> AsyncThrowingStream<FlowBatch, any Error> {
        let batch = FlowBatch(timeNs: UInt64(Date().timeIntervalSince1970 * 1e9), records: [], statistics: statistics,
                              activeFlows: activeFlows)
        return AsyncThrowingStream { continuation in
            continuation.yield(batch)
            continuation.finish()
        }
    }

    func stop() {}
}

