import FlowForestCore

extension FlowDecoder {
    /// Decodes a data set into `flows`, or holds it when its template has
    /// not arrived. Returns false when its record count is unknown (held or dropped).
    mutating func readData(_ id: UInt16, _ body: ByteCursor, context: MessageContext, into result: inout DecodeResult,
                           flows: inout [UniflowSummary]) -> Bool {
        guard let template = templates.template(id, in: context.exporter) else {
            hold(HeldSet(setID: id, body: Array(body.bytes[body.offset..<body.end]), context: context, message: messages), into: &result)
            return false
        }
        decodeRecords(body, template: template, context: context, into: &result, flows: &flows)
        return true
    }

    /// Walks the records of a set. Fewer bytes left than the shortest
    /// possible record are padding; a record whose variable-length field
    /// runs past the set ends the walk.
    mutating func decodeRecords(_ body: ByteCursor, template: Template, context: MessageContext, into result: inout DecodeResult,
                                flows: inout [UniflowSummary]) {
        var c = body
        let minimum = template.minimumRecordLength
        // A data set's records share one domain and no options record sits among them.
        let sampling = template.isOptions ? 1 : domains[context.exporter]?.samplingInterval ?? 1
        while minimum > 0 && c.remaining >= minimum {
            var fields = RecordFields()
            for field in template.fields {
                var length = Int(field.length)
                if field.isVariable {
                    // RFC 7011 §7: one length byte, or 255 and two more.
                    guard let short = c.u8() else { result.malformed.append(.badRecord); return }
                    if short == 255 {
                        guard let long = c.u16() else { result.malformed.append(.badRecord); return }
                        length = Int(long)
                    } else {
                        length = Int(short)
                    }
                }
                guard var value = c.take(length) else { result.malformed.append(.badRecord); return }
                fields.read(field, &value)
            }
            result.records += 1
            fields.finishSampling()
            if template.isOptions {
                // Applies to this domain's later records (and to the rest of this set's datagram).
                if let interval = fields.samplingInterval, interval > RecordFields.maxSampling {
                    result.malformed.append(.implausibleSampling)
                } else if let interval = fields.samplingInterval, interval >= 1 {
                    result.samplingInterval = interval
                    domains[context.exporter, default: DomainState()].samplingInterval = interval
                }
            } else {
                if let reason = fields.appendUniflows(context, sampling: sampling, to: &flows) {
                    result.malformed.append(reason)
                }
            }
        }
    }

    /// Holds a set for its template within the per-exporter bounds, else drops and counts it.
    private mutating func hold(_ set: HeldSet, into result: inout DecodeResult) {
        let address = set.context.exporter.address
        let sets = held[address, default: []]
        let bytes = sets.reduce(0) { $0 + $1.body.count }
        guard sets.count < limits.maxHeldSets, bytes + set.body.count <= limits.maxHeldBytes else {
            result.dropped[.holdFull, default: 0] += 1
            return
        }
        held[address, default: []].append(set)
        result.setsHeld += 1
    }

    /// Decodes the held sets a newly arrived template was missing.
    mutating func replayHeld(_ id: UInt16, domain: ExporterDomain, into result: inout DecodeResult) {
        guard let sets = held[domain.address], let template = templates.template(id, in: domain) else { return }
        var kept: [HeldSet] = []
        var released: [UniflowSummary] = []
        for set in sets {
            guard set.setID == id, set.context.exporter == domain else {
                kept.append(set)
                continue
            }
            decodeRecords(ByteCursor(set.body), template: template, context: set.context, into: &result, flows: &released)
        }
        held[domain.address] = kept.isEmpty ? nil : kept
        result.flows += released
    }
}
