import FlowForestCore

/// NetFlow v9 (RFC 3954) and IPFIX (RFC 7011) share a shape: a header, then
/// sets of templates, options templates or data records. They differ in
/// header layout, set ids, enterprise and variable-length fields, and in
/// what the sequence number counts.
extension FlowDecoder {
    /// Set ids of template and options template sets, per protocol.
    private static func setKind(_ id: UInt16, _ version: ExportVersion) -> SetKind {
        switch (version, id) {
        case (.netflowV9, 0), (.ipfix, 2): .template
        case (.netflowV9, 1), (.ipfix, 3): .optionsTemplate
        case (_, 256...): .data
        default: .reserved
        }
    }

    private enum SetKind { case template, optionsTemplate, data, reserved }

    mutating func decodeTemplated(_ datagram: [UInt8], version: ExportVersion, exporter: IPAddress, port: UInt16,
                                  receivedNs: UInt64, into result: inout DecodeResult) {
        guard let (context, sequence, end) = Self.header(datagram, version: version, exporter: exporter, port: port,
                                                         receivedNs: receivedNs, into: &result),
              admit(context.exporter, at: receivedNs, into: &result) else { return }
        messages &+= 1
        var c = ByteCursor(datagram, from: version == .ipfix ? 16 : 20, end: end)
        // This message's own records, apart from held ones its templates
        // release: only these count towards its sequence number, and only
        // these are dropped if it turns out to be a duplicate.
        var own: [UniflowSummary] = []
        var ownRecords = 0
        var carriesData = false
        var complete = true
        while c.remaining >= 4 {
            guard let id = c.u16(), let length = c.u16() else { break }
            guard length >= 4, var body = c.take(Int(length) - 4) else {
                result.malformed.append(.badSet)
                complete = false
                break
            }
            switch Self.setKind(id, version) {
            case .template: readTemplates(&body, options: false, context: context, into: &result)
            case .optionsTemplate: readTemplates(&body, options: true, context: context, into: &result)
            case .data:
                carriesData = true
                let before = result.records
                if !readData(id, body, context: context, into: &result, flows: &own) { complete = false }
                ownRecords += result.records - before
            case .reserved:
                result.malformed.append(.badSet)
            }
        }
        // IPFIX counts data records, v9 datagrams; a held set's records are not known yet.
        let next: UInt32? = version == .netflowV9 ? 1 : complete ? UInt32(truncatingIfNeeded: ownRecords) : nil
        // Every v9 datagram has a number of its own.
        let digest = carriesData || version == .netflowV9 ? Self.digest(datagram) : nil
        if checkSequence(sequence, next: next, digest: digest, domain: context.exporter, at: receivedNs, into: &result) {
            result.flows += own
        } else {
            result.duplicateRecords += ownRecords
            // Its sets still waiting for a template are copies too.
            let message = messages
            let before = held[exporter]?.count ?? 0
            held[exporter]?.removeAll { $0.message == message }
            result.setsHeld -= before - (held[exporter]?.count ?? 0)
            if held[exporter]?.isEmpty == true { held[exporter] = nil }
        }
    }

    /// Reads a v9 or IPFIX header; nil (counted) when it is cut short or inconsistent.
    private static func header(_ datagram: [UInt8], version: ExportVersion, exporter: IPAddress, port: UInt16,
                               receivedNs: UInt64, into result: inout DecodeResult) -> (MessageContext, UInt32, Int)? {
        var c = ByteCursor(datagram, from: 2)
        if version == .ipfix {
            guard let length = c.u16(), let exportTime = c.u32(), let sequence = c.u32(), let domain = c.u32() else {
                result.malformed.append(.truncated)
                return nil
            }
            guard length >= 16 else { result.malformed.append(.badHeader); return nil }
            guard Int(length) <= datagram.count else { result.malformed.append(.truncated); return nil }
            let context = MessageContext(
                version: .ipfix, exporter: ExporterDomain(version: .ipfix, address: exporter, port: port, domain: domain),
                exportNs: RecordFields.checkedNs(seconds: UInt64(exportTime), fractionNs: 0), sysUptimeMs: nil, receivedNs: receivedNs)
            return (context, sequence, Int(length))
        }
        guard c.skip(2), let uptime = c.u32(), let seconds = c.u32(), let sequence = c.u32(), let sourceID = c.u32() else {
            result.malformed.append(.truncated)
            return nil
        }
        let context = MessageContext(
            version: .netflowV9, exporter: ExporterDomain(version: .netflowV9, address: exporter, domain: sourceID),
            exportNs: RecordFields.checkedNs(seconds: UInt64(seconds), fractionNs: 0), sysUptimeMs: uptime, receivedNs: receivedNs)
        return (context, sequence, datagram.count)
    }

