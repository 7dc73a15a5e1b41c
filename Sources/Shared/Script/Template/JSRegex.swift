import Foundation

/// Why a regular expression could not be compiled.
public struct JSRegexError: Error, CustomStringConvertible, Sendable {
  public let source: String
  public let message: String

  public var description: String { "\(message) in regular expression '\(source)'" }
}

/// A JavaScript regular expression run by `NSRegularExpression`. Scripts write regexes
/// in JavaScript syntax both inside templates (`/ 50.+/.test(x)`) and as strings (the
/// `on[].event` of `shell.run`, `"/errno/i"`), so one type serves both.
///
/// ICU and JavaScript agree on the syntax scripts use (classes, groups, quantifiers,
/// anchors, `\d\w\s`, escaped `/`); flags `i`, `m` and `s` map to ICU options, `g`
/// changes what `match`/`replace` do, and `u`, `y`, `d`, `v` are accepted and ignored.
public struct JSRegex: Sendable, Hashable, CustomStringConvertible {
  public let pattern: String
  public let flags: String
  private let compiled: CompiledRegex

  public init(pattern: String, flags: String = "") throws(JSRegexError) {
    var options: NSRegularExpression.Options = []
    for flag in flags {
      switch flag {
      case "i": options.insert(.caseInsensitive)
      case "m": options.insert(.anchorsMatchLines)
      case "s": options.insert(.dotMatchesLineSeparators)
      case "g", "u", "y", "d", "v": break
      default:
        throw JSRegexError(source: "/\(pattern)/\(flags)", message: "invalid flag '\(flag)'")
      }
    }
    if Set(flags).count != flags.count {
      throw JSRegexError(source: "/\(pattern)/\(flags)", message: "repeated flag")
    }
    do {
      compiled = CompiledRegex(try NSRegularExpression(pattern: JSRegex.translate(pattern), options: options))
    } catch {
      throw JSRegexError(source: "/\(pattern)/\(flags)", message: "invalid pattern")
    }
    self.pattern = pattern
    self.flags = flags
  }

  /// Accepts `/pattern/flags` or a bare pattern, which is how `on.event` may be written.
  public init(literal: String) throws(JSRegexError) {
    if literal.hasPrefix("/"), literal.count >= 2, let close = literal.lastIndex(of: "/"),
      close > literal.startIndex
    {
      let flags = String(literal[literal.index(after: close)...])
      if flags.allSatisfy({ $0.isASCII && $0.isLetter }) {
        try self.init(
          pattern: String(literal[literal.index(after: literal.startIndex)..<close]), flags: flags)
        return
      }
    }
    try self.init(pattern: literal)
  }

  public var isGlobal: Bool { flags.contains("g") }

  public var description: String { "/\(pattern)/\(flags)" }

  public static func == (lhs: JSRegex, rhs: JSRegex) -> Bool {
    lhs.pattern == rhs.pattern && lhs.flags == rhs.flags
  }

  public func hash(into hasher: inout Hasher) {
    hasher.combine(pattern)
    hasher.combine(flags)
  }

  public func test(_ string: String) -> Bool {
    compiled.regex.firstMatch(in: string, range: NSRange(string.startIndex..., in: string)) != nil
  }

  /// The whole match followed by each capture group (nil where a group took no part),
  /// or nil when nothing matches.
  public func firstMatch(in string: String) -> [String?]? {
    guard let match = compiled.regex.firstMatch(in: string, range: NSRange(string.startIndex..., in: string))
    else { return nil }
    return JSRegex.groups(of: match, in: string)
  }

  func matches(in string: String) -> [NSTextCheckingResult] {
    compiled.regex.matches(in: string, range: NSRange(string.startIndex..., in: string))
  }

  func firstResult(in string: String) -> NSTextCheckingResult? {
    compiled.regex.firstMatch(in: string, range: NSRange(string.startIndex..., in: string))
  }

  static func groups(of match: NSTextCheckingResult, in string: String) -> [String?] {
    (0..<match.numberOfRanges).map { i in
      let range = match.range(at: i)
      guard range.location != NSNotFound, let swiftRange = Range(range, in: string) else { return nil }
      return String(string[swiftRange])
    }
  }

  /// JavaScript syntax ICU reads differently: `[^]` (any character) is an error in ICU,
  /// and `\/` is fine in both.
  private static func translate(_ pattern: String) -> String {
    pattern.replacingOccurrences(of: "[^]", with: "[\\s\\S]")
  }
}

/// `NSRegularExpression` is immutable once built and documented as safe to use from
/// several threads at once, which is what lets a `JSRegex` be `Sendable`.
private final class CompiledRegex: @unchecked Sendable {
  let regex: NSRegularExpression
  init(_ regex: NSRegularExpression) { self.regex = regex }
}
