#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// RFC 3339 UTC timestamps with milliseconds, the one time format of every
/// FlowForest record (`2026-11-25T09:27:35.123Z`).
public enum Timestamp {
    /// Formats nanoseconds since the Unix epoch.
    public static func rfc3339(nanoseconds ns: UInt64) -> String {
        rfc3339(milliseconds: Int64(ns / 1_000_000))
    }

    /// Formats milliseconds since the Unix epoch; times before the epoch
    /// format too (floor division), so a corrupt stored value never traps.
    public static func rfc3339(milliseconds ms: Int64) -> String {
        let (q, r) = ms.quotientAndRemainder(dividingBy: 1000)
        var seconds = time_t(r < 0 ? q - 1 : q)
        let millis = Int(r < 0 ? r + 1000 : r)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ v: Int32, _ width: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        let ms3 = String(repeating: "0", count: max(0, 3 - String(millis).count)) + String(millis)
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(ms3)Z"
    }

    /// The first second FlowForest no longer accepts: 2500-01-01T00:00:00Z.
    ///
    /// Times are nanoseconds in a `UInt64`, which ends in July 2554; stopping
    /// at 2500 leaves decades of headroom for the timeouts and poll intervals
    /// added to a packet's time, so that arithmetic cannot overflow.
    public static let endSeconds: Int64 = 16_725_225_600
    /// ``endSeconds`` in nanoseconds: every accepted time is `0..<endNs`.
    public static let endNs: UInt64 = UInt64(endSeconds) * 1_000_000_000
    /// The accepted range in words, for error messages.
    public static let rangeDescription = "1970-01-01T00:00:00Z up to 2499-12-31T23:59:59Z"

    /// Nanoseconds since the epoch from epoch seconds, or `nil` when the value
    /// is not finite or outside the accepted range (`0..<endSeconds`).
    public static func nanoseconds(epochSeconds seconds: Double) -> UInt64? {
        guard seconds.isFinite, seconds >= 0, seconds < Double(endSeconds) else { return nil }
        let ns = (seconds * 1e9).rounded(.down)
        guard ns < Double(endNs) else { return nil }
        return UInt64(ns)
    }

    /// Parses plain decimal epoch seconds (`1764063455` or `1764063455.25`):
    /// digits only, so signs, exponents, hex and `nan` are refused. Read
    /// exactly (fraction digits past nanoseconds are dropped), not through a
    /// `Double`, so a value just below the end of the range cannot round up
    /// out of it.
    public static func parseEpochSeconds(_ text: String) -> UInt64? {
        let u = Array(text.utf8)
        guard !u.isEmpty, u.count <= 32 else { return nil }
        var seconds: Int64 = 0
        var fractionNs: UInt64 = 0
        var seenDot = false
        var digitsBefore = 0
        var digitsAfter = 0
        for c in u {
            if c == UInt8(ascii: ".") {
                guard !seenDot else { return nil }
                seenDot = true
            } else if c >= 48 && c <= 57 {
                let digit = Int64(c - 48)
                if seenDot {
                    if digitsAfter < 9 { fractionNs = fractionNs * 10 + UInt64(digit) }
                    digitsAfter += 1
                } else {
                    // Stop growing once past the range; the check below refuses it.
                    if seconds < endSeconds { seconds = seconds * 10 + digit }
                    digitsBefore += 1
                }
            } else {
                return nil
            }
        }
        guard digitsBefore > 0, !seenDot || digitsAfter > 0, seconds < endSeconds else { return nil }
        for _ in min(digitsAfter, 9)..<9 { fractionNs *= 10 }
        return UInt64(seconds) * 1_000_000_000 + fractionNs
    }

