import Foundation

/// Left-aligned columns, two spaces apart, like `squeue` and `nomad status`. Cells
/// are padded by their visible text and coloured afterwards, so colour never skews
/// the alignment. On a terminal narrower than the table, the `flexible` column (a
/// name, say) is shortened with "…" rather than letting every row wrap.
struct Table {
  struct Cell: ExpressibleByStringLiteral {
    var text: String
    var colour: Colour?
    init(_ text: String, _ colour: Colour? = nil) {
      self.text = text
      self.colour = colour
    }
    init(stringLiteral value: String) { self.init(value) }
  }

  var header: [String]
  var rows: [[Cell]] = []
  /// The column shortened first when the table is wider than the screen.
  var flexible: Int?

  init(header: [String], flexible: Int? = nil) {
    self.header = header
    self.flexible = flexible
  }

  mutating func append(_ row: [Cell]) { rows.append(row) }

  func render(style: OutputStyle) -> String {
    var widths = header.indices.map { column in
      ([header[column].count] + rows.map { column < $0.count ? $0[column].text.count : 0 }).max() ?? 0
    }
    if let screen = style.width, let flexible, flexible < widths.count {
      // The last column is not padded, so it counts only its own width.
      let total = widths.reduce(0, +) + 2 * (widths.count - 1)
      if total > screen {
        let minimum = max(header[flexible].count, 8)
        widths[flexible] = max(minimum, widths[flexible] - (total - screen))
      }
    }
    func line(_ cells: [Cell], isHeader: Bool) -> String {
      var parts: [String] = []
      for (index, cell) in cells.enumerated() {
        var text = cell.text
        if index < widths.count, text.count > widths[index] {
          text = String(text.prefix(max(0, widths[index] - 1))) + "…"
        }
        let padded =
          index == cells.count - 1
          ? text
          : text.padding(
            toLength: index < widths.count ? widths[index] : text.count, withPad: " ", startingAt: 0)
        if isHeader {
          parts.append(style.paint(padded, .bold))
        } else if let colour = cell.colour {
          // Colour the text, not its padding, so an underline or background never runs on.
          parts.append(style.paint(text, colour) + String(padded.dropFirst(text.count)))
        } else {
          parts.append(padded)
        }
      }
      var text = parts.joined(separator: "  ")
      while text.last == " " { text.removeLast() }
      return text
    }
    return ([line(header.map { Cell($0) }, isHeader: true)] + rows.map { line($0, isHeader: false) })
      .joined(separator: "\n")
  }
}

/// "45s", "3m", "2h", "4d": ages the way people glance at them.
func age(since seconds: Double, now: Double) -> String {
  let delta = max(0, now - seconds)
  if delta < 60 { return "\(Int(delta))s" }
  if delta < 3600 { return "\(Int(delta / 60))m" }
  if delta < 86400 { return "\(Int(delta / 3600))h" }
  return "\(Int(delta / 86400))d"
}

/// "0:07", "12:03", "1:02:03": elapsed time as a stopwatch shows it.
func clock(_ seconds: Double) -> String {
  let total = Int(max(0, seconds))
  let (h, m, s) = (total / 3600, total / 60 % 60, total % 60)
  func two(_ v: Int) -> String { v < 10 ? "0\(v)" : "\(v)" }
  return h > 0 ? "\(h):\(two(m)):\(two(s))" : "\(m):\(two(s))"
}

/// Reads the ISO 8601 times of the `--json` views (`2025-01-02T03:04:05.678Z`), with
/// or without fractional seconds.
func parseISO(_ text: String) -> Double? {
  let formatter = ISO8601DateFormatter()
  formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
  if let date = formatter.date(from: text) { return date.timeIntervalSince1970 }
  formatter.formatOptions = [.withInternetDateTime]
  return formatter.date(from: text)?.timeIntervalSince1970
}
