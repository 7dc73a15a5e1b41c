import Foundation

/// A parsed template expression. Offsets are Unicode scalar offsets in the template
/// string, so errors can point at the part of the expression at fault.
struct TemplateExpression: Sendable {
  indirect enum Node: Sendable {
    case literal(TemplateValue)
    case identifier(String)
    case member(TemplateExpression, String, optional: Bool)
    case index(TemplateExpression, TemplateExpression, optional: Bool)
    case call(TemplateExpression, [TemplateExpression], optional: Bool)
    /// Marks the end of a chain holding `?.`: a nullish link makes the whole chain undefined.
    case optionalChain(TemplateExpression)
    case unary(String, TemplateExpression)
    case binary(String, TemplateExpression, TemplateExpression)
    case logical(String, TemplateExpression, TemplateExpression)
    case conditional(TemplateExpression, TemplateExpression, TemplateExpression)
    case array([TemplateExpression])
    case object([(String, TemplateExpression)])
  }

  let node: Node
  let start: Int
  let end: Int
  /// Height of the tree below this node, bounded so evaluation cannot exhaust the stack.
  let depth: Int
}
