import Foundation

/// Left-aligned columns, two spaces apart, like `squeue` and `nomad status`.
struct Table {
  var header: [String]
  var rows: [[String]] = []

  func render() -> String {
    let widths = header.indices.map { column in
      ([header[column]] + rows.map { column < $0.count ? $0[column] : "" }).map(\.count).max() ?? 0
    }
    func line(_ cells: [String]) -> String {
      cells.enumerated().map { index, cell in
        index == cells.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
      }.joined(separator: "  ")
    }
    return ([line(header)] + rows.map(line)).joined(separator: "\n")
  }
}

/// "3m ago", "2h ago": ages the way people glance at them.
func age(since seconds: Double, now: Double) -> String {
  let delta = max(0, now - seconds)
  if delta < 60 { return "\(Int(delta))s" }
  if delta < 3600 { return "\(Int(delta / 60))m" }
  if delta < 86400 { return "\(Int(delta / 3600))h" }
  return "\(Int(delta / 86400))d"
}

func parseISO(_ text: String) -> Double? {
  let formatter = ISO8601DateFormatter()
  formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
  return formatter.date(from: text)?.timeIntervalSince1970
}
