import Foundation

/// A size in bytes that people write the way they think of it: `24GB`, `24GiB`, `500M`.
/// Decimal units (`KB`, `MB`, `GB`, `TB`) are powers of 1000 and binary ones (`KiB`…)
/// powers of 1024; a bare letter (`500M`) is read as binary, as `ulimit`, `dd` and
/// Slurm's `--mem` read it, because that is what those users mean.
public struct ByteSize: Sendable, Hashable, Comparable, Codable, CustomStringConvertible {
  public var bytes: Int64

  public init(bytes: Int64) { self.bytes = bytes }

  public static func < (a: ByteSize, b: ByteSize) -> Bool { a.bytes < b.bytes }

  public init(parsing text: String) throws(ByteSizeError) {
    let trimmed = text.trimmingCharacters(in: .whitespaces)
    var number = ""
    var unit = ""
    var sawSpace = false
    for ch in trimmed {
      if unit.isEmpty, ch.isNumber || ch == "." {
        guard !sawSpace else { throw ByteSizeError(text: text) }
        number.append(ch)
      } else if ch.isWhitespace {
        sawSpace = !number.isEmpty
      } else {
        unit.append(ch)
      }
    }
    guard let value = Double(number), value >= 0, value.isFinite else {
      throw ByteSizeError(text: text)
    }
    let multipliers: [String: Double] = [
      "": 1, "B": 1,
      "K": 1024, "KB": 1e3, "KIB": 1024,
      "M": 1024 * 1024, "MB": 1e6, "MIB": 1024 * 1024,
      "G": 1024 * 1024 * 1024, "GB": 1e9, "GIB": 1024 * 1024 * 1024,
      "T": 1024 * 1024 * 1024 * 1024, "TB": 1e12, "TIB": 1024 * 1024 * 1024 * 1024,
    ]
    guard let multiplier = multipliers[unit.uppercased()] else { throw ByteSizeError(text: text) }
    let total = value * multiplier
    guard total < 9.0e18 else { throw ByteSizeError(text: text) }
    bytes = Int64(total.rounded())
  }

  /// Human form with binary units, the way `df -h` shows them.
  public var description: String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
    var value = Double(bytes)
    var index = 0
    while abs(value) >= 1024, index < units.count - 1 {
      value /= 1024
      index += 1
    }
    if index == 0 { return "\(bytes) B" }
    let text = value >= 100 ? String(format: "%.0f", value) : String(format: "%.1f", value)
    return "\(text.hasSuffix(".0") ? String(text.dropLast(2)) : text) \(units[index])"
  }

  /// The form a size was most likely written in: `24 GiB` for a card declared as
  /// 24GiB, `80 GB` for a requirement written as 80GB, so a wait reason echoes the
  /// numbers people typed instead of `25.8 GB`.
  public var decimalDescription: String {
    let gib: Int64 = 1 << 30
    if bytes > 0, bytes % gib == 0 { return "\(bytes / gib) GiB" }
    if bytes > 0, bytes % 1_000_000_000 == 0 { return "\(bytes / 1_000_000_000) GB" }
    if bytes >= gib { return description }
    let gb = Double(bytes) / 1e9
    if gb >= 1 { return gb >= 10 ? String(format: "%.0f GB", gb) : String(format: "%.1f GB", gb) }
    let mb = Double(bytes) / 1e6
    return String(format: "%.0f MB", mb)
  }

  public init(from decoder: any Decoder) throws {
    bytes = try decoder.singleValueContainer().decode(Int64.self)
  }
  public func encode(to encoder: any Encoder) throws {
    var c = encoder.singleValueContainer()
    try c.encode(bytes)
  }
}

public struct ByteSizeError: Error, CustomStringConvertible, Sendable {
  public let text: String
  public var description: String {
    "invalid size '\(text)': expected a number with an optional unit, such as 24GB, 24GiB or 500M"
  }
}