    /// Reads every template record of a set; a broken record ends the set,
    /// since the records after it cannot be found.
    private mutating func readTemplates(_ c: inout ByteCursor, options: Bool, context: MessageContext, into result: inout DecodeResult) {
        let ipfix = context.version == .ipfix
        // What is left when fewer bytes than a template header remain is padding.
        while c.remaining >= (options && !ipfix ? 6 : 4) {
            guard let id = c.u16(), let count = c.u16() else { return }
            if ipfix && count == 0 {
                withdraw(id, options: options, domain: context.exporter)
                continue
            }
            guard id >= 256 else { result.malformed.append(.badTemplate); return }
            switch parseTemplate(&c, options: options, ipfix: ipfix, secondField: count) {
            case .success(let template):
                var stored = templates.set(template, id: id, in: context.exporter)
                if !stored {
                    // At the exporter's cap, its silent sessions give their templates up first.
                    let freed = forgetSilentDomains(of: context.exporter.address, except: context.exporter, now: context.receivedNs,
                                                    into: &result)
                    if freed > 0 { stored = templates.set(template, id: id, in: context.exporter) }
                }
                guard stored else {
                    result.templateRefusals += 1
                    continue
                }
                replayHeld(id, domain: context.exporter, into: &result)
            case .failure(let failure):
                result.malformed.append(failure.reason)
                if !failure.canContinue { return }
            }
        }
    }

    private mutating func withdraw(_ id: UInt16, options: Bool, domain: ExporterDomain) {
        // Template id equal to the set id (2 or 3) withdraws every template of that kind.
        if id == 2 || id == 3 {
            templates.withdrawAll(options: id == 3, in: domain)
        } else {
            templates.withdraw(id, in: domain)
        }
    }

    struct TemplateFailure: Error {
        var reason: MalformedReason
        /// The whole record was read, so the next one can still be found.
        var canContinue: Bool
    }

    /// Parses one template's fields. `secondField` is the field count (data
    /// templates and IPFIX options templates) or, in a v9 options template,
    /// the scope length in bytes.
    private func parseTemplate(_ c: inout ByteCursor, options: Bool, ipfix: Bool, secondField: UInt16) -> Result<Template, TemplateFailure> {
        var fieldCount = Int(secondField)
        var scopeCount = 0
        if options {
            if ipfix {
                guard let scopes = c.u16() else { return .failure(.init(reason: .badTemplate, canContinue: false)) }
                scopeCount = Int(scopes)
                guard scopeCount >= 1, scopeCount <= fieldCount else { return .failure(.init(reason: .badTemplate, canContinue: false)) }
            } else {
                guard let optionBytes = c.u16(), secondField % 4 == 0, optionBytes % 4 == 0 else {
                    return .failure(.init(reason: .badTemplate, canContinue: false))
                }
                scopeCount = Int(secondField) / 4
                fieldCount = scopeCount + Int(optionBytes) / 4
            }
        }
        guard fieldCount >= 1 else { return .failure(.init(reason: .badTemplate, canContinue: false)) }
        guard fieldCount <= limits.maxTemplateFields else { return .failure(.init(reason: .templateTooLarge, canContinue: false)) }
        var fields: [FieldSpec] = []
        fields.reserveCapacity(fieldCount)
        var zeroLength = false
        for _ in 0..<fieldCount {
            guard let rawID = c.u16(), let length = c.u16() else { return .failure(.init(reason: .badTemplate, canContinue: false)) }
            var field = FieldSpec(id: rawID, length: length, enterprise: nil)
            if ipfix && rawID & 0x8000 != 0 {
                guard let pen = c.u32() else { return .failure(.init(reason: .badTemplate, canContinue: false)) }
                field = FieldSpec(id: rawID & 0x7FFF, length: length, enterprise: pen)
            }
            if length == 0 { zeroLength = true }
            fields.append(field)
        }
        if zeroLength { return .failure(.init(reason: .zeroFieldLength, canContinue: true)) }
        let template = Template(fields: fields, scopeFieldCount: scopeCount, isOptions: options)
        // A record must fit in a set: 65535 bytes less the set header.
        guard template.minimumRecordLength <= 65_531 else { return .failure(.init(reason: .templateTooLarge, canContinue: true)) }
        return .success(template)
    }
}
