/// Plain-text renderings of anomalies for terminals and spreadsheets.
public enum AnomalyText {
    public static let csvHeader = "time,kind,severity,score,label,src_ip,src_port,dst_ip,dst_port,protocol,explanation"

    public static func csvRow(_ a: Anomaly) -> String {
        let cells: [String?] = [
            Timestamp.rfc3339(milliseconds: a.timeMs), a.kind.rawValue, a.severity.rawValue, formatScore(a.score), a.label.rawValue,
            a.sourceAddress?.description, a.sourcePort.map(String.init), a.destinationAddress?.description,
            a.destinationPort.map(String.init), a.ipProtocol.map(IPProtocol.name),
            a.explanation.map(\.text).joined(separator: "; "),
        ]
        return cells.map { cell in
            guard let cell else { return "" }
            guard cell.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" }) else { return cell }
            return "\"" + cell.split(separator: "\"", omittingEmptySubsequences: false).joined(separator: "\"\"") + "\""
        }.joined(separator: ",")
    }

    public static let tableHeader = "TIME                      SEVERITY  SCORE  LABEL              SOURCE -> DESTINATION  /  WHY"

    public static func tableRow(_ a: Anomaly) -> String {
        func pad(_ s: String, _ n: Int) -> String { s + String(repeating: " ", count: max(1, n - s.count)) }
        let src = a.sourceAddress.map { "\($0)" + (a.sourcePort.map { ":\($0)" } ?? "") } ?? "*"
        let dst = a.destinationAddress.map { "\($0)" + (a.destinationPort.map { ":\($0)" } ?? "") } ?? "*"
        let why = a.explanation.prefix(3).map(\.text).joined(separator: "; ")
        return pad(Timestamp.rfc3339(milliseconds: a.timeMs), 26) + pad(a.severity.rawValue, 10) + pad(formatScore(a.score), 7)
            + pad(a.label.rawValue, 19) + "\(src) -> \(dst)  /  \(why)"
    }

    static func formatScore(_ score: Double) -> String {
        let thousandths = Int((min(max(score, 0), 1) * 1000).rounded())
        if thousandths >= 1000 { return "1.000" }
        return "0." + String(repeating: "0", count: max(0, 3 - String(thousandths).count)) + String(thousandths)
    }
}
