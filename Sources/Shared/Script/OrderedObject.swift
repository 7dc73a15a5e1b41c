/// An insertion-ordered string-keyed map: a script's objects (`JSONObject`) and a
/// template's (`TemplateObject`). Assigning an existing key keeps its position and
/// replaces its value, as JavaScript does (and as duplicate keys in a script do: the
/// last one wins). Equality ignores the order, as comparing two objects by their
/// members does.
public struct OrderedObject<Value: Sendable & Hashable>: Sendable, Hashable, Sequence {
  public private(set) var keys: [String] = []
  private var storage: [String: Value] = [:]

  public init() {}

  public init(_ pairs: [(String, Value)]) {
    for (key, value) in pairs { self[key] = value }
  }

  public var count: Int { keys.count }
  public var isEmpty: Bool { keys.isEmpty }

  public subscript(key: String) -> Value? {
    get { storage[key] }
    set {
      if let newValue {
        if storage.updateValue(newValue, forKey: key) == nil { keys.append(key) }
      } else if storage.removeValue(forKey: key) != nil {
        keys.removeAll { $0 == key }
      }
    }
  }

  public func makeIterator() -> AnyIterator<(key: String, value: Value)> {
    var index = 0
    return AnyIterator {
      guard index < keys.count else { return nil }
      defer { index += 1 }
      let key = keys[index]
      return (key, storage[key]!)
    }
  }

  public static func == (lhs: Self, rhs: Self) -> Bool {
    lhs.storage == rhs.storage
  }

  public func hash(into hasher: inout Hasher) {
    hasher.combine(storage)
  }
}
