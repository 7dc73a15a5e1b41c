import Foundation

/// How human output is drawn: colour or not, and how wide the screen is. Detected
/// once per command from the file descriptor the text goes to; the renderers take it
/// as a parameter, so tests pin it and compare exact strings.
struct OutputStyle: Sendable, Equatable {
  /// ANSI colour (only on a terminal, never with `NO_COLOR` or `TERM=dumb`).
  var colour: Bool
  /// The terminal's columns; nil when the output is not a terminal (tables are then
  /// never truncated, so a pipe gets every character).
  var width: Int?

  static let plain = OutputStyle(colour: false, width: nil)

  /// The style for text written to `fd` (1 for stdout, 2 for stderr).
  static func detect(fd: Int32, environment: [String: String] = ProcessInfo.processInfo.environment)
    -> OutputStyle
  {
    guard Terminal.isTerminal(fd) else { return .plain }
    let noColour = !(environment["NO_COLOR"] ?? "").isEmpty
    let colour = !noColour && environment["TERM"] != "dumb"
    return OutputStyle(colour: colour, width: Terminal.columns(fd))
  }

  func paint(_ text: String, _ colour: Colour?) -> String {
    guard self.colour, let colour, !text.isEmpty else { return text }
    return "\u{1B}[\(colour.rawValue)m\(text)\u{1B}[0m"
  }
}

enum Colour: String, Sendable {
  case bold = "1"
  case dim = "2"
  case red = "31"
  case green = "32"
  case yellow = "33"
  case blue = "34"
  case magenta = "35"
  case cyan = "36"
}

enum Terminal {
  static func isTerminal(_ fd: Int32) -> Bool { isatty(fd) == 1 }

  static func columns(_ fd: Int32) -> Int? {
    var size = winsize()
    if ioctl(fd, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 { return Int(size.ws_col) }
    if let text = ProcessInfo.processInfo.environment["COLUMNS"], let value = Int(text), value > 0 {
      return value
    }
    return nil
  }

  /// Carriage return plus "erase line": where a redrawn status line is wiped before
  /// a log line or the final state takes its place.
  static let clearLine = "\r\u{1B}[2K"
}

/// Writes text to stderr unbuffered (status lines, the final state, notices), so it
/// interleaves with the log on stdout in the order things happened.
func printError(_ text: String, newline: Bool = true) {
  FileHandle.standardError.write(Data((newline ? text + "\n" : text).utf8))
}
