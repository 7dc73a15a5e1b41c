import Foundation

/// Parses `--array` specs the way `sbatch --array` does: `1-40`, `1,5,9-12`, `0-20:5`.
enum ArraySpec {
  struct SpecError: Error, CustomStringConvertible {
    var description: String
  }

  static let maxJobs = 10_000

  static func parse(_ text: String) throws -> [Int] {
    var result: [Int] = []
    for part in text.split(separator: ",", omittingEmptySubsequences: false) {
      let piece = part.trimmingCharacters(in: .whitespaces)
      guard !piece.isEmpty else {
        throw SpecError(description: "'\(text)': empty item; use e.g. 1-40 or 1,5,9-12")
      }
      let stepParts = piece.split(separator: ":", omittingEmptySubsequences: false)
      guard stepParts.count <= 2 else {
        throw SpecError(description: "'\(piece)': expected N, N-M or N-M:STEP")
      }
      let step = stepParts.count == 2 ? Int(stepParts[1]) : 1
      guard let step, step > 0 else {
        throw SpecError(description: "'\(piece)': the step must be a positive number")
      }
      let bounds = stepParts[0].split(separator: "-", omittingEmptySubsequences: false)
      guard (1...2).contains(bounds.count), let low = Int(bounds[0]), low >= 0,
        let high = bounds.count == 2 ? Int(bounds[1]) : low
      else { throw SpecError(description: "'\(piece)': expected N, N-M or N-M:STEP with whole numbers ≥ 0") }
      guard high >= low else { throw SpecError(description: "'\(piece)': the range runs backwards") }
      guard (high - low) / step + result.count < maxJobs else {
        throw SpecError(description: "'\(text)' makes more than \(maxJobs) jobs")
      }
      result.append(contentsOf: stride(from: low, through: high, by: step))
    }
    return result
  }
}

/// Durations as people type them: `90`, `90s`, `30m`, `2h`, `1d`, `1h30m`.
enum DurationParser {
  struct DurationError: Error, CustomStringConvertible {
    var description: String
  }

  static func seconds(_ text: String) throws -> Double {
    if let plain = Double(text), plain > 0 { return plain }
    var total = 0.0
    var number = ""
    var sawUnit = false
    for ch in text {
      if ch.isNumber || ch == "." {
        number.append(ch)
        continue
      }
      let unit: Double
      switch ch {
      case "s": unit = 1
      case "m": unit = 60
      case "h": unit = 3600
      case "d": unit = 86400
      default: throw DurationError(description: "'\(text)': unknown unit '\(ch)'; use s, m, h or d")
      }
      guard let value = Double(number) else {
        throw DurationError(description: "'\(text)': expected e.g. 90s, 30m, 2h")
      }
      total += value * unit
      number = ""
      sawUnit = true
    }
    guard number.isEmpty, sawUnit, total > 0 else {
      throw DurationError(description: "'\(text)': expected a positive duration such as 90s, 30m or 2h")
    }
    return total
  }
}
