import Foundation

/// Times travel and are stored as seconds since 1970 and shown as ISO 8601 UTC with
/// milliseconds, the form `--json` promises. Formatted by hand with `gmtime_r`
/// because listing 100,000 jobs should not pay for a locale-aware formatter.
public enum Timestamp {
  public static func now() -> Double { Date().timeIntervalSince1970 }

  /// Within about ±3,000 years of 1970: what a clock can say, and what `iso` formats.
  public static func isPlausible(_ seconds: Double) -> Bool { abs(seconds) < 1e11 }

  public static func iso(_ seconds: Double) -> String {
    // A time no clock gives (a corrupt row) shows as the epoch rather than trapping.
    let seconds = isPlausible(seconds) ? seconds : 0
    var whole = time_t(seconds.rounded(.down))
    var millis = Int(((seconds - Double(whole)) * 1000).rounded())
    if millis >= 1000 {
      whole += 1
      millis -= 1000
    }
    var parts = tm()
    gmtime_r(&whole, &parts)
    func pad(_ v: Int32, _ width: Int) -> String {
      let s = String(v)
      return String(repeating: "0", count: max(0, width - s.count)) + s
    }
    return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
      + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(pad(Int32(millis), 3))Z"
  }
}
