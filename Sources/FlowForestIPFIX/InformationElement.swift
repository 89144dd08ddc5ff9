/// IPFIX information elements FlowForest exports (RFC 7012 and IANA's
/// registry), with the reverse elements of RFC 5103 for biflows.
public struct InformationElement: Hashable, Sendable {
    /// Element id, without the enterprise bit.
    public let id: UInt16
    /// Field length in a data record, in bytes.
    public let length: UInt16
    /// Private enterprise number; non-nil sets the enterprise bit.
    public let enterprise: UInt32?

    public init(id: UInt16, length: UInt16, enterprise: UInt32? = nil) {
        self.id = id
        self.length = length
        self.enterprise = enterprise
    }

    /// RFC 5103's enterprise number for reverse elements.
    public static let reversePEN: UInt32 = 29305

    /// The RFC 5103 reverse counterpart of this element.
    public var reverse: InformationElement { InformationElement(id: id, length: length, enterprise: Self.reversePEN) }

    /// Bytes this element takes in a template record.
    var templateLength: Int { enterprise == nil ? 4 : 8 }

    public static let octetDeltaCount = InformationElement(id: 1, length: 8)
    public static let packetDeltaCount = InformationElement(id: 2, length: 8)
    public static let protocolIdentifier = InformationElement(id: 4, length: 1)
    public static let tcpControlBits = InformationElement(id: 6, length: 2)
    public static let sourceTransportPort = InformationElement(id: 7, length: 2)
    public static let sourceIPv4Address = InformationElement(id: 8, length: 4)
    public static let ingressInterface = InformationElement(id: 10, length: 4)
    public static let destinationTransportPort = InformationElement(id: 11, length: 2)
    public static let destinationIPv4Address = InformationElement(id: 12, length: 4)
    public static let sourceIPv6Address = InformationElement(id: 27, length: 16)
    public static let destinationIPv6Address = InformationElement(id: 28, length: 16)
    public static let icmpTypeCodeIPv4 = InformationElement(id: 32, length: 2)
    public static let vlanId = InformationElement(id: 58, length: 2)
    public static let flowEndReason = InformationElement(id: 136, length: 1)
    public static let icmpTypeCodeIPv6 = InformationElement(id: 139, length: 2)
    public static let flowStartMilliseconds = InformationElement(id: 152, length: 8)
    public static let flowEndMilliseconds = InformationElement(id: 153, length: 8)
}

/// IPFIX flowEndReason values (IANA): why a record was exported.
public enum IPFIXEndReason: UInt8, Sendable {
    case idleTimeout = 1
    case activeTimeout = 2
    case endOfFlow = 3
    case forcedEnd = 4
    case lackOfResources = 5
}
