import Foundation

struct TemplateToken: Equatable {
  enum Kind: Equatable {
    case number(Double)
    case string(String)
    case identifier(String)
    case punctuator(String)
    case regex(pattern: String, flags: String)
    case end
  }

  let kind: Kind
  /// Scalar offsets in the template string.
  let start: Int
  let end: Int
}

/// Tokenizes the expression of one `{{ ... }}`. The lexer, not a search for `}}`,
/// decides where the expression ends, so `{{ {a: {b: 1}} }}` and `{{ '}}' }}` work.
///
/// A `/` starts a regular expression where an operand is expected (at the start, after
/// an operator, `(`, `[`, `,`, `:` or `typeof`) and is division elsewhere, which is the
/// rule JavaScript engines apply in expression context.
struct TemplateLexer {
  let scalars: [Unicode.Scalar]
  var pos: Int
  var braceDepth = 0
  var tokens: [TemplateToken] = []

  static let punctuators: [String] = [
    "===", "!==", "...", "**", "==", "!=", "<=", ">=", "&&", "||", "??", "?.", "=>",
    "(", ")", "[", "]", "{", "}", ",", ":", "?", ".", "!", "+", "-", "*", "/", "%", "<", ">", "=", "&",
    "|", "^", "~", ";",
  ]

  static let keywordsBeforeOperand: Set<String> = [
    "typeof", "void", "in", "instanceof", "return", "delete", "new", "case", "of",
  ]

  /// Lexes from `start` (just after `{{`) to the closing `}}`; returns the tokens and
  /// the offset just past the `}}`.
  static func tokenize(_ scalars: [Unicode.Scalar], from start: Int, opening: Int) throws(TemplateFailure)
    -> (
      tokens: [TemplateToken], end: Int
    )
  {
    var lexer = TemplateLexer(scalars: scalars, pos: start)
    while true {
      lexer.skipWhitespace()
      guard lexer.pos < scalars.count else {
        throw TemplateFailure(message: "unterminated '{{'", offset: opening)
      }
      if lexer.braceDepth == 0, lexer.at("}}") {
        let endToken = TemplateToken(kind: .end, start: lexer.pos, end: lexer.pos)
        lexer.tokens.append(endToken)
        return (lexer.tokens, lexer.pos + 2)
      }
      try lexer.lexToken()
    }
  }

  func at(_ text: String) -> Bool {
    var i = pos
    for scalar in text.unicodeScalars {
      guard i < scalars.count, scalars[i] == scalar else { return false }
      i += 1
    }
    return true
  }

  mutating func skipWhitespace() {
    while pos < scalars.count, scalars[pos].properties.isWhitespace { pos += 1 }
  }

  var regexAllowed: Bool {
    guard let last = tokens.last else { return true }
    switch last.kind {
    case .number, .string, .regex, .end: return false
    case .identifier(let name): return TemplateLexer.keywordsBeforeOperand.contains(name)
    case .punctuator(let p): return ![")", "]", "}"].contains(p)
    }
  }

  static func isIdentifierStart(_ s: Unicode.Scalar) -> Bool {
    s == "_" || s == "$" || s.properties.isAlphabetic
  }

  static func isIdentifierPart(_ s: Unicode.Scalar) -> Bool {
    isIdentifierStart(s) || ("0"..."9").contains(s) || s.properties.numericType != nil
  }

  mutating func lexToken() throws(TemplateFailure) {
    let start = pos
    let c = scalars[pos]
    if c == "\"" || c == "'" || c == "`" {
      let text = try lexString(quote: c)
      tokens.append(TemplateToken(kind: .string(text), start: start, end: pos))
      return
    }
    if ("0"..."9").contains(c)
      || (c == "." && pos + 1 < scalars.count && ("0"..."9").contains(scalars[pos + 1]))
    {
      let value = try lexNumber()
      tokens.append(TemplateToken(kind: .number(value), start: start, end: pos))
      return
    }
    if TemplateLexer.isIdentifierStart(c) {
      while pos < scalars.count, TemplateLexer.isIdentifierPart(scalars[pos]) { pos += 1 }
      let name = String(String.UnicodeScalarView(scalars[start..<pos]))
      tokens.append(TemplateToken(kind: .identifier(name), start: start, end: pos))
      return
    }
    if c == "/", regexAllowed {
      let (pattern, flags) = try lexRegex()
      tokens.append(TemplateToken(kind: .regex(pattern: pattern, flags: flags), start: start, end: pos))
      return
    }
    for p in TemplateLexer.punctuators where at(p) {
      // `a?.5:1` is a conditional, not optional chaining.
      if p == "?.", pos + 2 < scalars.count, ("0"..."9").contains(scalars[pos + 2]) { continue }
      pos += p.unicodeScalars.count
      if p == "{" { braceDepth += 1 }
      // A stray `}` is left for the parser to report; it must not hide the closing `}}`.
      if p == "}" { braceDepth = max(0, braceDepth - 1) }
      tokens.append(TemplateToken(kind: .punctuator(p), start: start, end: pos))
      return
    }
    throw TemplateFailure(message: "unexpected character '\(Character(c))'", offset: start)
  }

