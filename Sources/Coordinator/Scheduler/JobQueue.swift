/// Queued job ids in service order. A sorted array: submits mostly append (FIFO within
/// a priority) and assignment mostly takes from the front, and a scan in order is
/// what the scheduler does on every pass.
struct JobQueue: Sendable {
  private(set) var keys: [LiveJob.QueueKey] = []

  var count: Int { keys.count }
  var isEmpty: Bool { keys.isEmpty }

  mutating func insert(_ key: LiveJob.QueueKey) {
    if let last = keys.last, last < key {
      keys.append(key)
      return
    }
    keys.insert(key, at: insertionIndex(key))
  }

  mutating func remove(_ key: LiveJob.QueueKey) {
    let index = insertionIndex(key)
    if index < keys.count, keys[index] == key { keys.remove(at: index) }
  }

  mutating func removeAll(where shouldRemove: (LiveJob.QueueKey) -> Bool) {
    keys.removeAll(where: shouldRemove)
  }

  private func insertionIndex(_ key: LiveJob.QueueKey) -> Int {
    var low = 0
    var high = keys.count
    while low < high {
      let mid = (low + high) / 2
      if keys[mid] < key { low = mid + 1 } else { high = mid }
    }
    return low
  }
}
