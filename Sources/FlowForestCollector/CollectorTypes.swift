public import FlowForestCore

/// The export protocols the collector reads, by the version number every
/// one of them starts its datagrams with.
public enum ExportVersion: UInt16, Sendable, CaseIterable, CustomStringConvertible {
    case netflowV5 = 5
    case netflowV9 = 9
    case ipfix = 10

    /// The label value in metrics: `v5`, `v9`, `ipfix`.
    public var description: String {
        switch self {
        case .netflowV5: "v5"
        case .netflowV9: "v9"
        case .ipfix: "ipfix"
        }
    }
}

/// Why a datagram, or part of one, was not decoded. Each is counted per
/// exporter in `flowforest_collector_malformed_total{reason}`.
public enum MalformedReason: String, Sendable, CaseIterable {
    /// Shorter than its header, or than the length or record count the header states.
    case truncated
    /// Not NetFlow v5, v9 or IPFIX.
    case unknownVersion = "unknown_version"
    /// A header field out of range (an IPFIX length below 16, a v5 count of 0 or above 30).
    case badHeader = "bad_header"
    /// A set shorter than its header, running past the message, or with a reserved id.
    case badSet = "bad_set"
    /// A template or options template that does not parse (id below 256, fields past the set).
    case badTemplate = "bad_template"
    /// A template field of length 0, or a template whose records would have no bytes.
    case zeroFieldLength = "zero_field_length"
    /// A template with more fields, or longer records, than the collector accepts.
    case templateTooLarge = "template_too_large"
    /// A data record that runs past its set (a variable-length field too
    /// long), or whose source and destination are of two address families.
    case badRecord = "bad_record"
    /// A new observation domain (source id, engine, IPFIX session) beyond the
    /// exporter's maximum, none of its others silent long enough to give way.
    case tooManyDomains = "too_many_domains"
    /// A data record claiming more packets or bytes than any link carries
    /// in one record (2^48, sampling applied); the record is not used.
    case implausibleCount = "implausible_count"
    /// A data record with no source or destination address, or no packets
    /// in either direction, among the elements FlowForest reads: nothing of
    /// it can be a flow (an exporter's non-flow data, or counts in elements
    /// FlowForest does not read).
    case unusableRecord = "unusable_record"
    /// A sampling interval above 2^24 (options record or data record): no
    /// exporter samples that sparsely, and multiplied into counts it would
    /// make one packet millions; the interval is not used.
    case implausibleSampling = "implausible_sampling"

    /// The message header itself did not read: nothing of the datagram
    /// says an exporter sent it.
    public var isHeader: Bool { self == .truncated || self == .unknownVersion || self == .badHeader }
}

/// Why data was dropped after it was read: `flowforest_collector_dropped_sets_total{reason}`.
public enum DropReason: String, Sendable, CaseIterable {
    /// Its template did not arrive within the hold time.
    case noTemplate = "no_template"
    /// The hold for data before its template was full.
    case holdFull = "hold_full"
}

/// One exporter's template space: the datagram's source address and the
/// observation domain (IPFIX), source id (v9) or engine type and id (v5);
/// for IPFIX also the source port, since RFC 7011 scopes templates and
/// sequence numbers to the transport session, so two exporting processes
/// on one host never read each other's templates. (RFC 3954 scopes v9 to
/// the address and source id alone; `port` is 0 there and for v5.)
public struct ExporterDomain: Hashable, Sendable {
    /// Part of the key: one host exporting v5 and v9 (two softflowd
    /// processes, engine 0 and source id 0) keeps two sequences, which count
    /// records and datagrams respectively.
    public var version: ExportVersion
    public var address: IPAddress
    public var port: UInt16
    public var domain: UInt32

    public init(version: ExportVersion, address: IPAddress, port: UInt16 = 0, domain: UInt32) {
        self.version = version
        self.address = address
        self.port = port
        self.domain = domain
    }
}

/// Bounds on what exporters can make the collector hold. Every bound is
/// counted when reached; none is ever exceeded.
public struct CollectorLimits: Sendable, Hashable {
    /// Exporters (source addresses) tracked; datagrams from further ones are refused and counted.
    public var maxExporters: Int = 256
    /// Observation domains (source ids, engines, IPFIX sessions) per
    /// exporter address. A further one takes the place of one silent for
    /// ``domainIdleNs`` (an exporter that restarted from a new port), else its
    /// datagrams are counted as malformed.
    public var maxDomainsPerExporter: Int = 64
    /// How long, by the collector's clock, a domain must have been silent
    /// before a new one may take its place (with its templates).
    public var domainIdleNs: UInt64 = 600_000_000_000
    /// Templates held per exporter over all its domains; more are refused and counted.
    public var maxTemplatesPerExporter: Int = 256
    /// Fields per template.
    public var maxTemplateFields: Int = 128
    /// Sets of data whose template has not arrived, held per exporter.
    public var maxHeldSets: Int = 64
    /// Bytes of such sets held per exporter.
    public var maxHeldBytes: Int = 128 * 1024
    /// How long, by the collector's clock, data waits for its template.
    public var holdNs: UInt64 = 10_000_000_000
    /// How long, by the collector's clock, skipped sequence numbers wait for
    /// a datagram reordered behind later ones before they count as lost.
    public var reorderNs: UInt64 = 2_000_000_000

    public init() {}
}

