public import FlowForestCore

/// What one datagram gave: flows, and everything the collector counts about it.
public struct DecodeResult: Sendable {
    /// The export protocol, when the version was recognised.
    public var version: ExportVersion?
    /// A known version with a header that reads: an exporter sent this.
    public var headerRead: Bool { version != nil && !malformed.contains(where: \.isHeader) }
    /// One direction per flow record (two for an RFC 5103 biflow record),
    /// including records of earlier held sets whose template this datagram carried.
    public var flows: [UniflowSummary] = []
    /// Data records decoded (options records included).
    public var records = 0
    /// Reasons parts of the datagram were not decoded, one entry per occurrence.
    public var malformed: [MalformedReason] = []
    /// Datagrams (v9) or records (v5, IPFIX) the sequence number says were lost; 0 without a gap.
    public var sequenceGap: UInt64 = 0
    /// True when the sequence number jumped too far to be loss (more than
    /// ``FlowDecoder/maxSequenceJump`` ahead, or far behind): the exporter
    /// restarted, or someone sent a number of their own choosing.
    public var sequenceReset = false
    /// Domains that took the place of one long silent (``FlowDecoder/admit(_:at:into:)``).
    public var domainsReplaced = 0
    /// Data records of a datagram that repeats one already taken (its
    /// sequence number is among the domain's latest): decoded, not used.
    public var duplicateRecords = 0
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
        /// The latest message's arrival, by the collector's clock.
        var lastSeenNs: UInt64 = 0
        /// Sequence numbers and content digests of the latest messages that
        /// carried data, at most ``FlowDecoder/recentSequences``: a message
        /// with both of one of them is a duplicate. (The number alone is not
        /// enough: an exporter that restarts numbers its messages from 0 again.)
        var recent: [(sequence: UInt32, digest: Int)] = []

