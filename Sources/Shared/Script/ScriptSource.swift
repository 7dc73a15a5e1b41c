import Foundation

/// How a script file was written; both load to the same `JSONValue`.
public enum ScriptFormat: String, Sendable, Hashable {
  /// JSON with comments, trailing commas and duplicate keys, as Pinokio reads it.
  case json
  /// `module.exports = { ... }` holding a plain object literal.
  case commonJS
}

/// A loaded script: its value plus where each value started in the file, so later
/// checks (validation, template errors) can point at a line instead of a path.
public struct ParsedScriptDocument: Sendable {
  public let value: JSONValue
  public let file: String
  public let format: ScriptFormat
  let offsets: [JSONPath: Int]
  let lines: LineTable

  /// Where the value at `path` begins; nil for a path that is not in the document.
  public func location(of path: JSONPath) -> SourceLocation? {
    guard let offset = offsets[path] else { return nil }
    let (line, column) = lines.position(of: offset)
    return SourceLocation(file: file, line: line, column: column)
  }
}

/// Maps byte offsets to 1-based line and column. Columns count Unicode scalars, so a
/// line holding non-ASCII text still points at the right character.
struct LineTable: Sendable {
  let bytes: [UInt8]
  let starts: [Int]

  init(_ bytes: [UInt8]) {
    self.bytes = bytes
    var starts = [0]
    for (i, byte) in bytes.enumerated() where byte == UInt8(ascii: "\n") { starts.append(i + 1) }
    self.starts = starts
  }

  func position(of offset: Int) -> (line: Int, column: Int) {
    var low = 0
    var high = starts.count - 1
    while low < high {
      let mid = (low + high + 1) / 2
      if starts[mid] <= offset { low = mid } else { high = mid - 1 }
    }
    let start = starts[low]
    let end = min(offset, bytes.count)
    var column = 1
    var i = start
    while i < end {
      if bytes[i] & 0xC0 != 0x80 { column += 1 }
      i += 1
    }
    return (low + 1, column)
  }
}

/// Reads script files. Pinokio scripts come as JSON (with the comments and duplicate
/// keys people leave in them) or as CommonJS modules whose export is an object literal;
/// the format is told by content because repositories name files inconsistently.
/// Nothing is ever executed: a module that computes its export is refused.
public enum ScriptSource {
  /// Nesting deeper than this is refused so that hostile input cannot exhaust the stack.
  public static let maximumDepth = 256

  public static func parse(_ text: String, file: String) throws(ScriptLoadError) -> ParsedScriptDocument {
    var parser = ScriptParser(bytes: Array(text.utf8), file: file)
    return try parser.parseDocument()
  }

  /// JSON for `JSON.parse` in templates: any value at the top, no module syntax, and
  /// the same depth limit as scripts. Also how the coordinator reads back values it
  /// stored as JSON text: several times faster than `JSONDecoder`, which goes through
  /// `Codable` for every member.
  public static func parseJSONValue(_ text: String) -> Result<JSONValue, ScriptLoadError> {
    var parser = ScriptParser(bytes: Array(text.utf8), file: "JSON")
    do throws(ScriptLoadError) {
      return .success(try parser.parseBareJSON())
    } catch {
      return .failure(error)
    }
  }
}

private struct ScriptParser {
  let bytes: [UInt8]
  let file: String
  var pos = 0
  var mode: ScriptFormat = .json
  var depth = 0
  var offsets: [JSONPath: Int] = [:]

  init(bytes: [UInt8], file: String) {
    self.bytes = bytes
    self.file = file
  }

  // MARK: Documents

  mutating func parseDocument() throws(ScriptLoadError) -> ParsedScriptDocument {
    if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { pos = 3 }
    try skipTrivia()
    guard pos < bytes.count else {
      throw error("empty script: expected a JSON object or 'module.exports = { ... }'", path: nil)
    }
    let value: JSONValue
    switch bytes[pos] {
    case UInt8(ascii: "{"):
      mode = .json
      value = try parseValue(path: .root) ?? .null
      try skipTrivia()
      if pos < bytes.count {
        throw error("unexpected \(describeHere()) after the script's top-level object", path: nil)
      }
    case UInt8(ascii: "["):
      throw error("a script must be an object ({ \"run\": [...] }), not an array", path: nil)
    default:
      mode = .commonJS
      value = try parseModule()
    }
    return ParsedScriptDocument(
      value: value, file: file, format: mode, offsets: offsets, lines: LineTable(bytes))
  }

