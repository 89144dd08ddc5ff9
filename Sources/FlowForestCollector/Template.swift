import FlowForestCore


/// One field of a template: an information element and its length in data
/// records (``FieldSpec/variableLength`` for IPFIX variable-length fields).
struct FieldSpec: Hashable, Sendable {
    static let variableLength: UInt16 = 0xFFFF
    /// RFC 5103's enterprise number: reverse-direction elements of a biflow.
    static let reversePEN: UInt32 = 29305

    var id: UInt16
    var length: UInt16
    var enterprise: UInt32?

    var isVariable: Bool { length == Self.variableLength }
}

/// A data template or options template as an exporter announced it.
struct Template: Hashable, Sendable {
    var fields: [FieldSpec]
    /// Leading scope fields (options templates); 0 for data templates.
    var scopeFieldCount: Int
    var isOptions: Bool

    /// The fewest bytes a record can take: fixed fields plus one length byte
    /// per variable field. Always positive (templates that would allow
    /// empty records are refused), so walking a set always advances.
    var minimumRecordLength: Int {
        fields.reduce(0) { $0 + ($1.isVariable ? 1 : Int($1.length)) }
    }
}

/// Templates per exporter domain, with a cap per exporter address so a flood
/// of template ids cannot grow memory without bound.
struct TemplateStore {
    private var templates: [ExporterDomain: [UInt16: Template]] = [:]
    private var countByAddress: [IPAddress: Int] = [:]
    let maxPerExporter: Int

    init(maxPerExporter: Int) { self.maxPerExporter = maxPerExporter }

    func template(_ id: UInt16, in domain: ExporterDomain) -> Template? { templates[domain]?[id] }

    /// Adds or replaces a template; false (refused) when the exporter already
    /// holds its maximum of other templates.
    mutating func set(_ template: Template, id: UInt16, in domain: ExporterDomain) -> Bool {
        if templates[domain]?[id] != nil {
            templates[domain]![id] = template
            return true
        }
        guard countByAddress[domain.address, default: 0] < maxPerExporter else { return false }
        templates[domain, default: [:]][id] = template
        countByAddress[domain.address, default: 0] += 1
        return true
    }

    /// Withdraws one template (RFC 7011 §8.1).
    mutating func withdraw(_ id: UInt16, in domain: ExporterDomain) {
        guard templates[domain]?.removeValue(forKey: id) != nil else { return }
        uncount(1, for: domain.address)
    }

    /// Withdraws every template of one kind in a domain (template id 2 or 3 with no fields).
    mutating func withdrawAll(options: Bool, in domain: ExporterDomain) {
        guard let held = templates[domain] else { return }
        for (id, t) in held where t.isOptions == options { withdraw(id, in: domain) }
    }

    /// Drops every template of one domain.
    mutating func removeAll(in domain: ExporterDomain) {
        guard let held = templates.removeValue(forKey: domain) else { return }
        uncount(held.count, for: domain.address)
    }

    /// An address whose last template went holds no entry: exporters come and go.
    private mutating func uncount(_ n: Int, for address: IPAddress) {
        let left = countByAddress[address, default: n] - n
        countByAddress[address] = left > 0 ? left : nil
    }

    /// Templates held for one exporter address.
    func count(for address: IPAddress) -> Int { countByAddress[address, default: 0] }
}
