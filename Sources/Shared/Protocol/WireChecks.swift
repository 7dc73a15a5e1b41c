/// Range checks on decoded headers. JSON decoding checks shapes and types; these check
/// that numbers a receiver adds up, counts with or sleeps on are in a range where that is
/// safe. A peer's `"slots": 9223372036854775807` once crashed the coordinator's
/// scheduler (an overflow summing free slots); now it is a `malformed 'register'
/// header` error reply naming the field. `WireEnvelope.decode` runs the check of every
/// header type that has one, so every receiver gets it.
public protocol WireChecked {
  func check() throws(WireCheckError)
}

public struct WireCheckError: Error, CustomStringConvertible, Sendable, Equatable {
  public var field: String
  public var problem: String
  public init(field: String, problem: String) {
    self.field = field
    self.problem = problem
  }
  public var description: String { "\(field): \(problem)" }
}

/// The ranges. Generous: no real machine or job comes near them, and sums of many of
/// them stay far from overflowing.
public enum WireRange {
  public static let slots = 1...1024
  public static let gpus = 0...64
  public static let gpuIndex = 0...1023
  /// 1 PiB of VRAM on one GPU; 1 EiB of disk or memory.
  public static let vram: ClosedRange<Int64> = 0...(1 << 50)
  public static let bytes: ClosedRange<Int64> = 0...(1 << 60)
  public static let cpuCores = 0...(1 << 20)
  public static let attempt = 0...Int(Int32.max)
  /// Log sequence numbers stay exact in a JSON double.
  public static let logSeq = 0...(1 << 53)
  /// Lines in one `logBatch`; a worker sends a few thousand.
  public static let logBatchLines = 1...(1 << 20)
  public static let step = 0...(1 << 31)
  public static let priority = -1_000_000_000...1_000_000_000
  public static let retries = 0...1000
  public static let listLimit = 1...1_000_000
  /// Seconds between heartbeats a coordinator may ask for.
  public static let heartbeatInterval = 0.01...3600.0
  public static let liveness = 1...1000
  /// A duration a worker measured (about 30 years at most).
  public static let seconds = 0.0...1e9
}

func checkRange<T: Comparable & CustomStringConvertible>(
  _ value: T, _ range: ClosedRange<T>, _ field: @autoclosure () -> String
) throws(WireCheckError) {
  guard range.contains(value) else {
    throw WireCheckError(
      field: field(), problem: "\(value) is outside \(range.lowerBound)...\(range.upperBound)")
  }
}

func checkPositive(_ seconds: Double?, _ field: String) throws(WireCheckError) {
  guard let seconds else { return }
  guard seconds > 0, seconds.isFinite else {
    throw WireCheckError(field: field, problem: "\(seconds) is not a positive number of seconds")
  }
}

func checkGPUs(_ gpus: [GPU], _ field: String) throws(WireCheckError) {
  try checkRange(gpus.count, WireRange.gpus, "\(field) (count)")
  var seen: Set<Int> = []
  for (i, gpu) in gpus.enumerated() {
    try checkRange(gpu.index, WireRange.gpuIndex, "\(field)[\(i)].index")
    guard seen.insert(gpu.index).inserted else {
      throw WireCheckError(field: "\(field)[\(i)].index", problem: "GPU \(gpu.index) is listed twice")
    }
    try checkRange(gpu.vramTotal, WireRange.vram, "\(field)[\(i)].vramTotal")
    try checkRange(gpu.vramFree, WireRange.vram, "\(field)[\(i)].vramFree")
  }
}

/// A run of log lines as a batch or a result's tail carries it: numbered from 1, no more
/// than one batch holds, ending within a log's numbers. `prefix` names the fields' owner.
func checkLines(firstSeq: Int, count: Int, _ prefix: String = "") throws(WireCheckError) {
  try checkRange(firstSeq, 1...WireRange.logSeq.upperBound, prefix + "firstSeq")
  try checkRange(count, WireRange.logBatchLines, prefix + "count")
  try checkRange(firstSeq + count - 1, WireRange.logSeq, "\(prefix)firstSeq + \(prefix)count - 1")
}

/// Where a job stands among its steps, as a step report carries it (on its own or
/// inside a result). `prefix` names the fields' owner.
func checkSteps(index: Int, count: Int, _ prefix: String = "") throws(WireCheckError) {
  try checkRange(index, WireRange.step, prefix + "stepIndex")
  try checkRange(count, WireRange.step, prefix + "stepCount")
}

func checkRefs(_ refs: [AttemptRef], _ field: String) throws(WireCheckError) {
  for (i, ref) in refs.enumerated() {
    try checkRange(ref.attempt, WireRange.attempt, "\(field)[\(i)].attempt")
  }
}

extension WorkerAdvert: WireChecked {
  public func check() throws(WireCheckError) {
    try checkRange(slots, WireRange.slots, "worker.slots")
    try checkGPUs(gpus, "worker.gpus")
    try checkRange(diskFree, WireRange.bytes, "worker.diskFree")
    try checkRange(host.cpuCores, WireRange.cpuCores, "worker.host.cpuCores")
    try checkRange(host.memoryTotal, WireRange.bytes, "worker.host.memoryTotal")
  }
}

