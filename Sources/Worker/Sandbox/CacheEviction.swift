import Shared

/// When the cache is walked and trimmed to its budget (`--cache-budget`, by
/// `CacheBudget.enforce`), and which jobs wait for it. The agent does the walking, off its
/// actor; this only decides, so the rules are tested with a clock and a disk figure.
///
/// A walk runs once no job is running (nothing uses the cache then), and jobs assigned
/// while it runs wait for it, since it may be deleting the entries they would use. It
/// used to run after every job that left the worker idle, so a one-slot worker paid a
/// walk of its whole cache (seconds, for a few hundred thousand files) before each job.
///
/// Now a walk is skipped when the cache cannot be over its budget: its size after the
/// last walk, plus everything the disk lost since (a bound on what the cache gained),
/// is within the budget. The bound misses what takes no disk (a hard link made inside
/// the cache, a sparse file) and growth hidden by space freed elsewhere at the same time,
/// so a walk also runs whenever the last one is older than `fullWalkInterval`.
struct CacheEviction<Job> {
  /// The most time between two walks of the cache while it is idle now and then.
  static var fullWalkInterval: Double { 600 }

  let budget: Int64
  /// A walk is under way.
  private(set) var walking = false
  /// Jobs assigned during the walk, in the order they came.
  private var held: [(ref: AttemptRef, job: Job)] = []
  /// What the last walk left: the cache's size, the disk's free bytes after it, and when.
  private var lastWalk: (total: Int64, diskFree: Int64, at: Double)?

  init(budget: Int64) {
    self.budget = budget
  }

  /// No job is running any more: true when a walk must start now.
  mutating func idle(diskFree: Int64, now: Double) -> Bool {
    guard !walking else { return false }
    if let last = lastWalk, now - last.at < Self.fullWalkInterval,
      last.total <= budget, last.total + max(0, last.diskFree - diskFree) <= budget
    {
      return false
    }
    walking = true
    return true
  }

  /// A job is to start: true when it may start now, false when it waits for the walk.
  mutating func admit(_ ref: AttemptRef, _ job: Job) -> Bool {
    guard walking else { return true }
    held.append((ref, job))
    return false
  }

  /// The job is not to run after all (cancelled, or its attempt is stale): true when it
  /// was waiting for the walk, and so never started.
  mutating func withdraw(_ ref: AttemptRef) -> Bool {
    guard let index = held.firstIndex(where: { $0.ref == ref }) else { return false }
    held.remove(at: index)
    return true
  }

  /// The walk ended, leaving the cache at `total` bytes: the jobs that waited, to start.
  mutating func walked(total: Int64, diskFree: Int64, now: Double) -> [Job] {
    walking = false
    lastWalk = (total, diskFree, now)
    defer { held = [] }
    return held.map(\.job)
  }
}
