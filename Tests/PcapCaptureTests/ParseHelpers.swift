import FlowForestCore
@testable import PcapCapture

/// Parses a frame as Ethernet, with the whole frame captured unless `captured` cuts it.
func parse(_ frame: [UInt8], captured: Int? = nil, wireLength: Int? = nil, linkType: LinkType = .ethernet) -> ParseResult {
    let parser = PacketParser(linkType: linkType)
    let n = min(captured ?? frame.count, frame.count)
    return frame.withUnsafeBytes { raw in
        parser.parse(UnsafeRawBufferPointer(rebasing: raw[0..<n]), wireLength: wireLength ?? frame.count, timestampNs: 1_000)
    }
}

extension ParseResult {
    var packet: PacketSummary? {
        if case .packet(let p) = self { return p }
        return nil
    }
}
