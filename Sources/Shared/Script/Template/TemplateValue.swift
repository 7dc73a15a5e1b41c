import Foundation

/// A value while a template is evaluated. It is wider than `JSONValue` because
/// JavaScript expressions see `undefined`, regular expressions and functions, none of
/// which exist in a script file.
public enum TemplateValue: Sendable, Hashable {
  case undefined
  case null
  case bool(Bool)
  case number(Double)
  case string(String)
  case array([TemplateValue])
  case object(TemplateObject)
  case regex(JSRegex)
  /// A function by name: a host function from `TemplateScope.functions`, or else one of
  /// the built-in globals (`"String"`, `"JSON.stringify"`, ...). Functions are values
  /// only so that `typeof which` and `JSON.stringify` work; they are called by name.
  case function(String)
}

/// A template's object: its keys in the order they were set.
public typealias TemplateObject = OrderedObject<TemplateValue>

extension TemplateValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral,
  ExpressibleByFloatLiteral, ExpressibleByBooleanLiteral, ExpressibleByArrayLiteral,
  ExpressibleByDictionaryLiteral
{
  public init(stringLiteral value: String) { self = .string(value) }
  public init(integerLiteral value: Int) { self = .number(Double(value)) }
  public init(floatLiteral value: Double) { self = .number(value) }
  public init(booleanLiteral value: Bool) { self = .bool(value) }
  public init(arrayLiteral elements: TemplateValue...) { self = .array(elements) }
  public init(dictionaryLiteral elements: (String, TemplateValue)...) {
    self = .object(TemplateObject(elements))
  }
}

extension TemplateValue {
  public init(_ json: JSONValue) {
    switch json {
    case .null: self = .null
    case .bool(let b): self = .bool(b)
    case .number(let n): self = .number(n)
    case .string(let s): self = .string(s)
    case .array(let items): self = .array(items.map(TemplateValue.init))
    case .object(let object):
      var out = TemplateObject()
      for (key, value) in object { out[key] = TemplateValue(value) }
      self = .object(out)
    }
  }

  /// The value as `JSON.stringify` would keep it: nil for undefined and functions;
  /// inside an array those become null, inside an object their key is dropped.
  /// A regular expression becomes `{}`, as in JavaScript.
  public var jsonValue: JSONValue? {
    switch self {
    case .undefined, .function: nil
    case .null: .null
    case .bool(let b): .bool(b)
    case .number(let n): .number(n)
    case .string(let s): .string(s)
    case .array(let items): .array(items.map { $0.jsonValue ?? .null })
    case .object(let object):
      .object(JSONObject(object.compactMap { key, value in value.jsonValue.map { (key, $0) } }))
    case .regex: .object(JSONObject())
    }
  }

  /// JavaScript truthiness.
  public var isTruthy: Bool {
    switch self {
    case .undefined, .null: false
    case .bool(let b): b
    case .number(let n): !(n == 0 || n.isNaN)
    case .string(let s): !s.isEmpty
    case .array, .object, .regex, .function: true
    }
  }

  /// What JavaScript's `typeof` answers.
  public var typeOf: String {
    switch self {
    case .undefined: "undefined"
    case .null, .array, .object, .regex: "object"
    case .bool: "boolean"
    case .number: "number"
    case .string: "string"
    case .function: "function"
    }
  }

  /// A name for error messages ("cannot call 'x' on an array").
  var kindName: String {
    switch self {
    case .undefined: "undefined"
    case .null: "null"
    case .bool: "boolean"
    case .number: "number"
    case .string: "string"
    case .array: "array"
    case .object: "object"
    case .regex: "regular expression"
    case .function: "function"
    }
  }

  /// JavaScript's `String(value)`.
  public var jsString: String {
    switch self {
    case .undefined: "undefined"
    case .null: "null"
    case .bool(let b): b ? "true" : "false"
    case .number(let n): JSNumber.string(n)
    case .string(let s): s
    case .array(let items):
      items.map { item -> String in
        switch item {
        case .undefined, .null: ""
        default: item.jsString
        }
      }.joined(separator: ",")
    case .object: "[object Object]"
    case .regex(let regex): regex.description
    case .function(let name): "function \(name)() { [native code] }"
    }
  }

