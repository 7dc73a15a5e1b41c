import Foundation

/// The built-in methods and global functions. Strings are indexed in UTF-16 units, as
/// in JavaScript, so `length`, `slice` and `indexOf` agree with what Pinokio computes.
enum TemplateMethods {
  typealias Failure = TemplateFailure

  static func call(
    _ name: String, on receiver: TemplateValue, arguments: [TemplateValue], evaluator: TemplateEvaluator,
    _ e: TemplateExpression
  ) throws(Failure) -> TemplateValue {
    let result: TemplateValue?
    switch receiver {
    case .string(let s): result = try stringMethod(name, s, arguments, evaluator, e)
    case .array(let items): result = try arrayMethod(name, items, arguments, evaluator, e)
    case .number(let n): result = try numberMethod(name, n, arguments, evaluator, e)
    case .bool(let b):
      result = name == "toString" ? .string(b ? "true" : "false") : (name == "valueOf" ? .bool(b) : nil)
    case .regex(let regex): result = regexMethod(name, regex, arguments)
    default: result = nil
    }
    guard let result else {
      throw evaluator.fail(
        "unknown method '\(name)' for \(article(receiver.kindName)) \(receiver.kindName)", e)
    }
    if case .string(let s) = result { return try evaluator.checked(s, e) }
    return result
  }

  static func article(_ word: String) -> String {
    ["a", "e", "i", "o", "u"].contains(word.first.map(String.init) ?? "") ? "an" : "a"
  }

  static func argument(_ arguments: [TemplateValue], _ i: Int) -> TemplateValue {
    i < arguments.count ? arguments[i] : .undefined
  }

  /// JavaScript's ToIntegerOrInfinity, clamped to Int range.
  static func integer(_ value: TemplateValue, default fallback: Int = 0) -> Int {
    if case .undefined = value { return fallback }
    let n = value.jsNumber
    if n.isNaN { return 0 }
    if n >= Double(Int.max / 2) { return Int.max / 2 }
    if n <= Double(Int.min / 2) { return Int.min / 2 }
    return Int(n.rounded(.towardZero))
  }

  /// Resolves a relative index (negative counts from the end) into 0...count.
  static func relative(_ value: TemplateValue, count: Int, default fallback: Int) -> Int {
    if case .undefined = value { return fallback }
    let n = integer(value)
    return n < 0 ? max(count + n, 0) : min(n, count)
  }

  static func text(_ units: some Collection<UInt16>) -> String {
    String(decoding: Array(units), as: UTF16.self)
  }

  static func find(_ needle: [UInt16], in haystack: [UInt16], from start: Int) -> Int? {
    let start = max(start, 0)
    if needle.isEmpty { return min(start, haystack.count) }
    guard haystack.count >= needle.count, start <= haystack.count - needle.count else { return nil }
    for i in start...(haystack.count - needle.count)
    where haystack[i] == needle[0] && Array(haystack[i..<i + needle.count]) == needle {
      return i
    }
    return nil
  }

  static func isJSWhitespace(_ unit: UInt16) -> Bool {
    guard let scalar = Unicode.Scalar(unit) else { return false }
    return scalar.properties.isWhitespace || unit == 0xFEFF
  }

  // MARK: Strings

