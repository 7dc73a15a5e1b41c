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

  /// Runs `count` pieces of work that each note their thread and wait at `gate`;
  /// returns the threads once all have started (nil if they did not).
  private func runWaiting(
    _ count: Int, on pool: ReaderThreads, gate: DispatchSemaphore, done: DispatchSemaphore
  )
    -> Set<Int>?
  {
    let threads = Mutex<Set<Int>>([])
    for _ in 0..<count {
      pool.run {
        threads.withLock { _ = $0.insert(threadNumber()) }
        gate.wait()
        done.signal()
      }
    }
    guard eventually({ threads.withLock { $0.count } == count }) else { return nil }
    return threads.withLock { $0 }
  }

  private func release(_ count: Int, gate: DispatchSemaphore, done: DispatchSemaphore) {
    for _ in 0..<count { gate.signal() }
    for _ in 0..<count { done.wait() }
  }

  /// Threads park when their work ends, up to the limit, and the next work runs on one
  /// of them instead of a new thread.
  @Test func parkedThreadsRunTheNextWork() throws {
    let pool = ReaderThreads(keepParked: 2)
    let gate = DispatchSemaphore(value: 0)
    let done = DispatchSemaphore(value: 0)
    // Should an expectation fail part way, no thread is left waiting at the gate.
    defer { for _ in 0..<5 { gate.signal() } }
    let first = try #require(runWaiting(3, on: pool, gate: gate, done: done))
    release(3, gate: gate, done: done)
    #expect(eventually { pool.parkedCount == 2 }, "one of three let go")

    let second = try #require(runWaiting(2, on: pool, gate: gate, done: done))
    #expect(pool.parkedCount == 0)
    #expect(second.isSubset(of: first))
    release(2, gate: gate, done: done)
    #expect(eventually { pool.parkedCount == 2 })
  }
}
