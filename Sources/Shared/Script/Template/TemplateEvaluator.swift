import Foundation

/// A host function a template can call, such as `which('sh')`. A thrown error becomes
/// a `TemplateError` carrying the template text.
public typealias TemplateFunction = @Sendable ([TemplateValue]) throws -> TemplateValue

/// What a template can see: the variables and the host's functions. Built-in globals
/// (`JSON`, `Math`, `String`, ...) are always present and need not be listed; a variable
/// of the same name hides one.
public struct TemplateScope: Sendable {
  public var variables: [String: TemplateValue]
  public var functions: [String: TemplateFunction]

  public init(variables: [String: TemplateValue] = [:], functions: [String: TemplateFunction] = [:]) {
    self.variables = variables
    self.functions = functions
  }
}

/// Evaluates a parsed expression with JavaScript semantics: truthiness, `&&`/`||`
/// returning operands, loose and strict equality, `+` concatenating when either side is
/// a string. It differs from JavaScript in two deliberate ways: a name that is not in
/// scope is an error at once (a typo must not silently render "undefined"), and arrays
/// and objects compare by value, since template values have no identity.
struct TemplateEvaluator {
  let scope: TemplateScope
  let scalars: [Unicode.Scalar]

  /// Strings longer than this (in UTF-16 units) are refused so that `'x'.repeat(1e9)`
  /// cannot exhaust memory.
  static let maximumStringLength = 1 << 24

  static let globalNames: Set<String> = [
    "JSON", "Math", "Object", "Array", "String", "Number", "Boolean", "parseInt", "parseFloat", "isNaN",
    "NaN", "Infinity",
  ]

  static let methodNames: Set<String> = [
    // strings
    "toUpperCase", "toLowerCase", "includes", "startsWith", "endsWith", "trim", "trimStart", "trimEnd",
    "split", "replace", "replaceAll", "indexOf", "lastIndexOf", "slice", "substring", "substr", "padStart",
    "padEnd", "repeat", "concat", "toString", "valueOf", "match", "search", "charAt", "charCodeAt", "at",
    // arrays
    "join", "reverse", "flat",
    // numbers and regexes
    "toFixed", "test", "exec",
    // globals
    "stringify", "parse", "floor", "ceil", "round", "min", "max", "abs", "pow", "sqrt", "trunc", "sign",
    "keys", "values", "entries", "isArray",
  ]

  func source(_ e: TemplateExpression) -> String {
    let end = min(e.end, scalars.count)
    let start = min(e.start, end)
    return String(String.UnicodeScalarView(scalars[start..<end]))
  }

  func fail(_ message: String, _ e: TemplateExpression) -> TemplateFailure {
    TemplateFailure(message: message, offset: e.start)
  }

  // MARK: Expressions

  func evaluate(_ e: TemplateExpression) throws(TemplateFailure) -> TemplateValue {
    switch e.node {
    case .literal(let value):
      return value
    case .identifier(let name):
      return try lookup(name, e)
    case .member(let object, let name, let optional):
      let base = try evaluate(object)
      if optional, base == .undefined || base == .null { throw TemplateFailure.shortCircuit }
      return try property(of: base, key: .string(name), object: object, e)
    case .index(let object, let keyExpression, let optional):
      let base = try evaluate(object)
      if optional, base == .undefined || base == .null { throw TemplateFailure.shortCircuit }
      let key = try evaluate(keyExpression)
      return try property(of: base, key: key, object: object, e)
    case .call(let callee, let argumentExpressions, let optional):
      return try call(callee, argumentExpressions, optional: optional, e)
    case .optionalChain(let inner):
      do throws(TemplateFailure) {
        return try evaluate(inner)
      } catch {
        if error.isShortCircuit { return .undefined }
        throw error
      }
    case .unary(let op, let operand):
      if op == "typeof", case .identifier(let name) = operand.node, !isDefined(name) {
        return .string("undefined")
      }
      let value = try evaluate(operand)
      switch op {
      case "!": return .bool(!value.isTruthy)
      case "-": return .number(-value.jsNumber)
      case "+": return .number(value.jsNumber)
      case "typeof": return .string(value.typeOf)
      default: return .undefined
      }
    case .logical(let op, let leftExpression, let rightExpression):
      let left = try evaluate(leftExpression)
      switch op {
      case "&&": return left.isTruthy ? try evaluate(rightExpression) : left
      case "||": return left.isTruthy ? left : try evaluate(rightExpression)
      default: return left == .undefined || left == .null ? try evaluate(rightExpression) : left
      }
    case .binary(let op, let leftExpression, let rightExpression):
      let left = try evaluate(leftExpression)
      let right = try evaluate(rightExpression)
      return try binary(op, left, right, e)
    case .conditional(let test, let whenTrue, let whenFalse):
      return try evaluate(test).isTruthy ? evaluate(whenTrue) : evaluate(whenFalse)
    case .array(let items):
      var values: [TemplateValue] = []
      for item in items { values.append(try evaluate(item)) }
      return .array(values)
    case .object(let members):
      var object = TemplateObject()
      for (key, valueExpression) in members { object[key] = try evaluate(valueExpression) }
      return .object(object)
    }
  }

