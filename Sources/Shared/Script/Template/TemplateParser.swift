import Foundation

/// A Pratt parser for the JavaScript expression subset templates use. Anything outside
/// the subset (assignment, arrow functions, spread, bitwise operators) is a syntax
/// error naming the construct rather than a silent misparse.
struct TemplateParser {
  static let maximumDepth = 256

  let tokens: [TemplateToken]
  var index = 0
  var recursion = 0

  static func parse(_ tokens: [TemplateToken]) throws(TemplateFailure) -> TemplateExpression {
    var parser = TemplateParser(tokens: tokens)
    if parser.current.kind == .end {
      throw TemplateFailure(message: "empty expression", offset: parser.current.start)
    }
    let expression = try parser.parseExpression(0)
    guard parser.current.kind == .end else { throw parser.unexpected() }
    return expression
  }

  var current: TemplateToken { tokens[min(index, tokens.count - 1)] }

  mutating func advance() -> TemplateToken {
    let token = current
    if index < tokens.count - 1 { index += 1 }
    return token
  }

  func isPunctuator(_ p: String) -> Bool {
    if case .punctuator(p) = current.kind { return true }
    return false
  }

  func isIdentifier(_ name: String) -> Bool {
    if case .identifier(name) = current.kind { return true }
    return false
  }

  mutating func expect(_ p: String, _ context: String) throws(TemplateFailure) {
    guard isPunctuator(p) else {
      throw TemplateFailure(
        message: "expected '\(p)' \(context), found \(describe(current))", offset: current.start)
    }
    _ = advance()
  }

  func describe(_ token: TemplateToken) -> String {
    switch token.kind {
    case .end: "end of expression"
    case .number(let n): "number \(JSNumber.string(n))"
    case .string: "a string"
    case .identifier(let name): "'\(name)'"
    case .punctuator(let p): "'\(p)'"
    case .regex: "a regular expression"
    }
  }

  func unexpected() -> TemplateFailure {
    switch current.kind {
    case .punctuator("="):
      TemplateFailure(
        message: "assignment ('=') is not supported; use '===' to compare", offset: current.start)
    case .punctuator("=>"):
      TemplateFailure(message: "arrow functions are not supported in templates", offset: current.start)
    case .punctuator(let p) where ["&", "|", "^", "~"].contains(p):
      TemplateFailure(message: "bitwise operator '\(p)' is not supported", offset: current.start)
    default:
      TemplateFailure(message: "unexpected \(describe(current))", offset: current.start)
    }
  }

  func make(_ node: TemplateExpression.Node, _ start: Int, _ end: Int, _ children: [TemplateExpression])
    throws(TemplateFailure) -> TemplateExpression
  {
    let depth = 1 + (children.map(\.depth).max() ?? 0)
    if depth > TemplateParser.maximumDepth {
      throw TemplateFailure(
        message: "expression nested too deeply (more than \(TemplateParser.maximumDepth) levels)",
        offset: start)
    }
    return TemplateExpression(node: node, start: start, end: end, depth: depth)
  }

  mutating func enter() throws(TemplateFailure) {
    recursion += 1
    if recursion > TemplateParser.maximumDepth {
      throw TemplateFailure(
        message: "expression nested too deeply (more than \(TemplateParser.maximumDepth) levels)",
        offset: current.start)
    }
  }

  static func bindingPower(_ op: String) -> Int? {
    switch op {
    case "??", "||": 3
    case "&&": 4
    case "==", "!=", "===", "!==": 8
    case "<", ">", "<=", ">=": 9
    case "+", "-": 11
    case "*", "/", "%": 12
    case "**": 13
    default: nil
    }
  }

  mutating func parseExpression(_ minimum: Int) throws(TemplateFailure) -> TemplateExpression {
    try enter()
    defer { recursion -= 1 }
    var left = try parseUnary()
    while true {
      guard case .punctuator(let op) = current.kind else { break }
      if op == "?" {
        guard 2 > minimum else { break }
        _ = advance()
        let whenTrue = try parseExpression(0)
        try expect(":", "in conditional expression")
        let whenFalse = try parseExpression(1)
        left = try make(
          .conditional(left, whenTrue, whenFalse), left.start, whenFalse.end, [left, whenTrue, whenFalse])
        continue
      }
      guard let power = TemplateParser.bindingPower(op), power > minimum else { break }
      _ = advance()
      let right = try parseExpression(op == "**" ? power - 1 : power)
      let node: TemplateExpression.Node =
        ["&&", "||", "??"].contains(op) ? .logical(op, left, right) : .binary(op, left, right)
      left = try make(node, left.start, right.end, [left, right])
    }
    return left
  }

  mutating func parseUnary() throws(TemplateFailure) -> TemplateExpression {
    let token = current
    var op: String?
    switch token.kind {
    case .punctuator(let p) where ["!", "-", "+"].contains(p): op = p
    case .identifier(let name) where name == "typeof" || name == "void": op = name
    case .punctuator("~"): throw unexpected()
    default: break
    }
    guard let op else { return try parsePostfix(try parsePrimary()) }
    _ = advance()
    try enter()
    defer { recursion -= 1 }
    let operand = try parseUnary()
    return try make(.unary(op, operand), token.start, operand.end, [operand])
  }

