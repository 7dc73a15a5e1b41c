import Foundation

/// Renders the `{{ expression }}` templates in script values, the way Pinokio does.
///
/// - A string that is exactly one template (`"{{ local.n }}"`) keeps the expression's
///   type, so `"n": "{{ self.count }}"` stays a number.
/// - In a string that mixes text and templates each value is converted with
///   JavaScript's `String(x)`, except that undefined and null render as the empty
///   string: Pinokio prints nothing for them, and `"--flag {{args.x}}"` with no `x`
///   should not pass the word "undefined" to a command.
/// - `{{{ x }}}` is an escape and renders the literal text `{{ x }}`.
/// - Object keys are never rendered.
public enum Template {
  /// Variables the worker provides to every script, plus the built-in globals.
  public static let standardVariables: Set<String> = Set([
    "platform", "arch", "gpu", "gpus", "kernel", "vram", "ram", "args", "input", "local", "self", "env",
    "cwd",
    "port",
  ]).union(TemplateEvaluator.globalNames)

  /// Host functions the worker provides to every script.
  public static let standardFunctions: Set<String> = ["which", "exists"]

  /// Whether `s` holds anything to render, so callers can skip plain strings cheaply.
  public static func containsTemplate(_ s: String) -> Bool {
    s.contains("{{")
  }

  /// Renders every string in `value`. Returns nil when `value` is a single template
  /// that evaluates to undefined; inside an array such a value becomes null and inside
  /// an object its key is dropped.
  public static func render(_ value: JSONValue, scope: TemplateScope) throws(TemplateError) -> JSONValue? {
    switch value {
    case .string(let s):
      guard containsTemplate(s) else { return value }
      return try renderString(s, scope: scope).jsonValue
    case .array(let items):
      var out: [JSONValue] = []
      out.reserveCapacity(items.count)
      for item in items { out.append(try render(item, scope: scope) ?? .null) }
      return .array(out)
    case .object(let object):
      var out = JSONObject()
      for (key, item) in object {
        if let rendered = try render(item, scope: scope) { out[key] = rendered }
      }
      return .object(out)
    case .null, .bool, .number:
      return value
    }
  }

  /// Renders one string: the expression's own value when the string is one whole
  /// template, else the interpolated text.
  public static func renderString(_ s: String, scope: TemplateScope) throws(TemplateError) -> TemplateValue {
    guard containsTemplate(s) else { return .string(s) }
    let template = scanned(s)
    let pieces = template.pieces
    let evaluator = TemplateEvaluator(scope: scope, scalars: template.scalars)
    if pieces.count == 1, case .expression(let parsed, let raw) = pieces[0] {
      return try evaluate(parsed, raw: raw, template: s, evaluator: evaluator)
    }
    var out = ""
    for piece in pieces {
      switch piece {
      case .text(let text):
        out += text
      case .expression(let parsed, let raw):
        let value = try evaluate(parsed, raw: raw, template: s, evaluator: evaluator)
        switch value {
        case .undefined, .null: break
        default: out += value.jsString
        }
        if out.utf16.count > TemplateEvaluator.maximumStringLength {
          throw TemplateError(template: s, expression: raw, offset: 0, message: "rendered string too long")
        }
      case .broken(let failure, let raw, let closed):
        throw TemplateError(
          template: s, expression: raw, offset: failure.offset, message: failure.message, closed: closed)
      }
    }
    return .string(out)
  }

  /// Decides a step's `when`: a string is rendered and its truthiness taken, so an
  /// undefined value (a missing argument) is false; other values follow JavaScript
  /// (so a plain, template-free `"false"` is a non-empty string and therefore true).
  public static func condition(_ value: JSONValue, scope: TemplateScope) throws(TemplateError) -> Bool {
    switch value {
    case .string(let s): try renderString(s, scope: scope).isTruthy
    case .bool(let b): b
    default: TemplateValue(value).isTruthy
    }
  }

  /// Parses without evaluating, for `pinpool validate`: syntax errors, unterminated
  /// templates, names not in scope, and methods that no value has. Built-in globals are
  /// always known.
  public static func check(_ s: String, knownVariables: Set<String>, knownFunctions: Set<String>)
    -> [TemplateError]
  {
    guard containsTemplate(s) else { return [] }
    let scalars = Array(s.unicodeScalars)
    var errors: [TemplateError] = []
    for piece in scan(scalars) {
      switch piece {
      case .text:
        break
      case .expression(let parsed, let raw):
        switch parsed {
        case .failure(let failure):
          errors.append(
            TemplateError(template: s, expression: raw, offset: failure.offset, message: failure.message))
        case .success(let expression):
          var checker = Checker(
            variables: knownVariables.union(TemplateEvaluator.globalNames), functions: knownFunctions)
          checker.visit(expression)
          for failure in checker.failures {
            errors.append(
              TemplateError(template: s, expression: raw, offset: failure.offset, message: failure.message))
          }
        }
      case .broken(let failure, let raw, let closed):
        errors.append(
          TemplateError(
            template: s, expression: raw, offset: failure.offset, message: failure.message, closed: closed))
      }
    }
    return errors
  }

  // MARK: Scanning