  func isDefined(_ name: String) -> Bool {
    scope.variables[name] != nil || scope.functions[name] != nil
      || TemplateEvaluator.globalNames.contains(name)
  }

  func lookup(_ name: String, _ e: TemplateExpression) throws(TemplateFailure) -> TemplateValue {
    if let value = scope.variables[name] { return value }
    if scope.functions[name] != nil { return .function(name) }
    switch name {
    case "NaN": return .number(.nan)
    case "Infinity": return .number(.infinity)
    case "JSON":
      let members: [(String, TemplateValue)] = [
        ("stringify", .function("JSON.stringify")), ("parse", .function("JSON.parse")),
      ]
      return .object(TemplateObject(members))
    case "Math":
      let constants: [(String, TemplateValue)] = [("PI", .number(Double.pi)), ("E", .number(M_E))]
      var math = TemplateObject(constants)
      for f in ["floor", "ceil", "round", "min", "max", "abs", "pow", "sqrt", "trunc", "sign"] {
        math[f] = .function("Math." + f)
      }
      return .object(math)
    case "Object":
      let members: [(String, TemplateValue)] = [
        ("keys", .function("Object.keys")), ("values", .function("Object.values")),
        ("entries", .function("Object.entries")),
      ]
      return .object(TemplateObject(members))
    case "Array":
      let members: [(String, TemplateValue)] = [("isArray", .function("Array.isArray"))]
      return .object(TemplateObject(members))
    case "String", "Number", "Boolean", "parseInt", "parseFloat", "isNaN": return .function(name)
    default: throw fail("unknown variable '\(name)'", e)
    }
  }

  // MARK: Properties

  func property(
    of base: TemplateValue, key: TemplateValue, object: TemplateExpression, _ e: TemplateExpression
  )
    throws(TemplateFailure) -> TemplateValue
  {
    switch base {
    case .undefined, .null:
      throw fail(
        "cannot read property '\(key.jsString)' of \(base.kindName) ('\(source(object))' is \(base.kindName))",
        e)
    case .string(let s):
      if case .number(let n) = key { return TemplateEvaluator.unit(of: s, at: n) }
      let name = key.jsString
      if name == "length" { return .number(Double(s.utf16.count)) }
      if let n = TemplateEvaluator.arrayIndex(name) { return TemplateEvaluator.unit(of: s, at: Double(n)) }
      return .undefined
    case .array(let items):
      if case .number(let n) = key {
        guard n >= 0, n == n.rounded(), n < Double(items.count) else { return .undefined }
        return items[Int(n)]
      }
      let name = key.jsString
      if name == "length" { return .number(Double(items.count)) }
      if let n = TemplateEvaluator.arrayIndex(name) { return n < items.count ? items[n] : .undefined }
      return .undefined
    case .object(let object):
      return object[key.jsString] ?? .undefined
    case .regex(let regex):
      switch key.jsString {
      case "source": return .string(regex.pattern)
      case "flags": return .string(regex.flags)
      case "global": return .bool(regex.isGlobal)
      case "ignoreCase": return .bool(regex.flags.contains("i"))
      case "multiline": return .bool(regex.flags.contains("m"))
      default: return .undefined
      }
    case .bool, .number, .function:
      return .undefined
    }
  }

  static func arrayIndex(_ name: String) -> Int? {
    guard !name.isEmpty, name.count < 16, name.allSatisfy(\.isASCII), let n = Int(name), n >= 0,
      String(n) == name
    else { return nil }
    return n
  }

  static func unit(of s: String, at n: Double) -> TemplateValue {
    let units = Array(s.utf16)
    guard n >= 0, n == n.rounded(), n < Double(units.count) else { return .undefined }
    return .string(String(decoding: [units[Int(n)]], as: UTF16.self))
  }

  // MARK: Calls

  func call(
    _ callee: TemplateExpression, _ argumentExpressions: [TemplateExpression], optional: Bool,
    _ e: TemplateExpression
  ) throws(TemplateFailure) -> TemplateValue {
    func arguments() throws(TemplateFailure) -> [TemplateValue] {
      var values: [TemplateValue] = []
      for a in argumentExpressions { values.append(try evaluate(a)) }
      return values
    }
    var receiver: TemplateValue?
    var name: String?
    var objectExpression: TemplateExpression?
    switch callee.node {
    case .member(let object, let member, let memberOptional):
      let base = try evaluate(object)
      if memberOptional, base == .undefined || base == .null { throw TemplateFailure.shortCircuit }
      receiver = base
      name = member
      objectExpression = object
    case .index(let object, let keyExpression, let indexOptional):
      let base = try evaluate(object)
      if indexOptional, base == .undefined || base == .null { throw TemplateFailure.shortCircuit }
      receiver = base
      name = try evaluate(keyExpression).jsString
      objectExpression = object
    default:
      break
    }
    if let receiver, let name, let objectExpression {
      if case .undefined = receiver {
        throw fail("cannot call '\(name)' of undefined ('\(source(objectExpression))' is undefined)", e)
      }
      if case .null = receiver {
        throw fail("cannot call '\(name)' of null ('\(source(objectExpression))' is null)", e)
      }
      if case .object(let object) = receiver {
        guard let member = object[name] else {
          if optional { throw TemplateFailure.shortCircuit }
          throw fail("unknown method '\(name)' ('\(source(callee))' is undefined)", e)
        }
        guard case .function(let functionName) = member else {
          throw fail("'\(source(callee))' is not a function (it is \(member.kindName))", e)
        }
        return try callFunction(functionName, try arguments(), e)
      }
      return try TemplateMethods.call(name, on: receiver, arguments: try arguments(), evaluator: self, e)
    }
    if case .identifier(let identifier) = callee.node, scope.variables[identifier] == nil,
      scope.functions[identifier] == nil, !TemplateEvaluator.globalNames.contains(identifier)
    {
      throw fail("unknown function '\(identifier)'", callee)
    }
    let function = try evaluate(callee)
    if optional, function == .undefined || function == .null { throw TemplateFailure.shortCircuit }
    guard case .function(let functionName) = function else {
      throw fail("'\(source(callee))' is not a function (it is \(function.kindName))", e)
    }
    return try callFunction(functionName, try arguments(), e)
  }