  mutating func parsePrimary() throws(TemplateFailure) -> TemplateExpression {
    let token = current
    switch token.kind {
    case .number(let n):
      _ = advance()
      return try make(.literal(.number(n)), token.start, token.end, [])
    case .string(let s):
      _ = advance()
      return try make(.literal(.string(s)), token.start, token.end, [])
    case .regex(let pattern, let flags):
      _ = advance()
      let regex: JSRegex
      do throws(JSRegexError) {
        regex = try JSRegex(pattern: pattern, flags: flags)
      } catch {
        throw TemplateFailure(message: error.message + " in regular expression", offset: token.start)
      }
      return try make(.literal(.regex(regex)), token.start, token.end, [])
    case .identifier(let name):
      _ = advance()
      let literal: TemplateValue? =
        switch name {
        case "true": .bool(true)
        case "false": .bool(false)
        case "null": .null
        case "undefined": .undefined
        default: nil
        }
      if let literal { return try make(.literal(literal), token.start, token.end, []) }
      if ["function", "new", "this", "class", "let", "var", "const", "await", "yield", "delete"].contains(
        name)
      {
        throw TemplateFailure(message: "'\(name)' is not supported in templates", offset: token.start)
      }
      if isPunctuator("=>") { throw unexpected() }
      return try make(.identifier(name), token.start, token.end, [])
    case .punctuator("("):
      _ = advance()
      if isPunctuator(")") { throw unexpected() }
      let inner = try parseExpression(0)
      if isPunctuator(",") {
        throw TemplateFailure(message: "the comma operator is not supported", offset: current.start)
      }
      try expect(")", "to close '('")
      if isPunctuator("=>") { throw unexpected() }
      // Parentheses only group; keep the inner node but widen its source range.
      return TemplateExpression(
        node: inner.node, start: token.start, end: tokens[index - 1].end, depth: inner.depth)
    case .punctuator("["):
      _ = advance()
      var items: [TemplateExpression] = []
      while !isPunctuator("]") {
        if isPunctuator("...") {
          throw TemplateFailure(message: "spread ('...') is not supported", offset: current.start)
        }
        if isPunctuator(",") {
          throw TemplateFailure(message: "array holes are not supported", offset: current.start)
        }
        items.append(try parseExpression(0))
        if isPunctuator(",") {
          _ = advance()
        } else if !isPunctuator("]") {
          throw TemplateFailure(
            message: "expected ',' or ']' in array literal, found \(describe(current))", offset: current.start
          )
        }
      }
      let end = advance().end
      return try make(.array(items), token.start, end, items)
    case .punctuator("{"):
      _ = advance()
      var members: [(String, TemplateExpression)] = []
      while !isPunctuator("}") {
        let keyToken = advance()
        let key: String
        switch keyToken.kind {
        case .identifier(let name): key = name
        case .string(let s): key = s
        case .number(let n): key = JSNumber.string(n)
        case .punctuator("["):
          throw TemplateFailure(message: "computed property names are not supported", offset: keyToken.start)
        case .punctuator("..."):
          throw TemplateFailure(message: "spread ('...') is not supported", offset: keyToken.start)
        default:
          throw TemplateFailure(
            message: "expected a property name in object literal, found \(describe(keyToken))",
            offset: keyToken.start)
        }
        if isPunctuator(":") {
          _ = advance()
          members.append((key, try parseExpression(0)))
        } else if case .identifier = keyToken.kind, isPunctuator(",") || isPunctuator("}") {
          members.append((key, try make(.identifier(key), keyToken.start, keyToken.end, [])))
        } else {
          throw TemplateFailure(
            message: "expected ':' after property name, found \(describe(current))", offset: current.start)
        }
        if isPunctuator(",") {
          _ = advance()
        } else if !isPunctuator("}") {
          throw TemplateFailure(
            message: "expected ',' or '}' in object literal, found \(describe(current))",
            offset: current.start)
        }
      }
      let end = advance().end
      return try make(.object(members), token.start, end, members.map(\.1))
    default:
      throw unexpected()
    }
  }

  mutating func parsePostfix(_ base: TemplateExpression) throws(TemplateFailure) -> TemplateExpression {
    var left = base
    var hasOptional = false
    while true {
      var optional = false
      if isPunctuator("?.") {
        _ = advance()
        optional = true
        hasOptional = true
        if case .identifier = current.kind {
          left = try member(of: left, optional: true)
          continue
        }
      }
      if isPunctuator(".") && !optional {
        _ = advance()
        left = try member(of: left, optional: false)
      } else if isPunctuator("[") {
        _ = advance()
        let key = try parseExpression(0)
        try expect("]", "to close '['")
        left = try make(
          .index(left, key, optional: optional), left.start, tokens[index - 1].end, [left, key])
      } else if isPunctuator("(") {
        _ = advance()
        var arguments: [TemplateExpression] = []
        while !isPunctuator(")") {
          if isPunctuator("...") {
            throw TemplateFailure(message: "spread ('...') is not supported", offset: current.start)
          }
          arguments.append(try parseExpression(0))
          if isPunctuator(",") {
            _ = advance()
          } else if !isPunctuator(")") {
            throw TemplateFailure(
              message: "expected ',' or ')' in argument list, found \(describe(current))",
              offset: current.start)
          }
        }
        let end = advance().end
        left = try make(.call(left, arguments, optional: optional), left.start, end, [left] + arguments)
      } else if optional {
        throw TemplateFailure(message: "expected a property name after '?.'", offset: current.start)
      } else {
        break
      }
    }
    if hasOptional { left = try make(.optionalChain(left), left.start, left.end, [left]) }
    return left
  }

  mutating func member(of object: TemplateExpression, optional: Bool) throws(TemplateFailure)
    -> TemplateExpression
  {
    let token = advance()
    guard case .identifier(let name) = token.kind else {
      throw TemplateFailure(
        message: "expected a property name after '.', found \(describe(token))", offset: token.start)
    }
    return try make(.member(object, name, optional: optional), object.start, token.end, [object])
  }
}