  mutating func parseBareJSON() throws(ScriptLoadError) -> JSONValue {
    try skipTrivia()
    let value = try parseValue(path: .root) ?? .null
    try skipTrivia()
    if pos < bytes.count { throw error("unexpected \(describeHere()) after the JSON value", path: nil) }
    return value
  }

  mutating func parseModule() throws(ScriptLoadError) -> JSONValue {
    // A "use strict" directive is harmless and common at the top of modules.
    if let quote = peek(), quote == UInt8(ascii: "'") || quote == UInt8(ascii: "\"") {
      let start = pos
      let directive = try parseString(quote: quote, path: nil)
      guard directive == "use strict" else {
        pos = start
        throw error(
          "expected 'module.exports = { ... }' or a JSON object, found a string", path: nil)
      }
      try skipTrivia()
      if peek() == UInt8(ascii: ";") { pos += 1 }
      try skipTrivia()
    }
    let start = pos
    let word = readIdentifier()
    guard word == "module" else {
      pos = start
      let found = word.map { "'\($0)'" } ?? describeHere()
      let hint =
        ["const", "let", "var", "import", "require", "export", "function", "async"].contains(word ?? "")
        ? "; only object-literal modules (`module.exports = { ... }`) are supported" : ""
      throw error(
        "expected a JSON object or 'module.exports = { ... }', found \(found)\(hint)", path: nil)
    }
    try skipTrivia()
    try expect(".", "expected '.exports' after 'module'")
    try skipTrivia()
    let exportsStart = pos
    guard readIdentifier() == "exports" else {
      pos = exportsStart
      throw error("expected 'exports' after 'module.'", path: nil)
    }
    try skipTrivia()
    try expect("=", "expected '=' after 'module.exports'")
    try skipTrivia()
    guard pos < bytes.count else {
      throw error("expected an object literal after 'module.exports ='", path: nil)
    }
    if bytes[pos] != UInt8(ascii: "{") {
      let valueStart = pos
      let word = readIdentifier()
      var isFunction = word == "function" || word == "async" || bytes[valueStart] == UInt8(ascii: "(")
      if let word, !isFunction {
        try skipTrivia()
        isFunction = bytes[pos...].starts(with: Array("=>".utf8))
        pos = valueStart
        if !isFunction {
          throw error(
            "'module.exports' is assigned '\(word)'; only object-literal modules (`module.exports = { ... }`) are supported",
            path: nil)
        }
      }
      pos = valueStart
      if isFunction {
        throw error(
          "this module exports a function; only object-literal modules (`module.exports = { ... }`) are supported",
          path: nil)
      }
      throw error(
        "expected an object literal after 'module.exports =', found \(describeHere()); only object-literal modules (`module.exports = { ... }`) are supported",
        path: nil)
    }
    let value = try parseValue(path: .root) ?? .null
    try skipTrivia()
    if peek() == UInt8(ascii: ";") { pos += 1 }
    try skipTrivia()
    if pos < bytes.count {
      throw error(
        "unexpected \(describeHere()) after 'module.exports = { ... }'; a module may hold only that statement",
        path: nil)
    }
    return value
  }

  // MARK: Values

