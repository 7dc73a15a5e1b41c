import Synchronization

/// A small map, safe from any thread, that forgets everything once full. For values
/// that are pure functions of their key (a parsed script, a scanned template, a stored
/// bundle): an entry forgotten is only computed again, so keeping ages per entry would
/// cost more than it saves.
public final class BoundedCache<Key: Hashable & Sendable, Value: Sendable>: Sendable {
  public let capacity: Int
  private let entries = Mutex<[Key: Value]>([:])

  public init(capacity: Int) { self.capacity = max(1, capacity) }

  public subscript(key: Key) -> Value? { entries.withLock { $0[key] } }

  /// Empties the cache first when it is full.
  public func keep(_ value: Value, for key: Key) {
    entries.withLock { entries in
      if entries.count >= capacity, entries[key] == nil { entries.removeAll(keepingCapacity: true) }
      entries[key] = value
    }
  }

  public var count: Int { entries.withLock { $0.count } }
}