  static func stringMethod(
    _ name: String, _ s: String, _ args: [TemplateValue], _ evaluator: TemplateEvaluator,
    _ e: TemplateExpression
  ) throws(Failure) -> TemplateValue? {
    let units = Array(s.utf16)
    let a0 = argument(args, 0)
    let a1 = argument(args, 1)
    switch name {
    case "toUpperCase", "toLocaleUpperCase": return .string(s.uppercased())
    case "toLowerCase", "toLocaleLowerCase": return .string(s.lowercased())
    case "toString", "valueOf": return .string(s)
    case "trim", "trimStart", "trimEnd":
      var start = 0
      var end = units.count
      if name != "trimEnd" { while start < end, isJSWhitespace(units[start]) { start += 1 } }
      if name != "trimStart" { while end > start, isJSWhitespace(units[end - 1]) { end -= 1 } }
      return .string(text(units[start..<end]))
    case "includes":
      if case .regex = a0 { throw evaluator.fail("includes() takes a string, not a regular expression", e) }
      return .bool(find(Array(a0.jsString.utf16), in: units, from: integer(a1)) != nil)
    case "startsWith", "endsWith":
      let needle = Array(a0.jsString.utf16)
      if name == "startsWith" {
        let start = min(max(integer(a1), 0), units.count)
        return .bool(units[start...].starts(with: needle))
      }
      let end = min(max(integer(a1, default: units.count), 0), units.count)
      return .bool(needle.count <= end && Array(units[(end - needle.count)..<end]) == needle)
    case "indexOf":
      return .number(Double(find(Array(a0.jsString.utf16), in: units, from: integer(a1)) ?? -1))
    case "lastIndexOf":
      let needle = Array(a0.jsString.utf16)
      guard needle.count <= units.count else { return .number(-1) }
      var i = min(integer(a1, default: units.count), units.count - needle.count)
      while i >= 0 {
        if Array(units[i..<i + needle.count]) == needle { return .number(Double(i)) }
        i -= 1
      }
      return .number(-1)
    case "slice":
      let start = relative(a0, count: units.count, default: 0)
      let end = relative(a1, count: units.count, default: units.count)
      return .string(start < end ? text(units[start..<end]) : "")
    case "substring":
      var start = min(max(integer(a0), 0), units.count)
      var end = min(max(integer(a1, default: units.count), 0), units.count)
      if start > end { swap(&start, &end) }
      return .string(text(units[start..<end]))
    case "substr":
      let start = relative(a0, count: units.count, default: 0)
      let length = min(max(integer(a1, default: units.count), 0), units.count - start)
      return .string(text(units[start..<start + length]))
    case "charAt":
      let i = integer(a0)
      return .string(i >= 0 && i < units.count ? text([units[i]]) : "")
    case "charCodeAt":
      let i = integer(a0)
      return .number(i >= 0 && i < units.count ? Double(units[i]) : .nan)
    case "at":
      let i = integer(a0)
      let index = i < 0 ? units.count + i : i
      return index >= 0 && index < units.count ? .string(text([units[index]])) : .undefined
    case "padStart", "padEnd":
      let target = integer(a0)
      let filler = a1 == .undefined ? [UInt16(0x20)] : Array(a1.jsString.utf16)
      guard target > units.count, !filler.isEmpty else { return .string(s) }
      if target > TemplateEvaluator.maximumStringLength { throw evaluator.fail("string too long", e) }
      var pad: [UInt16] = []
      while pad.count < target - units.count { pad.append(contentsOf: filler) }
      pad.removeLast(pad.count - (target - units.count))
      return .string(name == "padStart" ? text(pad + units) : text(units + pad))
    case "repeat":
      let n = a0.jsNumber
      guard n >= 0, n.isFinite else {
        throw evaluator.fail("invalid count for repeat(): \(JSNumber.string(n))", e)
      }
      let count = Int(n.rounded(.towardZero))
      if count > 0, units.count > TemplateEvaluator.maximumStringLength / count {
        throw evaluator.fail("string too long", e)
      }
      return .string(String(repeating: s, count: count))
    case "concat":
      return .string(s + args.map(\.jsString).joined())
    case "split":
      return try split(s, units, a0, a1, evaluator, e)
    case "replace", "replaceAll":
      return try replace(s, units, a0, a1, all: name == "replaceAll", evaluator, e)
    case "match":
      let regex = try compile(a0, evaluator, e)
      if regex.isGlobal {
        let matches = regex.matches(in: s)
        if matches.isEmpty { return .null }
        return .array(matches.map { .string(JSRegex.groups(of: $0, in: s)[0] ?? "") })
      }
      guard let groups = regex.firstMatch(in: s) else { return .null }
      return .array(groups.map { $0.map(TemplateValue.string) ?? .undefined })
    case "search":
      let regex = try compile(a0, evaluator, e)
      guard let match = regex.firstResult(in: s) else { return .number(-1) }
      return .number(Double(match.range.location))
    default:
      return nil
    }
  }