  /// Templates already scanned and parsed, by their text: an array's jobs render the
  /// same step strings, and lexing and parsing them again was most of rendering one.
  /// Parsing depends on the text alone. Long strings are not kept.
  private static let scannedTemplates = BoundedCache<String, Scanned>(capacity: 256)
  static let scannedMaxLength = 4096

  struct Scanned: Sendable {
    let scalars: [Unicode.Scalar]
    let pieces: [Piece]
  }

  static func scanned(_ s: String) -> Scanned {
    if let known = scannedTemplates[s] { return known }
    let scalars = Array(s.unicodeScalars)
    let result = Scanned(scalars: scalars, pieces: scan(scalars))
    if scalars.count <= scannedMaxLength { scannedTemplates.keep(result, for: s) }
    return result
  }

  enum Piece: Sendable {
    case text(String)
    /// A `{{ ... }}` whose end was found; `raw` is the text between the braces.
    case expression(Result<TemplateExpression, TemplateFailure>, raw: String)
    /// A `{{` whose end could not be found; scanning stops there.
    case broken(TemplateFailure, raw: String, closed: Bool)
  }

  static func scan(_ scalars: [Unicode.Scalar]) -> [Piece] {
    var pieces: [Piece] = []
    var text = String.UnicodeScalarView()
    var i = 0
    func at(_ index: Int, _ pattern: String) -> Bool {
      var j = index
      for scalar in pattern.unicodeScalars {
        guard j < scalars.count, scalars[j] == scalar else { return false }
        j += 1
      }
      return true
    }
    func find(_ pattern: String, from start: Int) -> Int? {
      var j = start
      while j < scalars.count {
        if at(j, pattern) { return j }
        j += 1
      }
      return nil
    }
    func slice(_ range: Range<Int>) -> String { String(String.UnicodeScalarView(scalars[range])) }

    while i < scalars.count {
      guard at(i, "{{") else {
        text.append(scalars[i])
        i += 1
        continue
      }
      if at(i, "{{{"), let close = find("}}}", from: i + 3) {
        text.append(contentsOf: "{{".unicodeScalars)
        text.append(contentsOf: scalars[(i + 3)..<close])
        text.append(contentsOf: "}}".unicodeScalars)
        i = close + 3
        continue
      }
      if !text.isEmpty {
        pieces.append(.text(String(text)))
        text = String.UnicodeScalarView()
      }
      do throws(TemplateFailure) {
        let (tokens, end) = try TemplateLexer.tokenize(scalars, from: i + 2, opening: i)
        let raw = slice((i + 2)..<(end - 2))
        do throws(TemplateFailure) {
          pieces.append(.expression(.success(try TemplateParser.parse(tokens)), raw: raw))
        } catch {
          pieces.append(.expression(.failure(error), raw: raw))
        }
        i = end
      } catch {
        if let close = find("}}", from: i + 2) {
          pieces.append(.broken(error, raw: slice((i + 2)..<close), closed: true))
        } else {
          let failure = TemplateFailure(message: "unterminated '{{'", offset: i)
          pieces.append(.broken(failure, raw: slice((i + 2)..<scalars.count), closed: false))
        }
        return pieces
      }
    }
    if !text.isEmpty { pieces.append(.text(String(text))) }
    return pieces
  }

  static func evaluate(
    _ parsed: Result<TemplateExpression, TemplateFailure>, raw: String, template: String,
    evaluator: TemplateEvaluator
  ) throws(TemplateError) -> TemplateValue {
    do throws(TemplateFailure) {
      return try evaluator.evaluate(try parsed.get())
    } catch {
      throw TemplateError(template: template, expression: raw, offset: error.offset, message: error.message)
    }
  }

  /// Walks an expression for `check`, collecting names that evaluation would reject.
  struct Checker {
    let variables: Set<String>
    let functions: Set<String>
    var failures: [TemplateFailure] = []

    mutating func visit(_ e: TemplateExpression) {
      switch e.node {
      case .literal:
        break
      case .identifier(let name):
        if !variables.contains(name) && !functions.contains(name) {
          failures.append(TemplateFailure(message: "unknown variable '\(name)'", offset: e.start))
        }
      case .member(let object, _, _):
        visit(object)
      case .index(let object, let key, _):
        visit(object)
        visit(key)
      case .call(let callee, let arguments, _):
        switch callee.node {
        case .identifier(let name):
          if !variables.contains(name) && !functions.contains(name) {
            failures.append(TemplateFailure(message: "unknown function '\(name)'", offset: callee.start))
          }
        case .member(let object, let name, _):
          visit(object)
          if !TemplateEvaluator.methodNames.contains(name) {
            failures.append(TemplateFailure(message: "unknown method '\(name)'", offset: callee.start))
          }
        default:
          visit(callee)
        }
        for argument in arguments { visit(argument) }
      case .optionalChain(let inner):
        visit(inner)
      case .unary(let op, let operand):
        // `typeof name` is how JavaScript asks whether a name exists at all.
        if op == "typeof", case .identifier = operand.node { break }
        visit(operand)
      case .binary(_, let left, let right), .logical(_, let left, let right):
        visit(left)
        visit(right)
      case .conditional(let test, let whenTrue, let whenFalse):
        visit(test)
        visit(whenTrue)
        visit(whenFalse)
      case .array(let items):
        for item in items { visit(item) }
      case .object(let members):
        for (_, value) in members { visit(value) }
      }
    }
  }
}