extension RegisterMessage: WireChecked {
  public func check() throws(WireCheckError) {
    try worker.check()
    try checkRefs(activeAttempts, "activeAttempts")
  }
}

extension HeartbeatMessage: WireChecked {
  public func check() throws(WireCheckError) {
    if let gpus { try checkGPUs(gpus, "gpus") }
    if let diskFree { try checkRange(diskFree, WireRange.bytes, "diskFree") }
    if let activeAttempts { try checkRefs(activeAttempts, "activeAttempts") }
  }
}

extension LogBatchMessage: WireChecked {
  public func check() throws(WireCheckError) {
    try checkRange(attempt, WireRange.attempt, "attempt")
    try checkLines(firstSeq: firstSeq, count: count)
  }
}

extension ProgressMessage: WireChecked {
  public func check() throws(WireCheckError) {
    try checkRange(attempt, WireRange.attempt, "attempt")
    try checkSteps(index: stepIndex, count: stepCount)
  }
}

extension FinishedMessage: WireChecked {
  public func check() throws(WireCheckError) {
    try checkRange(attempt, WireRange.attempt, "attempt")
    try checkRange(lastLogSeq, WireRange.logSeq, "lastLogSeq")
    if let tail {
      try checkLines(firstSeq: tail.firstSeq, count: tail.count, "tail.")
      // The tail ends the log: its last line is the result's last line.
      try checkRange(tail.lastSeq, lastLogSeq...lastLogSeq, "tail.firstSeq + tail.count - 1")
    }
    if let progress {
      try checkSteps(index: progress.stepIndex, count: progress.stepCount, "progress.")
      if let runningFor = progress.runningFor {
        // NaN compares false with both ends, so it is refused too.
        guard WireRange.seconds.contains(runningFor) else {
          throw WireCheckError(
            field: "progress.runningFor", problem: "\(runningFor) is not a duration in seconds")
        }
      }
    }
  }
}

extension CleanupMessage: WireChecked {
  public func check() throws(WireCheckError) {
    try checkRange(attempt, WireRange.attempt, "attempt")
    try checkRange(bytesFreed, WireRange.bytes, "bytesFreed")
    try checkRange(diskFreeAfter, WireRange.bytes, "diskFreeAfter")
  }
}

extension RegisteredMessage: WireChecked {
  public func check() throws(WireCheckError) {
    try checkRange(heartbeatInterval, WireRange.heartbeatInterval, "heartbeatInterval")
    try checkRange(liveness, WireRange.liveness, "liveness")
    try checkRefs(stopAttempts, "stopAttempts")
  }
}

extension Requirements: WireChecked {
  public func check() throws(WireCheckError) {
    try checkRange(gpus, WireRange.gpus, "requirements.gpus")
    if let vram { try checkRange(vram, WireRange.vram, "requirements.vram") }
    if let disk { try checkRange(disk, WireRange.bytes, "requirements.disk") }
    if let memory { try checkRange(memory, WireRange.bytes, "requirements.memory") }
  }
}

extension AssignMessage: WireChecked {
  public func check() throws(WireCheckError) {
    try checkRange(job.attempt, WireRange.attempt, "job.attempt")
    for (i, index) in job.gpuIndices.enumerated() {
      try checkRange(index, WireRange.gpuIndex, "job.gpuIndices[\(i)]")
    }
    try job.requirements.check()
    try checkPositive(job.timeoutSeconds, "job.timeoutSeconds")
  }
}

// Artifact sizes and offsets are summed and compared (`index + 1` of `count` is shown);
// `artifactBegin` with `index: Int.max` once reached an overflow. A negative size stays
// the store's to refuse, in the acknowledgement the worker waits for.
extension ArtifactBeginMessage: WireChecked {
  public func check() throws(WireCheckError) {
    try checkRange(attempt, WireRange.attempt, "attempt")
    try checkRange(size, Int64.min...WireRange.bytes.upperBound, "size")
    try checkRange(index, WireRange.step, "index")
    try checkRange(count, WireRange.step, "count")
  }
}

extension ArtifactChunkMessage: WireChecked {
  public func check() throws(WireCheckError) {
    try checkRange(attempt, WireRange.attempt, "attempt")
    try checkRange(offset, WireRange.bytes, "offset")
    try checkRange(size, Int64.min...WireRange.bytes.upperBound, "size")
  }
}

extension ArtifactAckMessage: WireChecked {
  public func check() throws(WireCheckError) {
    try checkRange(attempt, WireRange.attempt, "attempt")
    try checkRange(offset, WireRange.bytes, "offset")
  }
}

extension LogAckMessage: WireChecked {
  public func check() throws(WireCheckError) {
    try checkRange(attempt, WireRange.attempt, "attempt")
    try checkRange(upTo, WireRange.logSeq, "upTo")
  }
}

extension SubmitRequest: WireChecked {
  public func check() throws(WireCheckError) {
    try checkRange(priority, WireRange.priority, "priority")
    try checkRange(retries, WireRange.retries, "retries")
    try checkPositive(timeoutSeconds, "timeoutSeconds")
    try requirements.check()
  }
}

extension JobsRequest: WireChecked {
  public func check() throws(WireCheckError) {
    if let limit { try checkRange(limit, WireRange.listLimit, "limit") }
  }
}