  static func compile(_ value: TemplateValue, _ evaluator: TemplateEvaluator, _ e: TemplateExpression)
    throws(Failure) -> JSRegex
  {
    if case .regex(let regex) = value { return regex }
    do throws(JSRegexError) {
      // JavaScript compiles a string argument of match/search as a pattern.
      return try JSRegex(pattern: value == .undefined ? "(?:)" : value.jsString)
    } catch {
      throw evaluator.fail(error.description, e)
    }
  }

  static func split(
    _ s: String, _ units: [UInt16], _ separator: TemplateValue, _ limitValue: TemplateValue,
    _ evaluator: TemplateEvaluator, _ e: TemplateExpression
  ) throws(Failure) -> TemplateValue {
    let limit = limitValue == .undefined ? Int.max : max(integer(limitValue), 0)
    var parts: [TemplateValue] = []
    func add(_ part: TemplateValue) -> Bool {
      guard parts.count < limit else { return false }
      parts.append(part)
      return true
    }
    switch separator {
    case .undefined:
      _ = add(.string(s))
    case .regex(let regex):
      if units.isEmpty {
        return .array(regex.test(s) ? [] : [.string(s)])
      }
      var last = 0
      for match in regex.matches(in: s) {
        let range = match.range
        // As in JavaScript, an empty match where the previous piece ended (or at the end)
        // does not split.
        if range.length == 0 && (range.location == last || range.location >= units.count) { continue }
        guard add(.string(text(units[last..<range.location]))) else { return .array(parts) }
        for i in 1..<max(match.numberOfRanges, 1) {
          let group = match.range(at: i)
          let value: TemplateValue =
            group.location == NSNotFound
            ? .undefined : .string(text(units[group.location..<group.location + group.length]))
          guard add(value) else { return .array(parts) }
        }
        last = range.location + range.length
      }
      _ = add(.string(text(units[last...])))
    default:
      let needle = Array(separator.jsString.utf16)
      if needle.isEmpty {
        for unit in units where !add(.string(text([unit]))) { break }
        return .array(parts)
      }
      var start = 0
      while let found = find(needle, in: units, from: start) {
        guard add(.string(text(units[start..<found]))) else { return .array(parts) }
        start = found + needle.count
      }
      _ = add(.string(text(units[start...])))
    }
    return .array(parts)
  }

  static func replace(
    _ s: String, _ units: [UInt16], _ pattern: TemplateValue, _ replacement: TemplateValue, all: Bool,
    _ evaluator: TemplateEvaluator, _ e: TemplateExpression
  ) throws(Failure) -> TemplateValue {
    if case .function = replacement {
      throw evaluator.fail("a replacement function is not supported; pass a string", e)
    }
    let template = Array(replacement.jsString.utf16)
    // Each match as UTF-16 ranges: whole match first, then groups (nil when unmatched).
    var matches: [[Range<Int>?]] = []
    if case .regex(let regex) = pattern {
      if all && !regex.isGlobal {
        throw evaluator.fail("replaceAll() needs a global (/g) regular expression", e)
      }
      let found = regex.isGlobal ? regex.matches(in: s) : regex.firstResult(in: s).map { [$0] } ?? []
      for match in found {
        matches.append(
          (0..<match.numberOfRanges).map { i in
            let r = match.range(at: i)
            return r.location == NSNotFound ? nil : r.location..<r.location + r.length
          })
      }
    } else {
      let needle = Array(pattern.jsString.utf16)
      var start = 0
      while let found = find(needle, in: units, from: start) {
        matches.append([found..<found + needle.count])
        if !all { break }
        start = found + max(needle.count, 1)
        if start > units.count { break }
      }
    }
    var out: [UInt16] = []
    var last = 0
    for groups in matches {
      guard let whole = groups[0], whole.lowerBound >= last else { continue }
      out.append(contentsOf: units[last..<whole.lowerBound])
      out.append(contentsOf: expand(template, groups: groups, units: units))
      if out.count > TemplateEvaluator.maximumStringLength { throw evaluator.fail("string too long", e) }
      last = whole.upperBound
    }
    out.append(contentsOf: units[last...])
    return .string(text(out))
  }

