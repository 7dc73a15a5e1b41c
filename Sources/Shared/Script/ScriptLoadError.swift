import Foundation

/// A position in a script file, 1-based as editors show it.
public struct SourceLocation: Sendable, Hashable, CustomStringConvertible {
  public let file: String
  public let line: Int
  public let column: Int

  public init(file: String, line: Int, column: Int) {
    self.file = file
    self.line = line
    self.column = column
  }

  public var description: String { "\(file):\(line):\(column)" }
}

/// Why a script file could not be read. It names the position and, where the parser
/// knew it, the value being read, because "expected ','" alone does not tell an author
/// which of forty steps to look at.
public struct ScriptLoadError: Error, CustomStringConvertible, Sendable {
  public let file: String
  public let line: Int
  public let column: Int
  /// The enclosing value (object or array) being read when the error was found.
  public let path: JSONPath?
  public let message: String

  public init(file: String, line: Int, column: Int, path: JSONPath?, message: String) {
    self.file = file
    self.line = line
    self.column = column
    self.path = path
    self.message = message
  }

  public var location: SourceLocation { SourceLocation(file: file, line: line, column: column) }

  public var description: String {
    var text = "\(file):\(line):\(column): \(message)"
    if let path, !path.isRoot { text += " (at \(path))" }
    return text
  }
}
