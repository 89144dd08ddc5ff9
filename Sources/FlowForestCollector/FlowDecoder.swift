public import FlowForestCore

/// What one datagram gave: flows, and everything the collector counts about it.
public struct DecodeResult: Sendable {
    /// The export protocol, when the version was recognised.
    public var version: ExportVersion?
    /// One direction per flow record (two for an RFC 5103 biflow record),
    /// including records of earlier held sets whose template this datagram carried.
    public var flows: [UniflowSummary] = []
    /// Data records decoded (options records included).
    public var records = 0
    /// Reasons parts of the datagram were not decoded, one entry per occurrence.
    public var malformed: [MalformedReason] = []
    /// Datagrams (v9) or records (v5, IPFIX) the sequence number says were lost; 0 without a gap.
    public var sequenceGap: UInt64 = 0
    /// Templates refused because the exporter holds its maximum.
    public var templateRefusals = 0
    /// Data sets put on hold for a template that has not arrived.
    public var setsHeld = 0
    /// Held or new sets dropped, by reason.
    public var dropped: [DropReason: Int] = [:]
    /// The sampling interval an options record or v5 header announced, if any.
    public var samplingInterval: UInt64?
    /// True when the exporter was refused: the collector already tracks its maximum of exporters.
    public var refused = false
}

/// Decodes NetFlow v5, NetFlow v9 and IPFIX (RFC 7011) datagrams, telling
/// them apart by their version field, and keeps what the protocols make
/// stateful: templates per exporter and domain, the sampling interval from
/// options records, sequence numbers, and data held for a template that
/// has not arrived yet.
///
/// Every length is checked against the datagram; every kind of state has a
/// bound (``CollectorLimits``) and expires by the collector's clock, never
/// by times the exporter sent. Not thread-safe: one collector thread owns it.
public struct FlowDecoder: Sendable {
    struct DomainState: Sendable {
        /// The sequence number the next message should carry; nil when unknown.
        var expectedSequence: UInt32?
        var samplingInterval: UInt64 = 1
    }

    struct HeldSet: Sendable {
        var setID: UInt16
        var body: [UInt8]
        var context: MessageContext
    }

    public let limits: CollectorLimits
    var templates: TemplateStore
    var domains: [ExporterDomain: DomainState] = [:]
    var held: [IPAddress: [HeldSet]] = [:]
    private(set) var exporters: Set<IPAddress> = []
    var domainCount: [IPAddress: Int] = [:]
    var interfaceNames = InterfaceNames()

    public init(limits: CollectorLimits = CollectorLimits()) {
        self.limits = limits
        templates = TemplateStore(maxPerExporter: limits.maxTemplatesPerExporter)
    }

    /// Exporters seen (bounded by ``CollectorLimits/maxExporters``).
    public var exporterCount: Int { exporters.count }

    /// Data sets held for their templates, per exporter.
    public func heldSets(from exporter: IPAddress) -> Int { held[exporter]?.count ?? 0 }

    /// Decodes one datagram from `exporter` that arrived at `receivedNs` (the collector's clock).
    public mutating func decode(_ datagram: [UInt8], from exporter: IPAddress, receivedNs: UInt64) -> DecodeResult {
        var result = DecodeResult()
        if !exporters.contains(exporter) {
            guard exporters.count < limits.maxExporters else {
                result.refused = true
                return result
            }
            exporters.insert(exporter)
        }
        var cursor = ByteCursor(datagram)
        guard let versionNumber = cursor.u16() else {
            result.malformed.append(.truncated)
            return result
        }
        guard let version = ExportVersion(rawValue: versionNumber) else {
            result.malformed.append(.unknownVersion)
            return result
        }
        result.version = version
        switch version {
        case .netflowV5: decodeV5(datagram, exporter: exporter, receivedNs: receivedNs, into: &result)
        case .netflowV9, .ipfix: decodeTemplated(datagram, version: version, exporter: exporter, receivedNs: receivedNs, into: &result)
        }
        return result
    }

    /// Drops held sets older than the hold time; returns how many, per exporter.
    public mutating func expireHeld(now: UInt64) -> [IPAddress: Int] {
        var dropped: [IPAddress: Int] = [:]
        for (address, sets) in held {
            let kept = sets.filter { now < $0.context.receivedNs || now - $0.context.receivedNs < limits.holdNs }
            if kept.count != sets.count {
                dropped[address] = sets.count - kept.count
                held[address] = kept.isEmpty ? nil : kept
            }
        }
        return dropped
    }

    /// Admits a message's domain: known, or new within the exporter's
    /// maximum (counted as malformed otherwise, and not decoded).
    mutating func admit(_ domain: ExporterDomain, into result: inout DecodeResult) -> Bool {
        if domains[domain] != nil { return true }
        guard domainCount[domain.address, default: 0] < limits.maxDomainsPerExporter else {
            result.malformed.append(.tooManyDomains)
            return false
        }
        domainCount[domain.address, default: 0] += 1
        domains[domain] = DomainState()
        return true
    }

    /// Checks a message's sequence number against the one expected, then
    /// sets the next expectation (nil when this message's count is unknown).
    mutating func checkSequence(_ sequence: UInt32, next: UInt32?, domain: ExporterDomain, into result: inout DecodeResult) {
        guard var state = domains[domain] else { return }
        if let expected = state.expectedSequence, sequence != expected {
            let ahead = sequence &- expected
            // Less than 2^31 ahead: a gap. Slightly behind: a late datagram,
            // which neither counts nor moves the expectation back. Far behind:
            // the exporter restarted.
            if ahead < 1 << 31 {
                result.sequenceGap = UInt64(ahead)
            } else if expected &- sequence < 1024 {
                domains[domain] = state
                return
            }
        }
        state.expectedSequence = next.map { sequence &+ $0 }
        domains[domain] = state
    }
}

/// The observation point names of records, ``exporterInterfaceName(_:interfaceIndex:)``,
/// made once per exporter and interface in a row rather than formatted for every record.
struct InterfaceNames: Sendable {
    private var last: (address: IPAddress, interfaceIndex: UInt32, name: String)?

    mutating func name(_ address: IPAddress, interfaceIndex: UInt32) -> String {
        if let last, last.address == address, last.interfaceIndex == interfaceIndex { return last.name }
        let name = exporterInterfaceName(address, interfaceIndex: interfaceIndex)
        last = (address, interfaceIndex, name)
        return name
    }
}