  /// Returns nil for JavaScript's `undefined`, which drops an object key.
  mutating func parseValue(path: JSONPath) throws(ScriptLoadError) -> JSONValue? {
    guard pos < bytes.count else { throw error("expected a value, found end of input", path: path) }
    offsets[path] = pos
    let byte = bytes[pos]
    switch byte {
    case UInt8(ascii: "{"): return try parseObject(path: path)
    case UInt8(ascii: "["): return try parseArray(path: path)
    case UInt8(ascii: "\""): return .string(try parseString(quote: byte, path: path))
    case UInt8(ascii: "'"), UInt8(ascii: "`"):
      guard mode == .commonJS else {
        throw error("JSON strings use double quotes", path: path)
      }
      return .string(try parseString(quote: byte, path: path))
    case UInt8(ascii: "-"), UInt8(ascii: "+"), UInt8(ascii: "."), UInt8(ascii: "0")...UInt8(ascii: "9"):
      return .number(try parseNumber(path: path))
    default:
      let start = pos
      guard let word = readIdentifier() else {
        throw error("expected a value, found \(describeHere())", path: path)
      }
      switch word {
      case "true": return .bool(true)
      case "false": return .bool(false)
      case "null": return .null
      case "undefined" where mode == .commonJS: return nil
      default:
        try skipTrivia()
        let isCall = peek() == UInt8(ascii: "(")
        pos = start
        if mode == .json {
          throw error("expected a value, found '\(word)'", path: path)
        }
        if isCall {
          throw error(
            "unsupported call '\(word)(...)': a module must export a plain object literal (no function calls, variables or expressions)",
            path: path)
        }
        throw error(
          "unsupported value '\(word)': a module must export a plain object literal (no variables, function calls or expressions)",
          path: path)
      }
    }
  }

  mutating func enter(path: JSONPath) throws(ScriptLoadError) {
    depth += 1
    if depth > ScriptSource.maximumDepth {
      throw error("nesting too deep (more than \(ScriptSource.maximumDepth) levels)", path: path)
    }
  }

  mutating func parseObject(path: JSONPath) throws(ScriptLoadError) -> JSONValue {
    try enter(path: path)
    defer { depth -= 1 }
    pos += 1
    var object = JSONObject()
    while true {
      try skipTrivia()
      guard pos < bytes.count else {
        throw error("expected a property name or '}', found end of input (unclosed '{')", path: path)
      }
      if bytes[pos] == UInt8(ascii: "}") {
        pos += 1
        return .object(object)
      }
      let key = try parseKey(path: path)
      try skipTrivia()
      guard peek() == UInt8(ascii: ":") else {
        throw error(
          "expected ':' after object key \(JSONValue.string(key).serialized()), found \(describeHere())",
          path: path)
      }
      pos += 1
      try skipTrivia()
      let childPath = path.appending(key: key)
      if object[key] != nil {
        // A duplicate key replaces the earlier value; forget where the earlier one's
        // children were so locations only name values that exist.
        offsets = offsets.filter { !$0.key.hasPrefix(childPath) }
      }
      let value = try parseValue(path: childPath)
      object[key] = value
      if value == nil { offsets[childPath] = nil }
      try skipTrivia()
      guard pos < bytes.count else {
        throw error("expected ',' or '}' after object member, found end of input (unclosed '{')", path: path)
      }
      switch bytes[pos] {
      case UInt8(ascii: ","): pos += 1
      case UInt8(ascii: "}"): continue
      default: throw error("expected ',' or '}' after object member, found \(describeHere())", path: path)
      }
    }
  }