  /// Expands `$$`, `$&`, `` $` ``, `$'` and `$1`...`$99` in a replacement string.
  static func expand(_ template: [UInt16], groups: [Range<Int>?], units: [UInt16]) -> [UInt16] {
    let dollar = UInt16(UInt8(ascii: "$"))
    guard template.contains(dollar) else { return template }
    var out: [UInt16] = []
    var i = 0
    func digit(_ unit: UInt16) -> Int? {
      unit >= 0x30 && unit <= 0x39 ? Int(unit - 0x30) : nil
    }
    while i < template.count {
      let c = template[i]
      guard c == dollar, i + 1 < template.count else {
        out.append(c)
        i += 1
        continue
      }
      let next = template[i + 1]
      switch next {
      case dollar:
        out.append(dollar)
        i += 2
      case UInt16(UInt8(ascii: "&")):
        if let whole = groups[0] { out.append(contentsOf: units[whole]) }
        i += 2
      case UInt16(UInt8(ascii: "`")):
        if let whole = groups[0] { out.append(contentsOf: units[..<whole.lowerBound]) }
        i += 2
      case UInt16(UInt8(ascii: "'")):
        if let whole = groups[0] { out.append(contentsOf: units[whole.upperBound...]) }
        i += 2
      default:
        guard let first = digit(next) else {
          out.append(c)
          i += 1
          continue
        }
        var number = first
        var length = 2
        if i + 2 < template.count, let second = digit(template[i + 2]), first * 10 + second < groups.count,
          first * 10 + second > 0
        {
          number = first * 10 + second
          length = 3
        }
        guard number > 0, number < groups.count else {
          out.append(c)
          i += 1
          continue
        }
        if let range = groups[number] { out.append(contentsOf: units[range]) }
        i += length
      }
    }
    return out
  }

  // MARK: Arrays, numbers, regexes

  static func arrayMethod(
    _ name: String, _ items: [TemplateValue], _ args: [TemplateValue], _ evaluator: TemplateEvaluator,
    _ e: TemplateExpression
  ) throws(Failure) -> TemplateValue? {
    let a0 = argument(args, 0)
    switch name {
    case "includes":
      return .bool(
        items.contains { item in
          if case .number(let x) = item, case .number(let y) = a0, x.isNaN && y.isNaN { return true }
          return TemplateEvaluator.strictEquals(item, a0)
        })
    case "indexOf":
      let start = relative(argument(args, 1), count: items.count, default: 0)
      guard start < items.count else { return .number(-1) }
      let index = items[start...].firstIndex { TemplateEvaluator.strictEquals($0, a0) }
      return .number(Double(index ?? -1))
    case "lastIndexOf":
      return .number(Double(items.lastIndex { TemplateEvaluator.strictEquals($0, a0) } ?? -1))
    case "join":
      let separator = a0 == .undefined ? "," : a0.jsString
      let text = items.map { item -> String in
        switch item {
        case .undefined, .null: ""
        default: item.jsString
        }
      }.joined(separator: separator)
      return try evaluator.checked(text, e)
    case "toString":
      return .string(TemplateValue.array(items).jsString)
    case "slice":
      let start = relative(a0, count: items.count, default: 0)
      let end = relative(argument(args, 1), count: items.count, default: items.count)
      return .array(start < end ? Array(items[start..<end]) : [])
    case "concat":
      var out = items
      for arg in args {
        if case .array(let more) = arg { out.append(contentsOf: more) } else { out.append(arg) }
      }
      return .array(out)
    case "at":
      let i = integer(a0)
      let index = i < 0 ? items.count + i : i
      return index >= 0 && index < items.count ? items[index] : .undefined
    case "reverse":
      return .array(items.reversed())
    case "flat":
      var out: [TemplateValue] = []
      for item in items {
        if case .array(let inner) = item { out.append(contentsOf: inner) } else { out.append(item) }
      }
      return .array(out)
    case "valueOf":
      return .array(items)
    default:
      if ["map", "filter", "forEach", "find", "some", "every", "reduce", "sort", "findIndex"].contains(name) {
        throw evaluator.fail("'\(name)' needs a callback function, which templates do not support", e)
      }
      return nil
    }
  }