    static func isLeapYear(_ y: Int) -> Bool { (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 }

    static func daysInMonth(_ month: Int, year: Int) -> Int {
        switch month {
        case 2: return isLeapYear(year) ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// Parses RFC 3339 (`2026-11-25T09:27:35Z`, fractional seconds and
    /// numeric offsets allowed) into nanoseconds since the epoch.
    ///
    /// Returns `nil` for anything that is not a real calendar time (day 31 of
    /// a 30-day month, offset minutes of 60 or more) and for times outside
    /// `0..<endNs` (see ``rangeDescription``), so the result is always safe to
    /// add timeouts to.
    public static func parseRFC3339(_ text: String) -> UInt64? {
        guard let t = rfc3339Fields(text), t.utcSeconds >= 0, t.utcSeconds < endSeconds else { return nil }
        return UInt64(t.utcSeconds) * 1_000_000_000 + UInt64(t.fractionNs)
    }

    /// Parses RFC 3339 like ``parseRFC3339(_:)``, but a time whose written
    /// date and clock lie in the range while its offset moves it out
    /// (`1970-01-01T00:10:30+15:22` is before the epoch in UTC) is clamped to
    /// the nearest end instead of refused.
    ///
    /// For query bounds: such a time is a valid RFC 3339 instant, and as a
    /// filter "until before the epoch" simply matches nothing. Values stored
    /// or added to must use ``parseRFC3339(_:)``.
    public static func parseRFC3339Clamped(_ text: String) -> UInt64? {
        guard let t = rfc3339Fields(text), t.localSeconds >= 0, t.localSeconds < endSeconds else { return nil }
        if t.utcSeconds < 0 { return 0 }
        if t.utcSeconds >= endSeconds { return endNs - 1 }
        return UInt64(t.utcSeconds) * 1_000_000_000 + UInt64(t.fractionNs)
    }

    /// The fields of an RFC 3339 time, unchecked against the range: seconds
    /// since the epoch in UTC and as written (before the offset is applied).
    private static func rfc3339Fields(_ text: String) -> (utcSeconds: Int64, localSeconds: Int64, fractionNs: Int)? {
        let u = Array(text.utf8)
        // Longer fractions add nothing; the bound keeps hostile input cheap.
        guard u.count >= 20, u.count <= 64 else { return nil }
        func num(_ from: Int, _ count: Int) -> Int? {
            guard from + count <= u.count else { return nil }
            var v = 0
            for c in u[from..<from + count] {
                guard c >= 48 && c <= 57 else { return nil }
                v = v * 10 + Int(c - 48)
            }
            return v
        }
        guard u[4] == UInt8(ascii: "-"), u[7] == UInt8(ascii: "-"),
              u[10] == UInt8(ascii: "T") || u[10] == UInt8(ascii: "t") || u[10] == UInt8(ascii: " "),
              u[13] == UInt8(ascii: ":"), u[16] == UInt8(ascii: ":"),
              let year = num(0, 4), let month = num(5, 2), let day = num(8, 2),
              let hour = num(11, 2), let minute = num(14, 2), let second = num(17, 2),
              (1...12).contains(month), day >= 1, day <= daysInMonth(month, year: year),
              hour < 24, minute < 60, second <= 60
        else { return nil }
        var i = 19
        var fractionNs = 0
        if i < u.count, u[i] == UInt8(ascii: ".") {
            i += 1
            var digits = 0
            var seen = 0
            while i < u.count, u[i] >= 48, u[i] <= 57 {
                if digits < 9 { fractionNs = fractionNs * 10 + Int(u[i] - 48); digits += 1 }
                seen += 1
                i += 1
            }
            guard seen > 0 else { return nil }
            for _ in digits..<9 { fractionNs *= 10 }
        }
        guard i < u.count else { return nil }
        var offsetSeconds = 0
        if u[i] == UInt8(ascii: "Z") || u[i] == UInt8(ascii: "z") {
            i += 1
        } else if u[i] == UInt8(ascii: "+") || u[i] == UInt8(ascii: "-") {
            guard let oh = num(i + 1, 2), i + 3 < u.count, u[i + 3] == UInt8(ascii: ":"), let om = num(i + 4, 2),
                  oh < 24, om < 60 else { return nil }
            offsetSeconds = (oh * 3600 + om * 60) * (u[i] == UInt8(ascii: "+") ? 1 : -1)
            i += 6
        } else {
            return nil
        }
        guard i == u.count else { return nil }
        // Days from civil (Howard Hinnant's algorithm), valid for the proleptic
        // Gregorian calendar. Every field is at most 4 digits, so none of this
        // can overflow a 64-bit Int; the range check below bounds the result.
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146_097 + doe - 719_468
        let local = days * 86_400 + hour * 3600 + minute * 60 + second
        return (Int64(local - offsetSeconds), Int64(local), fractionNs)
    }
}