  mutating func parseKey(path: JSONPath) throws(ScriptLoadError) -> String {
    let byte = bytes[pos]
    if byte == UInt8(ascii: "\"") { return try parseString(quote: byte, path: path) }
    guard mode == .commonJS else {
      throw error("expected a double-quoted property name or '}', found \(describeHere())", path: path)
    }
    if byte == UInt8(ascii: "'") { return try parseString(quote: byte, path: path) }
    if (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || byte == UInt8(ascii: ".") {
      return JSNumber.string(try parseNumber(path: path))
    }
    if byte == UInt8(ascii: "[") {
      throw error("computed property names ([...]) are not supported in a script", path: path)
    }
    guard let word = readIdentifier() else {
      throw error("expected a property name or '}', found \(describeHere())", path: path)
    }
    return word
  }

  mutating func parseArray(path: JSONPath) throws(ScriptLoadError) -> JSONValue {
    try enter(path: path)
    defer { depth -= 1 }
    pos += 1
    var items: [JSONValue] = []
    while true {
      try skipTrivia()
      guard pos < bytes.count else {
        throw error("expected a value or ']', found end of input (unclosed '[')", path: path)
      }
      if bytes[pos] == UInt8(ascii: "]") {
        pos += 1
        return .array(items)
      }
      if bytes[pos] == UInt8(ascii: ",") {
        throw error("expected a value or ']', found ','", path: path)
      }
      let value = try parseValue(path: path.appending(index: items.count))
      items.append(value ?? .null)
      try skipTrivia()
      guard pos < bytes.count else {
        throw error("expected ',' or ']' after array element, found end of input (unclosed '[')", path: path)
      }
      switch bytes[pos] {
      case UInt8(ascii: ","): pos += 1
      case UInt8(ascii: "]"): continue
      default: throw error("expected ',' or ']' after array element, found \(describeHere())", path: path)
      }
    }
  }

  mutating func parseString(quote: UInt8, path: JSONPath?) throws(ScriptLoadError) -> String {
    let start = pos
    pos += 1
    var out: [UInt8] = []
    let js = mode == .commonJS
    while true {
      guard pos < bytes.count else { throw error("unterminated string", at: start, path: path) }
      let byte = bytes[pos]
      if byte == quote {
        pos += 1
        return String(decoding: out, as: UTF8.self)
      }
      if byte == UInt8(ascii: "\n") || byte == UInt8(ascii: "\r") {
        if quote != UInt8(ascii: "`") {
          throw error(
            "unterminated string (a line break inside a string must be written \\n)", at: start, path: path)
        }
      }
      if quote == UInt8(ascii: "`"), byte == UInt8(ascii: "$"), pos + 1 < bytes.count,
        bytes[pos + 1] == UInt8(ascii: "{")
      {
        throw error(
          "template literal substitutions (${...}) are not supported; write a plain string", path: path)
      }
      if byte != UInt8(ascii: "\\") {
        out.append(byte)
        pos += 1
        continue
      }
      let escapeStart = pos
      pos += 1
      guard pos < bytes.count else { throw error("unterminated string", at: start, path: path) }
      let e = bytes[pos]
      pos += 1
      switch e {
      case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
      case UInt8(ascii: "b"): out.append(0x08)
      case UInt8(ascii: "f"): out.append(0x0C)
      case UInt8(ascii: "n"): out.append(0x0A)
      case UInt8(ascii: "r"): out.append(0x0D)
      case UInt8(ascii: "t"): out.append(0x09)
      case UInt8(ascii: "u"):
        let scalar = try parseUnicodeEscape(escapeStart: escapeStart, path: path)
        out.append(contentsOf: Array(String(Character(scalar)).utf8))
      case UInt8(ascii: "'") where js, UInt8(ascii: "`") where js: out.append(e)
      case UInt8(ascii: "v") where js: out.append(0x0B)
      case UInt8(ascii: "0") where js: out.append(0)
      case UInt8(ascii: "x") where js:
        guard let value = hexValue(count: 2) else {
          throw error("invalid \\x escape (expected two hex digits)", at: escapeStart, path: path)
        }
        out.append(contentsOf: Array(String(Character(Unicode.Scalar(UInt8(value)))).utf8))
      case UInt8(ascii: "\n") where js: break
      case UInt8(ascii: "\r") where js:
        if peek() == UInt8(ascii: "\n") { pos += 1 }
      default:
        if js {
          // JavaScript keeps the character of an unknown escape ("\q" is "q").
          pos -= 1
          let scalarStart = pos
          pos += 1
          while pos < bytes.count, bytes[pos] & 0xC0 == 0x80 { pos += 1 }
          out.append(contentsOf: bytes[scalarStart..<pos])
        } else {
          throw error("invalid escape sequence '\\\(printable(e))' in string", at: escapeStart, path: path)
        }
      }
    }
  }

  mutating func parseUnicodeEscape(escapeStart: Int, path: JSONPath?) throws(ScriptLoadError)
    -> Unicode.Scalar
  {
    if mode == .commonJS, peek() == UInt8(ascii: "{") {
      pos += 1
      var value: UInt32 = 0
      var digits = 0
      while let byte = peek(), let digit = hexDigit(byte) {
        value = value &* 16 &+ UInt32(digit)
        digits += 1
        pos += 1
        if digits > 6 { break }
      }
      guard digits > 0, digits <= 6, peek() == UInt8(ascii: "}"), let scalar = Unicode.Scalar(value) else {
        throw error("invalid \\u{...} escape", at: escapeStart, path: path)
      }
      pos += 1
      return scalar
    }
    guard let high = hexValue(count: 4) else {
      throw error("invalid \\u escape (expected four hex digits)", at: escapeStart, path: path)
    }
    if (0xD800...0xDBFF).contains(high), bytes[pos...].starts(with: [UInt8(ascii: "\\"), UInt8(ascii: "u")]) {
      let save = pos
      pos += 2
      if let low = hexValue(count: 4), (0xDC00...0xDFFF).contains(low) {
        return Unicode.Scalar(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))!
      }
      pos = save
    }
    return Unicode.Scalar(high) ?? "\u{FFFD}"
  }