  mutating func lexString(quote: Unicode.Scalar) throws(TemplateFailure) -> String {
    let start = pos
    pos += 1
    var out = String.UnicodeScalarView()
    while true {
      guard pos < scalars.count else {
        throw TemplateFailure(message: "unterminated string literal", offset: start)
      }
      let c = scalars[pos]
      if c == quote {
        pos += 1
        return String(out)
      }
      if quote == "`", c == "$", pos + 1 < scalars.count, scalars[pos + 1] == "{" {
        throw TemplateFailure(
          message: "template literal substitutions (${...}) are not supported; use '+'", offset: pos)
      }
      if c == "\n", quote != "`" {
        throw TemplateFailure(message: "unterminated string literal", offset: start)
      }
      pos += 1
      guard c == "\\" else {
        out.append(c)
        continue
      }
      guard pos < scalars.count else {
        throw TemplateFailure(message: "unterminated string literal", offset: start)
      }
      let e = scalars[pos]
      pos += 1
      switch e {
      case "n": out.append("\n")
      case "t": out.append("\t")
      case "r": out.append("\r")
      case "b": out.append("\u{08}")
      case "f": out.append("\u{0C}")
      case "v": out.append("\u{0B}")
      case "0": out.append("\u{00}")
      case "\n": break
      case "x":
        guard let value = hex(count: 2), let scalar = Unicode.Scalar(value) else {
          throw TemplateFailure(message: "invalid \\x escape", offset: pos - 2)
        }
        out.append(scalar)
      case "u":
        let escapeStart = pos - 2
        var value: UInt32?
        if pos < scalars.count, scalars[pos] == "{" {
          pos += 1
          let digitsStart = pos
          while pos < scalars.count, scalars[pos].properties.isASCIIHexDigit { pos += 1 }
          if pos < scalars.count, scalars[pos] == "}", pos > digitsStart, pos - digitsStart <= 6 {
            value = UInt32(String(String.UnicodeScalarView(scalars[digitsStart..<pos])), radix: 16)
            pos += 1
          }
        } else {
          value = hex(count: 4)
          if let high = value, (0xD800...0xDBFF).contains(high), at("\\u") {
            let save = pos
            pos += 2
            if let low = hex(count: 4), (0xDC00...0xDFFF).contains(low) {
              value = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
            } else {
              pos = save
            }
          }
        }
        guard let value else { throw TemplateFailure(message: "invalid \\u escape", offset: escapeStart) }
        out.append(Unicode.Scalar(value) ?? "\u{FFFD}")
      default: out.append(e)
      }
    }
  }

  mutating func hex(count: Int) -> UInt32? {
    guard pos + count <= scalars.count else { return nil }
    let text = String(String.UnicodeScalarView(scalars[pos..<pos + count]))
    guard text.unicodeScalars.allSatisfy(\.properties.isASCIIHexDigit), let value = UInt32(text, radix: 16)
    else {
      return nil
    }
    pos += count
    return value
  }

  mutating func lexNumber() throws(TemplateFailure) -> Double {
    let start = pos
    if scalars[pos] == "0", pos + 1 < scalars.count,
      ["x", "X", "o", "O", "b", "B"].contains(scalars[pos + 1])
    {
      let radix = ["x": 16, "o": 8, "b": 2][Character(scalars[pos + 1]).lowercased()] ?? 16
      pos += 2
      let digitsStart = pos
      while pos < scalars.count, scalars[pos].properties.isASCIIHexDigit { pos += 1 }
      let digits = String(String.UnicodeScalarView(scalars[digitsStart..<pos]))
      guard let value = UInt64(digits, radix: radix) else {
        throw TemplateFailure(message: "invalid number", offset: start)
      }
      return Double(value)
    }
    var text = ""
    func digits() {
      while pos < scalars.count, ("0"..."9").contains(scalars[pos]) || scalars[pos] == "_" {
        if scalars[pos] != "_" { text.unicodeScalars.append(scalars[pos]) }
        pos += 1
      }
    }
    digits()
    if pos < scalars.count, scalars[pos] == "." {
      text += text.isEmpty ? "0." : "."
      pos += 1
      let before = text.count
      digits()
      if text.count == before { text += "0" }
    }
    if pos < scalars.count, scalars[pos] == "e" || scalars[pos] == "E" {
      let save = pos
      var exponent = "e"
      pos += 1
      if pos < scalars.count, scalars[pos] == "+" || scalars[pos] == "-" {
        exponent.unicodeScalars.append(scalars[pos])
        pos += 1
      }
      let digitsStart = pos
      while pos < scalars.count, ("0"..."9").contains(scalars[pos]) {
        exponent.unicodeScalars.append(scalars[pos])
        pos += 1
      }
      if pos == digitsStart { pos = save } else { text += exponent }
    }
    if pos < scalars.count, TemplateLexer.isIdentifierStart(scalars[pos]) {
      throw TemplateFailure(message: "invalid number", offset: start)
    }
    guard let value = Double(text) else { throw TemplateFailure(message: "invalid number", offset: start) }
    return value
  }

  mutating func lexRegex() throws(TemplateFailure) -> (String, String) {
    let start = pos
    pos += 1
    var inClass = false
    var pattern = String.UnicodeScalarView()
    while true {
      guard pos < scalars.count, scalars[pos] != "\n" else {
        throw TemplateFailure(message: "unterminated regular expression", offset: start)
      }
      let c = scalars[pos]
      pos += 1
      if c == "\\" {
        guard pos < scalars.count else {
          throw TemplateFailure(message: "unterminated regular expression", offset: start)
        }
        pattern.append(c)
        pattern.append(scalars[pos])
        pos += 1
        continue
      }
      if c == "[" { inClass = true }
      if c == "]" { inClass = false }
      if c == "/", !inClass { break }
      pattern.append(c)
    }
    let flagsStart = pos
    while pos < scalars.count, TemplateLexer.isIdentifierPart(scalars[pos]) { pos += 1 }
    if pattern.isEmpty {
      throw TemplateFailure(message: "empty regular expression", offset: start)
    }
    return (String(pattern), String(String.UnicodeScalarView(scalars[flagsStart..<pos])))
  }
}
