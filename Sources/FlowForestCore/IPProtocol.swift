/// IP protocol numbers FlowForest names; anything else is shown as its number.
public enum IPProtocol {
    public static let icmp: UInt8 = 1
    public static let tcp: UInt8 = 6
    public static let udp: UInt8 = 17
    public static let icmpv6: UInt8 = 58
    public static let sctp: UInt8 = 132

    /// True for the protocols whose flows carry ports (TCP, UDP, SCTP).
    public static func hasPorts(_ number: UInt8) -> Bool { number == tcp || number == udp || number == sctp }

    private static let names: [UInt8: String] = [
        1: "icmp", 2: "igmp", 4: "ipip", 6: "tcp", 17: "udp", 41: "ipv6", 47: "gre",
        50: "esp", 51: "ah", 58: "icmpv6", 89: "ospf", 103: "pim", 112: "vrrp", 132: "sctp",
    ]

    /// Lower-case protocol name, or the decimal number where none exists.
    public static func name(_ number: UInt8) -> String {
        names[number] ?? String(number)
    }

    /// Parses a protocol given as a name (`"tcp"`) or a number (`"6"`).
    public static func number(_ text: String) -> UInt8? {
        if let n = UInt8(text) { return n }
        let lower = text.lowercased()
        return names.first(where: { $0.value == lower })?.key
    }

    /// True for ICMP and ICMPv6.
    public static func isICMP(_ number: UInt8) -> Bool { number == icmp || number == icmpv6 }

    /// Zeek's port convention for ICMP: the sender's "port" is the type and the
    /// receiver's is the counterpart type of a request/reply pair (so a ping
    /// and its replies share one flow), otherwise the code.
    public static func icmpPorts(type: UInt8, code: UInt8, v6: Bool) -> (source: UInt16, destination: UInt16) {
        let counterpart: [UInt8: UInt8] = v6
            ? [128: 129, 129: 128, 130: 131, 131: 130, 133: 134, 134: 133, 135: 136, 136: 135]
            : [8: 0, 0: 8, 13: 14, 14: 13, 15: 16, 16: 15, 17: 18, 18: 17]
        return (UInt16(type), UInt16(counterpart[type] ?? code))
    }
}
