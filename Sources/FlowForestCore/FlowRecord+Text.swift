/// Plain-text renderings of flows for terminals and spreadsheets.
public enum FlowText {
    /// Column names of ``csvRow(_:sensor:)``.
    public static let csvHeader = "id,first_seen,last_seen,duration_ms,protocol,src_ip,src_port,dst_ip,dst_port,vlan,interface,fwd_packets,fwd_bytes,fwd_tcp_flags,rev_packets,rev_bytes,rev_tcp_flags,state,end_reason"

    /// One CSV line (RFC 4180 quoting where needed); empty cells for nulls.
    public static func csvRow(_ flow: FlowRecord) -> String {
        let j = flow.json()
        func cell(_ value: (any CustomStringConvertible)?) -> String {
            guard let value else { return "" }
            let s = value.description
            return s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" }) ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
        }
        let cells: [String] = [
            cell(j.id), cell(j.firstSeen), cell(j.lastSeen), cell(j.durationMs), cell(j.protocol),
            cell(j.srcIP), cell(j.srcPort), cell(j.dstIP), cell(j.dstPort), cell(j.vlan), cell(j.interface),
            cell(j.fwd.packets), cell(j.fwd.bytes), cell(j.fwd.tcpFlags.joined(separator: "|")),
            cell(j.rev.packets), cell(j.rev.bytes), cell(j.rev.tcpFlags.joined(separator: "|")),
            cell(j.state.rawValue), cell(j.endReason?.rawValue),
        ]
        return cells.joined(separator: ",")
    }

    /// Header of ``tableRow(_:)``.
    public static let tableHeader = pad("PROTO", 6) + pad("SOURCE", 42) + pad("DESTINATION", 42) + pad("FWD PKTS", 9, right: true) + pad("FWD BYTES", 11, right: true) + pad("REV PKTS", 9, right: true) + pad("REV BYTES", 11, right: true) + pad("DURATION", 10, right: true) + "  FLAGS"

    /// One aligned line for a terminal.
    public static func tableRow(_ flow: FlowRecord) -> String {
        let j = flow.json()
        func endpoint(_ ip: String, _ port: UInt16?) -> String {
            guard let port else { return ip }
            return ip.contains(":") ? "[\(ip)]:\(port)" : "\(ip):\(port)"
        }
        var source = endpoint(j.srcIP, j.srcPort)
        var destination = endpoint(j.dstIP, j.dstPort)
        if let type = j.icmpType { source += " type \(type)"; destination += " code \(j.icmpCode ?? 0)" }
        let flags = Set(j.fwd.tcpFlags + j.rev.tcpFlags)
        let flagText = TCPFlags(rawValue: flow.forward.flags.rawValue | flow.reverse.flags.rawValue).names.filter(flags.contains).joined(separator: ",")
        let seconds = Double(flow.durationNs) / 1e9
        let duration = seconds < 10 ? String(Int(seconds * 1000)) + "ms" : String(Int(seconds)) + "s"
        return pad(j.protocol, 6) + pad(source, 42) + pad(destination, 42)
            + pad(String(j.fwd.packets), 9, right: true) + pad(String(j.fwd.bytes), 11, right: true)
            + pad(String(j.rev.packets), 9, right: true) + pad(String(j.rev.bytes), 11, right: true)
            + pad(duration, 10, right: true) + "  " + flagText
    }

    private static func pad(_ s: String, _ width: Int, right: Bool = false) -> String {
        let fill = String(repeating: " ", count: max(1, width - s.count))
        return right ? fill + s : s + fill
    }
}

extension String {
    fileprivate func replacingOccurrences(of target: String, with replacement: String) -> String {
        split(separator: Character(target), omittingEmptySubsequences: false).joined(separator: replacement)
    }
}