  static func numberMethod(
    _ name: String, _ n: Double, _ args: [TemplateValue], _ evaluator: TemplateEvaluator,
    _ e: TemplateExpression
  ) throws(Failure) -> TemplateValue? {
    let a0 = argument(args, 0)
    switch name {
    case "toFixed":
      let digits = integer(a0)
      guard (0...100).contains(digits) else {
        throw evaluator.fail("toFixed() digits must be between 0 and 100", e)
      }
      if !n.isFinite || abs(n) >= 1e21 { return .string(JSNumber.string(n)) }
      return .string(toFixed(n, digits: digits))
    case "toString":
      let radix = a0 == .undefined ? 10 : integer(a0)
      guard (2...36).contains(radix) else {
        throw evaluator.fail("toString() radix must be between 2 and 36", e)
      }
      if radix == 10 || !n.isFinite || n != n.rounded() || abs(n) > 9e15 {
        return .string(JSNumber.string(n))
      }
      return .string(String(Int64(n), radix: radix))
    case "valueOf":
      return .number(n)
    default:
      return nil
    }
  }

  /// JavaScript rounds an exact tie away from zero (`(2.5).toFixed(0)` is "3") where
  /// printf rounds it to even, so round the exact decimal expansion by hand.
  static func toFixed(_ n: Double, digits: Int) -> String {
    let expansion = Array(String(format: "%.\(digits + 30)f", abs(n)))
    guard let dot = expansion.firstIndex(of: ".") else { return String(expansion) }
    var kept = Array(expansion[..<dot]) + Array(expansion[(dot + 1)..<(dot + 1 + digits)])
    if let next = expansion[dot + 1 + digits].wholeNumberValue, next >= 5 {
      var i = kept.count - 1
      while i >= 0 {
        if kept[i] == "9" {
          kept[i] = "0"
          i -= 1
        } else {
          kept[i] = Character(String(kept[i].wholeNumberValue! + 1))
          break
        }
      }
      if i < 0 { kept.insert("1", at: 0) }
    }
    let integerCount = kept.count - digits
    var text = String(kept[..<integerCount])
    if digits > 0 { text += "." + String(kept[integerCount...]) }
    return (n < 0 ? "-" : "") + text
  }

  static func regexMethod(_ name: String, _ regex: JSRegex, _ args: [TemplateValue]) -> TemplateValue? {
    let subject = argument(args, 0).jsString
    switch name {
    case "test": return .bool(regex.test(subject))
    case "exec":
      guard let groups = regex.firstMatch(in: subject) else { return .null }
      return .array(groups.map { $0.map(TemplateValue.string) ?? .undefined })
    case "toString": return .string(regex.description)
    default: return nil
    }
  }

  // MARK: Globals

  static func callGlobal(
    _ name: String, arguments args: [TemplateValue], evaluator: TemplateEvaluator, _ e: TemplateExpression
  ) throws(Failure) -> TemplateValue {
    let a0 = argument(args, 0)
    switch name {
    case "String": return .string(args.isEmpty ? "" : a0.jsString)
    case "Number": return .number(args.isEmpty ? 0 : a0.jsNumber)
    case "Boolean": return .bool(a0.isTruthy)
    case "isNaN": return .bool(a0.jsNumber.isNaN)
    case "parseFloat": return .number(parseFloat(a0.jsString))
    case "parseInt": return .number(parseInt(a0.jsString, radix: argument(args, 1)))
    case "JSON.stringify":
      guard let json = a0.jsonValue else { return .undefined }
      let space = argument(args, 2)
      let pretty = space.isTruthy && (space.typeOf == "number" || space.typeOf == "string")
      return try evaluator.checked(json.serialized(pretty: pretty), e)
    case "JSON.parse":
      switch ScriptSource.parseJSONValue(a0.jsString) {
      case .success(let value): return TemplateValue(value)
      case .failure(let error):
        throw evaluator.fail("JSON.parse: \(error.message) at position \(error.column)", e)
      }
    case "Object.keys", "Object.values", "Object.entries":
      let pairs: [(String, TemplateValue)]
      switch a0 {
      case .object(let object): pairs = object.map { ($0.key, $0.value) }
      case .array(let items): pairs = items.enumerated().map { (String($0.offset), $0.element) }
      case .string(let s):
        pairs = s.utf16.enumerated().map { (String($0.offset), .string(text([$0.element]))) }
      case .undefined, .null: throw evaluator.fail("\(name)() of \(a0.kindName)", e)
      default: pairs = []
      }
      switch name {
      case "Object.keys": return .array(pairs.map { .string($0.0) })
      case "Object.values": return .array(pairs.map(\.1))
      default: return .array(pairs.map { .array([.string($0.0), $0.1]) })
      }
    case "Array.isArray":
      if case .array = a0 { return .bool(true) }
      return .bool(false)
    case "Math.floor": return .number(a0.jsNumber.rounded(.down))
    case "Math.ceil": return .number(a0.jsNumber.rounded(.up))
    case "Math.round":
      let n = a0.jsNumber
      return .number(n.isFinite ? (n + 0.5).rounded(.down) : n)
    case "Math.trunc": return .number(a0.jsNumber.rounded(.towardZero))
    case "Math.abs": return .number(abs(a0.jsNumber))
    case "Math.sqrt": return .number(a0.jsNumber.squareRoot())
    case "Math.pow": return .number(pow(a0.jsNumber, argument(args, 1).jsNumber))
    case "Math.sign":
      let n = a0.jsNumber
      return .number(n.isNaN ? .nan : (n > 0 ? 1 : (n < 0 ? -1 : n)))
    case "Math.min", "Math.max":
      let numbers = args.map(\.jsNumber)
      if numbers.contains(where: \.isNaN) { return .number(.nan) }
      if name == "Math.min" { return .number(numbers.min() ?? .infinity) }
      return .number(numbers.max() ?? -.infinity)
    default:
      throw evaluator.fail("unknown function '\(name)'", e)
    }
  }