        mutating func remember(_ sequence: UInt32, digest: Int) {
            if recent.count == FlowDecoder.recentSequences { recent.removeFirst() }
            recent.append((sequence, digest))
        }
    }

    /// A digest of a datagram's bytes, to tell its copies from other messages with its sequence number.
    static func digest(_ datagram: [UInt8]) -> Int {
        var hasher = Hasher()
        datagram.withUnsafeBytes { hasher.combine(bytes: $0) }
        return hasher.finalize()
    }

    /// Messages with data remembered per domain to tell a duplicate from a
    /// late datagram: one reordered further back than this is taken again.
    static let recentSequences = 32
    /// A sequence number this far or further ahead of the one expected is an
    /// exporter restart (or a number someone chose), not loss: 2^24 records
    /// or datagrams, more than any exporter sends between two messages.
    static let maxSequenceJump: UInt32 = 1 << 24

    struct HeldSet: Sendable {
        var setID: UInt16
        var body: [UInt8]
        var context: MessageContext
        /// The message it came in (``messages`` then), so a duplicate's held sets can go too.
        var message: UInt64
    }

    public let limits: CollectorLimits
    var templates: TemplateStore
    var domains: [ExporterDomain: DomainState] = [:]
    var held: [IPAddress: [HeldSet]] = [:]
    /// Templated messages decoded so far.
    var messages: UInt64 = 0
    private(set) var exporters: Set<IPAddress> = []
    /// Each exporter address's domains (at most ``CollectorLimits/maxDomainsPerExporter``).
    var domainsOf: [IPAddress: [ExporterDomain]] = [:]

    public init(limits: CollectorLimits = CollectorLimits()) {
        self.limits = limits
        templates = TemplateStore(maxPerExporter: limits.maxTemplatesPerExporter)
    }

    /// Exporters seen (bounded by ``CollectorLimits/maxExporters``).
    public var exporterCount: Int { exporters.count }

    /// Data sets held for their templates, per exporter.
    public func heldSets(from exporter: IPAddress) -> Int { held[exporter]?.count ?? 0 }

    /// Whether `exporter` holds one of the ``CollectorLimits/maxExporters`` places.
    public func holdsPlace(_ exporter: IPAddress) -> Bool { exporters.contains(exporter) }

    /// Decodes one datagram from `exporter`, sent from its UDP `port`, that
    /// arrived at `receivedNs` (the collector's clock). A new exporter takes
    /// a place only with a datagram whose header reads: junk sent from many
    /// addresses (a scanner, forged sources) takes none, so it cannot lock
    /// out the exporters that come later.
    public mutating func decode(_ datagram: [UInt8], from exporter: IPAddress, port: UInt16 = 0, receivedNs: UInt64) -> DecodeResult {
        var result = DecodeResult()
        let isNew = !exporters.contains(exporter)
        if isNew {
            guard exporters.count < limits.maxExporters else {
                result.refused = true
                return result
            }
            exporters.insert(exporter)
        }
        decodeAdmitted(datagram, from: exporter, port: port, receivedNs: receivedNs, into: &result)
        if isNew && !result.headerRead { forget(exporter: exporter) }
        return result
    }

    private mutating func decodeAdmitted(_ datagram: [UInt8], from exporter: IPAddress, port: UInt16, receivedNs: UInt64,
                                         into result: inout DecodeResult) {
        var cursor = ByteCursor(datagram)
        guard let versionNumber = cursor.u16() else {
            result.malformed.append(.truncated)
            return
        }
        guard let version = ExportVersion(rawValue: versionNumber) else {
            result.malformed.append(.unknownVersion)
            return
        }
        result.version = version
        switch version {
        case .netflowV5: decodeV5(datagram, exporter: exporter, receivedNs: receivedNs, into: &result)
        case .netflowV9, .ipfix:
            decodeTemplated(datagram, version: version, exporter: exporter, port: port, receivedNs: receivedNs, into: &result)
        }
    }

    /// Gives up an exporter's place with its domains, templates and held data.
    public mutating func forget(exporter address: IPAddress) {
        for domain in domainsOf[address] ?? [] { forget(domain) }
        domainsOf[address] = nil
        held[address] = nil
        exporters.remove(address)
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
    /// maximum, making room at the maximum by giving up the exporter's
    /// domains silent for ``CollectorLimits/domainIdleNs`` (an exporter that
    /// restarted from a new port leaves its old session behind; counted in
    /// `domainsReplaced`); else counted as malformed, and not decoded. A
    /// quiet domain keeps its templates while there is room.
    mutating func admit(_ domain: ExporterDomain, at now: UInt64, into result: inout DecodeResult) -> Bool {
        if domains[domain] != nil {
            domains[domain]!.lastSeenNs = max(domains[domain]!.lastSeenNs, now)
            return true
        }
        if domainsOf[domain.address, default: []].count >= limits.maxDomainsPerExporter {
            result.domainsReplaced += forgetSilentDomains(of: domain.address, except: domain, now: now)
        }
        guard domainsOf[domain.address, default: []].count < limits.maxDomainsPerExporter else {
            result.malformed.append(.tooManyDomains)
            return false
        }
        domainsOf[domain.address, default: []].append(domain)
        domains[domain] = DomainState(lastSeenNs: now)
        return true
    }

    /// Gives up the domains of `address` but `except` that have been silent
    /// for ``CollectorLimits/domainIdleNs``, with their templates (whose
    /// per-exporter cap they would otherwise hold); returns how many.
    mutating func forgetSilentDomains(of address: IPAddress, except: ExporterDomain, now: UInt64) -> Int {
        let silent = domainsOf[address, default: []].filter { d in
            guard d != except, let seen = domains[d]?.lastSeenNs else { return false }
            return now >= seen && now - seen >= limits.domainIdleNs
        }
        guard !silent.isEmpty else { return 0 }
        for d in silent { forget(d) }
        domainsOf[address]?.removeAll { silent.contains($0) }
        return silent.count
    }

    /// Drops a domain's state, templates and held data.
    private mutating func forget(_ domain: ExporterDomain) {
        domains[domain] = nil
        templates.removeAll(in: domain)
        if let sets = held[domain.address] {
            let kept = sets.filter { $0.context.exporter != domain }
            held[domain.address] = kept.isEmpty ? nil : kept
        }
    }

    /// Checks a message's sequence number against the one expected, then
    /// sets the next expectation (nil when this message's count is unknown).
    /// Returns false for a duplicate: a message with data whose number and
    /// `digest` (of its bytes) one of the domain's latest such messages had,
    /// whose records must not be counted twice. `digest` is nil for a
    /// message without data (an IPFIX message of templates alone carries
    /// the number of the data message after it).
    mutating func checkSequence(_ sequence: UInt32, next: UInt32?, digest: Int?, domain: ExporterDomain,
                                into result: inout DecodeResult) -> Bool {
        guard var state = domains[domain] else { return true }
        defer { domains[domain] = state }
        if let digest {
            if state.recent.contains(where: { $0.sequence == sequence && $0.digest == digest }) { return false }
            state.remember(sequence, digest: digest)
        }
        if let expected = state.expectedSequence, sequence != expected {
            let ahead = sequence &- expected
            // Ahead: a gap, unless too far to be one. Slightly behind: a late
            // datagram, which neither counts nor moves the expectation back.
            // Far behind: the exporter restarted.
            if ahead < Self.maxSequenceJump {
                result.sequenceGap = UInt64(ahead)
            } else if expected &- sequence < 1024 {
                return true
            } else {
                result.sequenceReset = true
            }
        }
        state.expectedSequence = next.map { sequence &+ $0 }
        return true
    }
}