  mutating func hexValue(count: Int) -> UInt32? {
    guard pos + count <= bytes.count else { return nil }
    var value: UInt32 = 0
    for i in 0..<count {
      guard let digit = hexDigit(bytes[pos + i]) else { return nil }
      value = value * 16 + UInt32(digit)
    }
    pos += count
    return value
  }

  func hexDigit(_ byte: UInt8) -> UInt8? {
    switch byte {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
    default: nil
    }
  }

  mutating func parseNumber(path: JSONPath) throws(ScriptLoadError) -> Double {
    let start = pos
    let js = mode == .commonJS
    var negative = false
    if peek() == UInt8(ascii: "-") || peek() == UInt8(ascii: "+") {
      if peek() == UInt8(ascii: "+"), !js { throw error("expected a value, found '+'", path: path) }
      negative = peek() == UInt8(ascii: "-")
      pos += 1
    }
    if js, pos + 1 < bytes.count, bytes[pos] == UInt8(ascii: "0"),
      let radix = [UInt8(ascii: "x"): 16, UInt8(ascii: "o"): 8, UInt8(ascii: "b"): 2][bytes[pos + 1] | 0x20]
    {
      pos += 2
      var value = 0.0
      var digits = 0
      while let byte = peek() {
        if byte == UInt8(ascii: "_") {
          pos += 1
          continue
        }
        guard let digit = hexDigit(byte), Int(digit) < radix else { break }
        value = value * Double(radix) + Double(digit)
        digits += 1
        pos += 1
      }
      guard digits > 0 else { throw error("invalid number", at: start, path: path) }
      try checkNumberEnd(start: start, path: path)
      return negative ? -value : value
    }
    if js, let word = peekIdentifier(), word == "Infinity" || word == "NaN" {
      throw error("'\(word)' is not a JSON value; write a number", at: start, path: path)
    }
    var text = negative ? "-" : ""
    var intDigits = 0
    while let byte = peek(), isDigit(byte) || (js && byte == UInt8(ascii: "_") && intDigits > 0) {
      if byte != UInt8(ascii: "_") {
        text.append(Character(Unicode.Scalar(byte)))
        intDigits += 1
      }
      pos += 1
    }
    if !js, intDigits > 1, text.hasPrefix("0") || text.hasPrefix("-0") {
      throw error("invalid number (leading zeros are not allowed in JSON)", at: start, path: path)
    }
    var fracDigits = 0
    if peek() == UInt8(ascii: ".") {
      pos += 1
      text += "."
      while let byte = peek(), isDigit(byte) || (js && byte == UInt8(ascii: "_") && fracDigits > 0) {
        if byte != UInt8(ascii: "_") {
          text.append(Character(Unicode.Scalar(byte)))
          fracDigits += 1
        }
        pos += 1
      }
      if fracDigits == 0 {
        if !js || intDigits == 0 { throw error("invalid number", at: start, path: path) }
        text += "0"
      }
    }
    if intDigits == 0 {
      if !js || fracDigits == 0 { throw error("invalid number", at: start, path: path) }
      text = text.replacingOccurrences(of: ".", with: "0.")
    }
    if let byte = peek(), byte | 0x20 == UInt8(ascii: "e") {
      pos += 1
      text += "e"
      if let sign = peek(), sign == UInt8(ascii: "+") || sign == UInt8(ascii: "-") {
        text.append(Character(Unicode.Scalar(sign)))
        pos += 1
      }
      var expDigits = 0
      while let byte = peek(), isDigit(byte) {
        text.append(Character(Unicode.Scalar(byte)))
        expDigits += 1
        pos += 1
      }
      if expDigits == 0 { throw error("invalid number (missing exponent digits)", at: start, path: path) }
    }
    try checkNumberEnd(start: start, path: path)
    guard let value = Double(text) else { throw error("invalid number", at: start, path: path) }
    return value
  }

