import Shared
import Testing

@testable import Worker

/// `#expect` cannot hold a mutating call, so each test keeps the gate in a `Gate` box
/// whose methods are not mutating.
struct CacheEvictionTests {
  private final class Gate {
    var eviction = CacheEviction<String>(budget: 10 * gb)
    func idle(free: Int64, at now: Double) -> Bool { eviction.idle(diskFree: free, now: now) }
    func admit(_ job: String) -> Bool { eviction.admit(ref(job), job) }
    func withdraw(_ job: String) -> Bool { eviction.withdraw(ref(job)) }
    func walked(total: Int64, free: Int64, at now: Double) -> [String] {
      eviction.walked(total: total, diskFree: free, now: now)
    }
  }

  private static func ref(_ job: String) -> AttemptRef { AttemptRef(jobID: job, attempt: 1) }
  private static let gb: Int64 = 1 << 30
  private let gb = Self.gb

  @Test func jobsAssignedDuringAWalkWaitForItInTheirOrder() {
    let gate = Gate()
    #expect(gate.admit("a"))
    #expect(gate.idle(free: 100 * gb, at: 0))
    // One walk at a time.
    #expect(!gate.idle(free: 100 * gb, at: 1))
    #expect(!gate.admit("b"))
    #expect(!gate.admit("c"))
    #expect(gate.walked(total: 4 * gb, free: 100 * gb, at: 2) == ["b", "c"])
    #expect(!gate.eviction.walking)
    #expect(gate.admit("d"))
  }

  @Test func aJobStoppedWhileItWaitsNeverStarts() {
    let gate = Gate()
    #expect(gate.idle(free: 100 * gb, at: 0))
    #expect(!gate.admit("a"))
    #expect(!gate.admit("b"))
    #expect(gate.withdraw("a"))
    // Only a job that waits is withdrawn; one withdrawn already, or unknown, is not.
    #expect(!gate.withdraw("a"))
    #expect(!gate.withdraw("z"))
    #expect(gate.walked(total: 4 * gb, free: 100 * gb, at: 1) == ["b"])
  }

  @Test func aWalkIsSkippedWhileTheCacheCannotHaveOutgrownItsBudget() {
    let gate = Gate()
    #expect(gate.idle(free: 100 * gb, at: 0))
    _ = gate.walked(total: 4 * gb, free: 100 * gb, at: 1)
    // The disk lost 5 GB: the cache is at most 9 GB.
    #expect(!gate.idle(free: 95 * gb, at: 2))
    // Space freed elsewhere is no reason to walk either.
    #expect(!gate.idle(free: 120 * gb, at: 3))
    // 7 GB lost: the cache may be at 11 GB.
    #expect(gate.idle(free: 93 * gb, at: 4))
    _ = gate.walked(total: 10 * gb, free: 93 * gb, at: 5)
    // At the budget, any loss of disk walks again.
    #expect(!gate.idle(free: 93 * gb, at: 6))
    #expect(gate.idle(free: 93 * gb - 1, at: 7))
  }

  @Test func aCacheTheWalkCouldNotTrimIsWalkedAgain() {
    let gate = Gate()
    #expect(gate.idle(free: 100 * gb, at: 0))
    // Entries that could not be removed left it above the budget.
    _ = gate.walked(total: 12 * gb, free: 100 * gb, at: 1)
    #expect(gate.idle(free: 100 * gb, at: 2))
  }

  @Test func anIdleCacheIsWalkedAgainAfterTheInterval() {
    let gate = Gate()
    #expect(gate.idle(free: 100 * gb, at: 0))
    _ = gate.walked(total: 1 * gb, free: 100 * gb, at: 10)
    let interval = CacheEviction<String>.fullWalkInterval
    #expect(!gate.idle(free: 100 * gb, at: 10 + interval - 1))
    #expect(gate.idle(free: 100 * gb, at: 10 + interval))
  }
}
