import Foundation

/// Why a template could not be parsed or evaluated. It keeps the text of the one
/// `{{ ... }}` at fault so that a caller can say "step 3 of install.json: unknown
/// variable 'foo' in '{{ foo.bar }}'" without knowing anything about templates.
public struct TemplateError: Error, CustomStringConvertible, Sendable, Equatable {
  /// The whole string that was being rendered.
  public let template: String
  /// The text between the braces of the failing `{{ ... }}`, as written.
  public let expression: String
  /// Offset of the fault within `template`, counted in Unicode scalars.
  public let offset: Int
  public let message: String
  /// What the description quotes: the `{{ ... }}` as written, or the unclosed tail.
  let excerpt: String

  public init(template: String, expression: String, offset: Int, message: String) {
    self.init(template: template, expression: expression, offset: offset, message: message, closed: true)
  }

  init(template: String, expression: String, offset: Int, message: String, closed: Bool) {
    self.template = template
    self.expression = expression
    self.offset = offset
    self.message = message
    excerpt = closed ? "{{\(expression)}}" : "{{\(expression)"
  }

  public var description: String { "\(message) in '\(excerpt)'" }
}

/// A failure inside the lexer, parser or evaluator, before it is tied to its template.
struct TemplateFailure: Error {
  let message: String
  /// Offset in the template string (Unicode scalars).
  let offset: Int
}
