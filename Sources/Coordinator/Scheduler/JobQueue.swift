/// Queued job ids in service order (priority, then FIFO), kept as one sorted run per
/// requirement class. Jobs of one class ask for exactly the same things, so when the
/// first of them fits nowhere none of the others does: a scheduling pass skips the
/// class in one step instead of walking 100,000 identical jobs that wait for an 8-GPU
/// box, and a probe job submitted behind them is placed in microseconds.
struct JobQueue: Sendable {
  /// One class's keys, sorted. Assignment takes from the front, so the front is an
  /// offset that advances, and the storage is compacted once half of it is dead.
  private struct Run: Sendable {
    var keys: [LiveJob.QueueKey] = []
    var start = 0

    var isEmpty: Bool { start == keys.count }
    var live: ArraySlice<LiveJob.QueueKey> { keys[start...] }

    mutating func insert(_ key: LiveJob.QueueKey) {
      if let last = keys.last, start < keys.count, last < key {
        keys.append(key)
      } else {
        keys.insert(key, at: index(of: key))
      }
    }

    /// Whether it was there.
    mutating func remove(_ key: LiveJob.QueueKey) -> Bool {
      let at = index(of: key)
      guard at < keys.count, keys[at] == key else { return false }
      if at == start {
        start += 1
        if start > 64, start * 2 > keys.count {
          keys.removeFirst(start)
          start = 0
        }
      } else {
        keys.remove(at: at)
      }
      return true
    }

    private func index(of key: LiveJob.QueueKey) -> Int {
      var low = start
      var high = keys.count
      while low < high {
        let mid = (low + high) / 2
        if keys[mid] < key { low = mid + 1 } else { high = mid }
      }
      return low
    }
  }

  private var runs: [Int: Run] = [:]
  private(set) var count = 0
  /// Changes with every insertion and removal (see `WorkerRegistry.capacityVersion`).
  private(set) var version = 0

  var isEmpty: Bool { count == 0 }

  /// Every key in service order (for tests and tools; the scheduler uses `scan`).
  var keys: [LiveJob.QueueKey] { runs.values.flatMap(\.live).sorted() }

  mutating func insert(_ key: LiveJob.QueueKey) {
    runs[key.requirementClass, default: Run()].insert(key)
    count += 1
    version &+= 1
  }

  mutating func remove(_ key: LiveJob.QueueKey) {
    guard runs[key.requirementClass]?.remove(key) == true else { return }
    count -= 1
    version &+= 1
    if runs[key.requirementClass]?.isEmpty == true { runs[key.requirementClass] = nil }
  }

  enum ScanStep {
    /// Go on to the next key in service order.
    case next
    /// No later key of this key's class can be placed in this pass.
    case skipClass
    case stop
  }

  /// Visits keys in service order, merging the classes' runs through a small heap, so
  /// a pass costs the keys it places plus one per class rather than one per queued job.
  func scan(_ visit: (LiveJob.QueueKey) -> ScanStep) {
    var heads = MinHeap()
    for (requirementClass, run) in runs where !run.isEmpty {
      heads.push(.init(key: run.keys[run.start], requirementClass: requirementClass, index: run.start))
    }
    while let head = heads.pop() {
      switch visit(head.key) {
      case .stop: return
      case .skipClass: continue
      case .next:
        let run = runs[head.requirementClass]!
        let following = head.index + 1
        if following < run.keys.count {
          heads.push(
            .init(key: run.keys[following], requirementClass: head.requirementClass, index: following))
        }
      }
    }
  }

  private struct Head {
    var key: LiveJob.QueueKey
    var requirementClass: Int
    var index: Int
  }

  /// A binary min-heap of class heads; the classes in a pool are few.
  private struct MinHeap {
    private var items: [Head] = []

    mutating func push(_ head: Head) {
      items.append(head)
      var child = items.count - 1
      while child > 0 {
        let parent = (child - 1) / 2
        guard items[child].key < items[parent].key else { break }
        items.swapAt(child, parent)
        child = parent
      }
    }

    mutating func pop() -> Head? {
      guard !items.isEmpty else { return nil }
      items.swapAt(0, items.count - 1)
      let top = items.removeLast()
      var parent = 0
      while true {
        let left = 2 * parent + 1
        let right = left + 1
        var smallest = parent
        if left < items.count, items[left].key < items[smallest].key { smallest = left }
        if right < items.count, items[right].key < items[smallest].key { smallest = right }
        if smallest == parent { break }
        items.swapAt(parent, smallest)
        parent = smallest
      }
      return top
    }
  }
}