  /// JavaScript's parseFloat: the longest decimal prefix after leading whitespace.
  static func parseFloat(_ s: String) -> Double {
    let scalars = Array(s.unicodeScalars.drop { $0.properties.isWhitespace })
    var text = ""
    var i = 0
    if i < scalars.count, scalars[i] == "+" || scalars[i] == "-" {
      text.unicodeScalars.append(scalars[i])
      i += 1
    }
    let rest = String(String.UnicodeScalarView(scalars[i...]))
    if rest.hasPrefix("Infinity") { return text == "-" ? -.infinity : .infinity }
    var best = Double.nan
    var sawDot = false
    var sawExp = false
    while i < scalars.count {
      let c = scalars[i]
      if ("0"..."9").contains(c) {
        text.unicodeScalars.append(c)
      } else if c == ".", !sawDot, !sawExp {
        sawDot = true
        text.unicodeScalars.append(c)
      } else if c == "e" || c == "E", !sawExp, best.isFinite {
        sawExp = true
        text.unicodeScalars.append(c)
        if i + 1 < scalars.count, scalars[i + 1] == "+" || scalars[i + 1] == "-" {
          text.unicodeScalars.append(scalars[i + 1])
          i += 1
        }
      } else {
        break
      }
      if let value = Double(text.hasSuffix(".") ? text + "0" : text), !text.hasSuffix("e") {
        best = value
      }
      i += 1
    }
    return best
  }

  static func parseInt(_ s: String, radix radixValue: TemplateValue) -> Double {
    var scalars = Substring(s.trimmingCharacters(in: .whitespacesAndNewlines))
    var negative = false
    if let first = scalars.first, first == "+" || first == "-" {
      negative = first == "-"
      scalars = scalars.dropFirst()
    }
    var radix = integer(radixValue)
    if radix == 0 {
      radix = 10
      if scalars.lowercased().hasPrefix("0x") {
        radix = 16
        scalars = scalars.dropFirst(2)
      }
    } else if radix == 16, scalars.lowercased().hasPrefix("0x") {
      scalars = scalars.dropFirst(2)
    }
    guard (2...36).contains(radix) else { return .nan }
    var value = 0.0
    var digits = 0
    for c in scalars {
      guard
        let d = c.hexDigitValue
          ?? (c.isLetter && c.isASCII ? Int(c.lowercased().unicodeScalars.first!.value) - 87 : nil),
        d < radix
      else { break }
      value = value * Double(radix) + Double(d)
      digits += 1
    }
    guard digits > 0 else { return .nan }
    return negative ? -value : value
  }
}
