import Foundation
import Synchronization
import Testing

@testable import Worker

@Suite struct ReaderThreadsTests {
  /// Waits (yielding, bounded) for a condition another thread brings about.
  private func eventually(_ condition: () -> Bool) -> Bool {
    let deadline = ContinuousClock.now + .seconds(10)
    while !condition() {
      if ContinuousClock.now > deadline { return false }
      sched_yield()
    }
    return true
  }

  /// A number for the calling thread, given on its first call and never given again
  /// (unlike a tid or a `pthread_t`, which a later thread may reuse).
  private static let numbers = Mutex(0)
  nonisolated(unsafe) private static var key: pthread_key_t = {
    var key = pthread_key_t()
    pthread_key_create(&key, nil)
    return key
  }()
  private func threadNumber() -> Int {
    if let known = pthread_getspecific(Self.key) { return Int(bitPattern: known) }
    let number = Self.numbers.withLock { n in
      n += 1
      return n
    }
    pthread_setspecific(Self.key, UnsafeRawPointer(bitPattern: number))
    return number
  }

  /// Threads park when their work ends, up to the limit, and the next work runs on one
  /// of them instead of a new thread.
  @Test func parkedThreadsRunTheNextWork() throws {
    let pool = ReaderThreads(keepParked: 2)
    let gate = DispatchSemaphore(value: 0)
    let done = DispatchSemaphore(value: 0)
    let first = Mutex<Set<Int>>([])
    for _ in 0..<3 {
      pool.run {
        first.withLock { _ = $0.insert(threadNumber()) }
        gate.wait()
        done.signal()
      }
    }
    #expect(eventually { first.withLock { $0.count } == 3 })
    for _ in 0..<3 { gate.signal() }
    for _ in 0..<3 { done.wait() }
    #expect(eventually { pool.parkedCount == 2 }, "one of three let go")

    let second = Mutex<Set<Int>>([])
    for _ in 0..<2 {
      pool.run {
        second.withLock { _ = $0.insert(threadNumber()) }
        gate.wait()
        done.signal()
      }
    }
    #expect(eventually { second.withLock { $0.count } == 2 })
    #expect(pool.parkedCount == 0)
    #expect(second.withLock { $0 }.isSubset(of: first.withLock { $0 }))
    for _ in 0..<2 { gate.signal() }
    for _ in 0..<2 { done.wait() }
    #expect(eventually { pool.parkedCount == 2 })
  }
}
