import Foundation
import Shared

/// The lines a running attempt has printed that the agent has not taken yet.
///
/// The agent takes them in slices between coordinator messages and clock ticks, so a job
/// printing a million lines a second cannot starve the heartbeats (they used to queue
/// behind every line in the agent's one event stream, and the coordinator declared a
/// busy worker dead). The buffer is bounded: when it is full, the thread reading the
/// job's pipes waits here, the pipe fills, and the job itself blocks on `write` — the
/// same backpressure a terminal gives a program that prints faster than it scrolls.
final class JobOutput: @unchecked Sendable {
  struct Line: Sendable {
    var stream: LogStream
    var text: String
    var time: Double
  }

  private let condition = NSCondition()
  private var lines: [Line] = []
  private var head = 0
  /// An announcement is outstanding: the agent will take lines without being told again.
  private var announced = false
  private var closed = false
  let capacity: Int
  private let announce: @Sendable () -> Void

  init(capacity: Int = 8192, announce: @escaping @Sendable () -> Void) {
    self.capacity = capacity
    self.announce = announce
  }

  /// Adds a line. With `blocking` (only from a pipe-reading thread, never the
  /// concurrency pool) it waits while the buffer is full. After `close` lines are dropped:
  /// the attempt is over or was given up, and nothing would deliver them.
  func append(_ stream: LogStream, _ text: String, blocking: Bool) {
    condition.lock()
    while blocking, !closed, lines.count - head >= capacity { condition.wait() }
    guard !closed else {
      condition.unlock()
      return
    }
    lines.append(Line(stream: stream, text: text, time: Timestamp.now()))
    let first = !announced
    announced = true
    condition.unlock()
    if first { announce() }
  }

  /// Takes up to `limit` lines. When some remain, the caller owes itself another turn
  /// (`more`); when none do, the next `append` announces again.
  func take(_ limit: Int) -> (lines: ArraySlice<Line>, more: Bool) {
    condition.lock()
    defer { condition.unlock() }
    let end = min(lines.count, head + limit)
    let taken = lines[head..<end]
    head = end
    if head == lines.count {
      lines.removeAll(keepingCapacity: true)
      head = 0
      announced = false
    } else if head > 4096, head * 2 > lines.count {
      lines.removeFirst(head)
      head = 0
    }
    condition.broadcast()
    return (taken, announced)
  }

  /// Wakes a blocked writer for good; later lines are dropped.
  func close() {
    condition.lock()
    closed = true
    condition.broadcast()
    condition.unlock()
  }
}