  /// JavaScript's `Number(value)`.
  public var jsNumber: Double {
    switch self {
    case .undefined: .nan
    case .null: 0
    case .bool(let b): b ? 1 : 0
    case .number(let n): n
    case .string(let s): JSNumber.parse(s)
    case .array: JSNumber.parse(jsString)
    case .object, .regex, .function: .nan
    }
  }

  var isPrimitive: Bool {
    switch self {
    case .array, .object, .regex, .function: false
    default: true
    }
  }

  /// JavaScript's ToPrimitive for the values templates meet: containers become
  /// their string form.
  var primitive: TemplateValue {
    isPrimitive ? self : .string(jsString)
  }
}

/// JavaScript's number-to-text and text-to-number rules, which differ from Swift's
/// (`1e-7` not `1e-07`, `0.00001` not `1e-05`, `" 12 "` is 12).
enum JSNumber {
  static func string(_ n: Double) -> String {
    if n.isNaN { return "NaN" }
    if n.isInfinite { return n < 0 ? "-Infinity" : "Infinity" }
    if n == 0 { return "0" }
    if n < 0 { return "-" + string(-n) }
    // Swift prints the shortest round-tripping digits; re-lay them out as JS does.
    let text = "\(n)"
    var mantissa = text
    var exponent = 0
    if let e = text.firstIndex(where: { $0 == "e" || $0 == "E" }) {
      mantissa = String(text[..<e])
      exponent = Int(text[text.index(after: e)...]) ?? 0
    }
    var digits: String
    var pointPosition: Int
    if let dot = mantissa.firstIndex(of: ".") {
      let intPart = String(mantissa[..<dot])
      let fracPart = String(mantissa[mantissa.index(after: dot)...])
      digits = intPart + fracPart
      pointPosition = intPart.count
    } else {
      digits = mantissa
      pointPosition = mantissa.count
    }
    pointPosition += exponent
    while digits.hasPrefix("0"), digits.count > 1 {
      digits.removeFirst()
      pointPosition -= 1
    }
    while digits.hasSuffix("0"), digits.count > 1 { digits.removeLast() }
    let k = digits.count
    let position = pointPosition
    if k <= position && position <= 21 {
      return digits + String(repeating: "0", count: position - k)
    }
    if 0 < position && position <= 21 {
      let index = digits.index(digits.startIndex, offsetBy: position)
      return digits[..<index] + "." + digits[index...]
    }
    if -6 < position && position <= 0 {
      return "0." + String(repeating: "0", count: -position) + digits
    }
    let e = position - 1
    let sign = e < 0 ? "-" : "+"
    let head = String(digits.prefix(1))
    let tail = String(digits.dropFirst())
    return head + (tail.isEmpty ? "" : "." + tail) + "e" + sign + String(abs(e))
  }

  static func parse(_ s: String) -> Double {
    let trimmed = s.trimmingCharacters(in: .whitespacesAndNewlines)
    if trimmed.isEmpty { return 0 }
    switch trimmed {
    case "Infinity", "+Infinity": return .infinity
    case "-Infinity": return -.infinity
    default: break
    }
    let lower = trimmed.lowercased()
    for (prefix, radix) in [("0x", 16), ("0o", 8), ("0b", 2)] where lower.hasPrefix(prefix) {
      guard let value = UInt64(lower.dropFirst(2), radix: radix) else { return .nan }
      return Double(value)
    }
    // Only plain decimal syntax; Swift's parser would also take "nan", "inf" and hex floats.
    let allowed = Set("0123456789.eE+-")
    guard trimmed.allSatisfy({ allowed.contains($0) }), trimmed.contains(where: \.isNumber) else {
      return .nan
    }
    var text = trimmed
    if text.hasPrefix(".") { text = "0" + text }
    if text.hasPrefix("-.") || text.hasPrefix("+.") {
      text.insert("0", at: text.index(after: text.startIndex))
    }
    if text.hasSuffix(".") { text += "0" }
    return Double(text) ?? .nan
  }
}