  mutating func checkNumberEnd(start: Int, path: JSONPath) throws(ScriptLoadError) {
    if let byte = peek(), isIdentifierByte(byte) || byte == UInt8(ascii: ".") {
      throw error("invalid number", at: start, path: path)
    }
  }

  // MARK: Trivia and tokens

  mutating func skipTrivia() throws(ScriptLoadError) {
    while pos < bytes.count {
      switch bytes[pos] {
      case 0x20, 0x09, 0x0A, 0x0D, 0x0B, 0x0C:
        pos += 1
      case 0xC2 where pos + 1 < bytes.count && bytes[pos + 1] == 0xA0:
        pos += 2
      case 0xEF where bytes[pos...].starts(with: [0xEF, 0xBB, 0xBF]):
        pos += 3
      case UInt8(ascii: "/") where pos + 1 < bytes.count && bytes[pos + 1] == UInt8(ascii: "/"):
        while pos < bytes.count, bytes[pos] != UInt8(ascii: "\n") { pos += 1 }
      case UInt8(ascii: "/") where pos + 1 < bytes.count && bytes[pos + 1] == UInt8(ascii: "*"):
        let start = pos
        pos += 2
        while true {
          guard pos + 1 < bytes.count else {
            throw error("unterminated block comment", at: start, path: nil)
          }
          if bytes[pos] == UInt8(ascii: "*"), bytes[pos + 1] == UInt8(ascii: "/") {
            pos += 2
            break
          }
          pos += 1
        }
      default:
        return
      }
    }
  }

  mutating func expect(_ character: Character, _ message: String) throws(ScriptLoadError) {
    guard let ascii = character.asciiValue, peek() == ascii else {
      throw error("\(message), found \(describeHere())", path: nil)
    }
    pos += 1
  }

  func peek() -> UInt8? { pos < bytes.count ? bytes[pos] : nil }

  func isDigit(_ byte: UInt8) -> Bool { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) }

  func isIdentifierByte(_ byte: UInt8) -> Bool {
    switch byte {
    case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
      UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "$"):
      true
    default: byte >= 0x80
    }
  }

  func peekIdentifier() -> String? {
    var copy = self
    return copy.readIdentifier()
  }

  /// Reads an identifier (ASCII letters, digits, `_`, `$`, and any non-ASCII letter).
  mutating func readIdentifier() -> String? {
    guard let first = peek(), isIdentifierByte(first), !isDigit(first) else { return nil }
    let start = pos
    while pos < bytes.count {
      let byte = bytes[pos]
      if byte < 0x80 {
        guard isIdentifierByte(byte) else { break }
        pos += 1
        continue
      }
      // Decode one scalar and accept it only if it is a letter or digit.
      let scalarStart = pos
      pos += 1
      while pos < bytes.count, bytes[pos] & 0xC0 == 0x80 { pos += 1 }
      let text = String(decoding: bytes[scalarStart..<pos], as: UTF8.self)
      guard let scalar = text.unicodeScalars.first, text.unicodeScalars.count == 1,
        scalar.properties.isAlphabetic || scalar.properties.numericType != nil
      else {
        pos = scalarStart
        break
      }
    }
    return pos > start ? String(decoding: bytes[start..<pos], as: UTF8.self) : nil
  }

  func describeHere() -> String {
    guard pos < bytes.count else { return "end of input" }
    if let word = peekIdentifier() { return "'\(word)'" }
    var end = pos + 1
    while end < bytes.count, bytes[end] & 0xC0 == 0x80 { end += 1 }
    let text = String(decoding: bytes[pos..<end], as: UTF8.self)
    if text == "\n" || text == "\r" { return "end of line" }
    return "'\(text)'"
  }

  func printable(_ byte: UInt8) -> String {
    byte >= 0x20 && byte < 0x7F ? String(Character(Unicode.Scalar(byte))) : String(format: "x%02X", byte)
  }

  func error(_ message: String, at offset: Int? = nil, path: JSONPath?) -> ScriptLoadError {
    let (line, column) = LineTable(bytes).position(of: offset ?? pos)
    return ScriptLoadError(file: file, line: line, column: column, path: path, message: message)
  }
}
