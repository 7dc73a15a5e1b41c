import Foundation

/// Where a value sits inside a script document. Errors and validation messages name
/// values this way (`run[1].params.message`) because that is how script authors read
/// their own files: by step index and key, not by byte offset.
public struct JSONPath: Sendable, Hashable, CustomStringConvertible, ExpressibleByArrayLiteral {
  public enum Component: Sendable, Hashable, ExpressibleByStringLiteral, ExpressibleByIntegerLiteral {
    case key(String)
    case index(Int)

    public init(stringLiteral value: String) { self = .key(value) }
    public init(integerLiteral value: Int) { self = .index(value) }
  }

  public var components: [Component]

  public init(_ components: [Component] = []) {
    self.components = components
  }

  public init(arrayLiteral elements: Component...) {
    components = elements
  }

  public static let root = JSONPath()

  public var isRoot: Bool { components.isEmpty }

  public func appending(_ component: Component) -> JSONPath {
    JSONPath(components + [component])
  }

  public func appending(key: String) -> JSONPath { appending(.key(key)) }
  public func appending(index: Int) -> JSONPath { appending(.index(index)) }

  /// Whether `self` lies at or below `other`.
  public func hasPrefix(_ other: JSONPath) -> Bool {
    other.components.count <= components.count
      && Array(components.prefix(other.components.count)) == other.components
  }

  /// JavaScript accessor syntax, so the text can be pasted into a template: keys that
  /// are not identifiers are written `["my key"]`. The root reads `(root)`.
  public var description: String {
    if components.isEmpty { return "(root)" }
    var out = ""
    for component in components {
      switch component {
      case .index(let i): out += "[\(i)]"
      case .key(let key):
        if JSONPath.isIdentifier(key) {
          if !out.isEmpty { out += "." }
          out += key
        } else {
          out += "[" + JSONValue.string(key).serialized() + "]"
        }
      }
    }
    return out
  }

  static func isIdentifier(_ s: String) -> Bool {
    guard let first = s.unicodeScalars.first else { return false }
    guard first == "_" || first == "$" || first.properties.isAlphabetic else { return false }
    return s.unicodeScalars.allSatisfy {
      $0 == "_" || $0 == "$" || $0.properties.isAlphabetic || ("0"..."9").contains($0)
    }
  }
}

extension JSONValue {
  /// The value at `path`, or nil where the path leaves the document.
  public subscript(path path: JSONPath) -> JSONValue? {
    var current: JSONValue = self
    for component in path.components {
      switch (component, current) {
      case (.key(let key), .object(let object)):
        guard let next = object[key] else { return nil }
        current = next
      case (.index(let i), .array(let items)):
        guard items.indices.contains(i) else { return nil }
        current = items[i]
      default:
        return nil
      }
    }
    return current
  }
}