  func callFunction(_ name: String, _ arguments: [TemplateValue], _ e: TemplateExpression)
    throws(TemplateFailure) -> TemplateValue
  {
    if let host = scope.functions[name] {
      do {
        return try host(arguments)
      } catch let error as TemplateError {
        throw fail("\(name)(): \(error.message)", e)
      } catch {
        throw fail("\(name)() failed: \(error)", e)
      }
    }
    return try TemplateMethods.callGlobal(name, arguments: arguments, evaluator: self, e)
  }

  // MARK: Operators

  func binary(_ op: String, _ left: TemplateValue, _ right: TemplateValue, _ e: TemplateExpression)
    throws(TemplateFailure) -> TemplateValue
  {
    switch op {
    case "===": return .bool(TemplateEvaluator.strictEquals(left, right))
    case "!==": return .bool(!TemplateEvaluator.strictEquals(left, right))
    case "==": return .bool(TemplateEvaluator.looseEquals(left, right))
    case "!=": return .bool(!TemplateEvaluator.looseEquals(left, right))
    case "<", ">", "<=", ">=":
      let a = left.primitive
      let b = right.primitive
      let order: Int?
      if case .string(let x) = a, case .string(let y) = b {
        order = x.utf16.lexicographicallyPrecedes(y.utf16) ? -1 : (x == y ? 0 : 1)
      } else {
        let x = a.jsNumber
        let y = b.jsNumber
        order = x.isNaN || y.isNaN ? nil : (x < y ? -1 : (x == y ? 0 : 1))
      }
      guard let order else { return .bool(false) }
      switch op {
      case "<": return .bool(order < 0)
      case ">": return .bool(order > 0)
      case "<=": return .bool(order <= 0)
      default: return .bool(order >= 0)
      }
    case "+":
      let a = left.primitive
      let b = right.primitive
      if case .string = a {
        return try checked(a.jsString + b.jsString, e)
      }
      if case .string = b {
        return try checked(a.jsString + b.jsString, e)
      }
      return .number(a.jsNumber + b.jsNumber)
    case "-": return .number(left.jsNumber - right.jsNumber)
    case "*": return .number(left.jsNumber * right.jsNumber)
    case "/": return .number(left.jsNumber / right.jsNumber)
    case "%": return .number(fmod(left.jsNumber, right.jsNumber))
    case "**": return .number(pow(left.jsNumber, right.jsNumber))
    default: throw fail("unsupported operator '\(op)'", e)
    }
  }

  func checked(_ s: String, _ e: TemplateExpression) throws(TemplateFailure) -> TemplateValue {
    if s.utf16.count > TemplateEvaluator.maximumStringLength { throw fail("string too long", e) }
    return .string(s)
  }

  static func strictEquals(_ a: TemplateValue, _ b: TemplateValue) -> Bool {
    switch (a, b) {
    case (.number(let x), .number(let y)): x == y
    default: a == b
    }
  }

  static func looseEquals(_ a: TemplateValue, _ b: TemplateValue) -> Bool {
    switch (a, b) {
    case (.undefined, .undefined), (.null, .null), (.undefined, .null), (.null, .undefined): return true
    case (.undefined, _), (.null, _), (_, .undefined), (_, .null): return false
    case (.number, .number), (.string, .string), (.bool, .bool): return strictEquals(a, b)
    case (.number(let x), .string), (.string, .number(let x)):
      return x == (a == .number(x) ? b : a).jsNumber
    case (.bool, _): return looseEquals(.number(a.jsNumber), b)
    case (_, .bool): return looseEquals(a, .number(b.jsNumber))
    default:
      if a.isPrimitive != b.isPrimitive { return looseEquals(a.primitive, b.primitive) }
      return strictEquals(a, b)
    }
  }
}

extension TemplateFailure {
  /// Thrown by a nullish `?.` link and caught where its chain ends.
  static let shortCircuit = TemplateFailure(message: "", offset: -1)
  var isShortCircuit: Bool { offset == -1 }
}
