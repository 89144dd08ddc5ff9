import FlowForestCore
import Foundation

/// The server's clock in ns since the epoch: what ingest windows and expires by.
public enum WallClock {
    /// Now; a clock set before 1970 or past ``Timestamp/endNs`` reads as the
    /// nearest bound rather than trapping.
    public static func nowNs() -> UInt64 {
        let seconds = Date().timeIntervalSince1970
        return Timestamp.nanoseconds(epochSeconds: seconds) ?? (seconds > 0 ? Timestamp.endNs - 1 : 0)
    }
}
