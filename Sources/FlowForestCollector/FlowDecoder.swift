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
    /// Datagrams (v9) or records (v5, IPFIX) confirmed lost while decoding
    /// this one: a domain holding more gaps open than it may, or restarting
    /// with some still open. A skip in the numbers is first held open for a
    /// late datagram (``FlowDecoder/expireGaps(now:)`` counts it after
    /// ``CollectorLimits/reorderNs``).
    public var sequenceGap: UInt64 = 0
    /// How many gaps `sequenceGap` is.
    public var sequenceGaps = 0
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
        /// Numbers skipped and not yet arrived, oldest first, at most
        /// ``FlowDecoder/pendingGapLimit``: a datagram reordered behind later
        /// ones fills its part of a gap instead of counting as lost.
        var pendingGaps: [PendingGap] = []

        mutating func remember(_ sequence: UInt32, digest: Int) {
            if recent.count == FlowDecoder.recentSequences { recent.removeFirst() }
            recent.append((sequence, digest))
        }

        /// Holds a new gap; returns the records of the oldest ones, confirmed
        /// lost to keep the list bounded (0 when there was room).
        mutating func addGap(start: UInt32, count: UInt32, at now: UInt64) -> [UInt64] {
            pendingGaps.append(PendingGap(start: start, count: count, sinceNs: now))
            return trim()
        }

        /// Takes `count` numbers from `start` (a late datagram) out of the
        /// pending gaps; nil when `start` is in none of them, else the
        /// records of the oldest gaps confirmed lost when a split passed
        /// the bound. A message with no data records (`count` 0) fills nothing.
        mutating func fill(start: UInt32, count: UInt32) -> [UInt64]? {
            guard let i = pendingGaps.firstIndex(where: { start &- $0.start < $0.count }) else { return nil }
            guard count > 0 else { return [] }
            let gap = pendingGaps[i]
            let before = start &- gap.start
            let after = gap.count - before - min(count, gap.count - before)
            var rest: [PendingGap] = []
            if before > 0 { rest.append(PendingGap(start: gap.start, count: before, sinceNs: gap.sinceNs)) }
            if after > 0 { rest.append(PendingGap(start: gap.start &+ (gap.count - after), count: after, sinceNs: gap.sinceNs)) }
            pendingGaps.replaceSubrange(i...i, with: rest)
            return trim()
        }

        /// Confirms the oldest gaps past the bound.
        private mutating func trim() -> [UInt64] {
            let excess = pendingGaps.count - FlowDecoder.pendingGapLimit
            guard excess > 0 else { return [] }
            let confirmed = pendingGaps.prefix(excess).map { UInt64($0.count) }
            pendingGaps.removeFirst(excess)
            return confirmed
        }
    }

    /// Sequence numbers a domain skipped, from `start`, since `sinceNs` (the collector's clock).
    struct PendingGap: Sendable {
        var start: UInt32
        var count: UInt32
        var sinceNs: UInt64
    }

    /// Gaps a domain holds open for late datagrams; past them the oldest counts as lost at once.
    static let pendingGapLimit = 16

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
            // The latest arrival, not the greatest time: after the clock
            // stepped back the next datagram puts it on the new clock.
            domains[domain]!.lastSeenNs = now
            return true
        }
        if domainsOf[domain.address, default: []].count >= limits.maxDomainsPerExporter {
            forgetSilentDomains(of: domain.address, except: domain, now: now, into: &result)
        }
        guard domainsOf[domain.address, default: []].count < limits.maxDomainsPerExporter else {
            result.malformed.append(.tooManyDomains)
            return false
        }
        domainsOf[domain.address, default: []].append(domain)
        domains[domain] = DomainState(lastSeenNs: now)
        return true
    }

    /// Whether something last heard at `seen` has been silent `idleNs` by
    /// `now` on the collector's wall clock. Heard "after now" by as much
    /// means the clock stepped back that far and nothing came since (a
    /// sender that still sends is heard again on the new clock), so it
    /// counts as silent too, rather than be held until the clock catches up.
    static func silent(since seen: UInt64, now: UInt64, idleNs: UInt64) -> Bool {
        now.nanosecondsApart(from: seen) >= idleNs
    }

    /// Gives up the domains of `address` but `except` that have been silent
    /// for ``CollectorLimits/domainIdleNs``, with their templates (whose
    /// per-exporter cap they would otherwise hold), counted in `result`
    /// with the data they held for a template (dropped: no template);
    /// returns how many.
    @discardableResult
    mutating func forgetSilentDomains(of address: IPAddress, except: ExporterDomain, now: UInt64,
                                      into result: inout DecodeResult) -> Int {
        let silent = domainsOf[address, default: []].filter { d in
            guard d != except, let seen = domains[d]?.lastSeenNs else { return false }
            return Self.silent(since: seen, now: now, idleNs: limits.domainIdleNs)
        }
        guard !silent.isEmpty else { return 0 }
        var heldDropped = 0
        for d in silent { heldDropped += forget(d) }
        if heldDropped > 0 { result.dropped[.noTemplate, default: 0] += heldDropped }
        domainsOf[address]?.removeAll { silent.contains($0) }
        result.domainsReplaced += silent.count
        return silent.count
    }

    /// Drops a domain's state, templates and held data; returns how many held sets went.
    @discardableResult
    private mutating func forget(_ domain: ExporterDomain) -> Int {
        domains[domain] = nil
        templates.removeAll(in: domain)
        guard let sets = held[domain.address] else { return 0 }
        let kept = sets.filter { $0.context.exporter != domain }
        held[domain.address] = kept.isEmpty ? nil : kept
        return sets.count - kept.count
    }

    /// Checks a message's sequence number against the one expected, then
    /// sets the next expectation (nil when this message's count is unknown).
    /// Returns false for a duplicate: a message with data whose number and
    /// `digest` (of its bytes) one of the domain's latest such messages had,
    /// whose records must not be counted twice. `digest` is nil for a
    /// message without data (an IPFIX message of templates alone carries
    /// the number of the data message after it).
    mutating func checkSequence(_ sequence: UInt32, next: UInt32?, digest: Int?, domain: ExporterDomain, at now: UInt64,
                                into result: inout DecodeResult) -> Bool {
        guard var state = domains[domain] else { return true }
        defer { domains[domain] = state }
        if let digest {
            if state.recent.contains(where: { $0.sequence == sequence && $0.digest == digest }) { return false }
            state.remember(sequence, digest: digest)
        }
        if let expected = state.expectedSequence, sequence != expected {
            let ahead = sequence &- expected
            // Ahead: a gap held open for late datagrams, unless too far to
            // be one. Behind, inside a held gap or slightly: a late datagram,
            // which fills its part of the gap and does not move the
            // expectation back. Far behind: the exporter restarted, and what
            // its old numbers still miss is lost.
            if ahead < Self.maxSequenceJump {
                for lost in state.addGap(start: expected, count: ahead, at: now) { result.confirmGap(lost) }
            } else if let confirmed = state.fill(start: sequence, count: next ?? 0) {
                for lost in confirmed { result.confirmGap(lost) }
                return true
            } else if expected &- sequence < 1024 {
                return true
            } else {
                result.sequenceReset = true
                for gap in state.pendingGaps { result.confirmGap(UInt64(gap.count)) }
                state.pendingGaps = []
            }
        }
        state.expectedSequence = next.map { sequence &+ $0 }
        return true
    }

    /// Counts the gaps held for ``CollectorLimits/reorderNs`` (or since a
    /// clock that went back) as lost; returns them per exporter.
    public mutating func expireGaps(now: UInt64) -> [IPAddress: (gaps: Int, missing: UInt64)] {
        var out: [IPAddress: (gaps: Int, missing: UInt64)] = [:]
        for domain in domains.keys where !(domains[domain]!.pendingGaps.isEmpty) {
            var state = domains[domain]!
            let due = state.pendingGaps.filter { now < $0.sinceNs || now - $0.sinceNs >= limits.reorderNs }
            guard !due.isEmpty else { continue }
            state.pendingGaps.removeAll { now < $0.sinceNs || now - $0.sinceNs >= limits.reorderNs }
            domains[domain] = state
            var sum = out[domain.address] ?? (0, 0)
            sum.gaps += due.count
            sum.missing &+= due.reduce(0) { $0 &+ UInt64($1.count) }
            out[domain.address] = sum
        }
        return out
    }
}

extension DecodeResult {
    /// Adds a gap confirmed lost while decoding (0: none).
    mutating func confirmGap(_ missing: UInt64) {
        guard missing > 0 else { return }
        sequenceGaps += 1
        sequenceGap &+= missing
    }
}
