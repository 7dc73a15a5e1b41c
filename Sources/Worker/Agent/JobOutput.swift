import Foundation
import Shared

/// The lines a running attempt has printed that the agent has not taken yet, already in
/// the log's record form (`LogChunk`), so the agent takes them as one chunk and the line
/// is copied once on its way from the pipe to the wire.
///
/// The agent takes them in slices between coordinator messages and clock ticks, so a job
/// printing a million lines a second cannot starve the heartbeats (they used to queue
/// behind every line in the agent's one event stream, and the coordinator declared a
/// busy worker dead). The buffer is bounded: when it is full, the thread reading the
/// job's pipes waits here, the pipe fills, and the job itself blocks on `write` — the
/// same backpressure a terminal gives a program that prints faster than it scrolls.
final class JobOutput: @unchecked Sendable {
  /// Everything the lock guards, in one value: the pipe reader reaches it once per line
  /// (one exclusivity check instead of one per field).
  private struct Pending {
    var records: [UInt8] = []
    var lineCount = 0
    /// An announcement is outstanding: the agent will take lines without being told again.
    var announced = false
    var closed = false

    func mustWait(capacity: Int, byteCapacity: Int) -> Bool {
      !closed && (lineCount >= capacity || records.count >= byteCapacity)
    }

    /// Adds a record; nil when closed (dropped), else whether the agent must be told.
    mutating func add(_ stream: LogStream, _ line: UnsafeBufferPointer<UInt8>, time: Double) -> Bool? {
      guard !closed else { return nil }
      LogChunk.appendRecord(to: &records, stream: stream, time: time, text: line)
      lineCount += 1
      defer { announced = true }
      return !announced
    }
  }

  private let condition = NSCondition()
  /// Behind a pointer, guarded by `condition`: a stored property would cost a dynamic
  /// exclusivity check (thread-local bookkeeping) on every line, a few percent of a
  /// chatty job's whole log path.
  private let pending: UnsafeMutablePointer<Pending> = .allocate(capacity: 1)
  /// The taker's buffer, swapped with the pending records when it takes everything, so
  /// the copy into the chunk happens outside the lock the pipe reader waits on. Only
  /// `take` (one caller at a time: the agent) touches it.
  private var spare: [UInt8] = []
  /// Lines, and bytes of records, held at most before a blocking writer waits.
  let capacity: Int
  let byteCapacity: Int
  private let announce: @Sendable () -> Void

  /// The byte capacity also bounds a chunk taken whole (by one line, at most
  /// `--max-log-line`), so a `logBatch` stays far below any `--max-message`.
  init(capacity: Int = 32_768, byteCapacity: Int = 1 << 20, announce: @escaping @Sendable () -> Void) {
    self.capacity = capacity
    self.byteCapacity = byteCapacity
    self.announce = announce
    pending.initialize(to: Pending())
  }

  deinit {
    pending.deinitialize(count: 1)
    pending.deallocate()
  }

  /// Adds a line. With `blocking` (only from a pipe-reading thread, never the
  /// concurrency pool) it waits while the buffer is full. After `close` lines are dropped:
  /// the attempt is over or was given up, and nothing would deliver them.
  func append(_ stream: LogStream, _ line: UnsafeBufferPointer<UInt8>, time: Double, blocking: Bool) {
    condition.lock()
    if blocking {
      while pending.pointee.mustWait(capacity: capacity, byteCapacity: byteCapacity) { condition.wait() }
    }
    let first = pending.pointee.add(stream, line, time: time)
    condition.unlock()
    if first == true { announce() }
  }

  func append(_ stream: LogStream, _ text: String, blocking: Bool) {
    var text = text
    text.withUTF8 { append(stream, $0, time: Timestamp.now(), blocking: blocking) }
  }

  /// Takes up to `limit` lines as one chunk. When some remain, the caller owes itself
  /// another turn (`more`); when none do, the next `append` announces again.
  func take(_ limit: Int) -> (chunk: LogChunk, more: Bool) {
    condition.lock()
    if pending.pointee.lineCount <= limit {
      swap(&pending.pointee.records, &spare)
      let count = pending.pointee.lineCount
      pending.pointee.lineCount = 0
      pending.pointee.announced = false
      condition.broadcast()
      condition.unlock()
      let chunk = LogChunk(records: spare, count: count)
      spare.removeAll(keepingCapacity: true)
      return (chunk, false)
    }
    defer { condition.unlock() }
    let end = pending.pointee.records.withUnsafeBytes { LogChunk.offset(afterRecords: limit, in: $0) }
    let chunk = LogChunk(records: pending.pointee.records[..<end], count: max(0, limit))
    pending.pointee.records.removeFirst(end)
    pending.pointee.lineCount -= max(0, limit)
    condition.broadcast()
    return (chunk, pending.pointee.announced)
  }

  /// Wakes a blocked writer for good; later lines are dropped.
  func close() {
    condition.lock()
    pending.pointee.closed = true
    condition.broadcast()
    condition.unlock()
  }
}
