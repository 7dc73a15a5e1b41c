/// Messages between a worker and the coordinator. Every message about a job names its
/// attempt, so the coordinator can refuse one from an attempt that was replaced.

public struct AttemptRef: Sendable, Hashable, Codable, CustomStringConvertible {
  public var jobID: String
  public var attempt: Int
  public init(jobID: String, attempt: Int) {
    self.jobID = jobID
    self.attempt = attempt
  }
  public var description: String { "\(jobID)#\(attempt)" }
}

/// What a worker tells the coordinator about its machine besides its GPUs
/// (`HostProbe.facts()`); jobs may require `platform` and `memoryTotal`.
public struct HostInfo: Sendable, Hashable, Codable {
  public var cpuCores: Int
  public var memoryTotal: Int64
  public var platform: String
  public var arch: String
  public var hostname: String

  public init(cpuCores: Int, memoryTotal: Int64, platform: String, arch: String, hostname: String) {
    self.cpuCores = cpuCores
    self.memoryTotal = memoryTotal
    self.platform = platform
    self.arch = arch
    self.hostname = hostname
  }
}

public struct WorkerAdvert: Sendable, Hashable, Codable {
  public var id: String
  public var name: String
  public var host: HostInfo
  public var gpus: [GPU]
  public var diskFree: Int64
  public var slots: Int
  public var labels: [String: String]

  public init(
    id: String, name: String, host: HostInfo, gpus: [GPU], diskFree: Int64, slots: Int,
    labels: [String: String]
  ) {
    self.id = id
    self.name = name
    self.host = host
    self.gpus = gpus
    self.diskFree = diskFree
    self.slots = slots
    self.labels = labels
  }
}

public struct RegisterMessage: Sendable, Codable {
  public var worker: WorkerAdvert
  /// Attempts the worker is still running (after a reconnect), so the coordinator
  /// can let current ones continue and stop stale ones.
  public var activeAttempts: [AttemptRef]
  public init(worker: WorkerAdvert, activeAttempts: [AttemptRef]) {
    self.worker = worker
    self.activeAttempts = activeAttempts
  }
}

public struct RegisteredMessage: Sendable, Codable {
  public var heartbeatInterval: Double
  public var liveness: Int
  public var stopAttempts: [AttemptRef]
  public init(heartbeatInterval: Double, liveness: Int, stopAttempts: [AttemptRef]) {
    self.heartbeatInterval = heartbeatInterval
    self.liveness = liveness
    self.stopAttempts = stopAttempts
  }
}

public struct HeartbeatMessage: Sendable, Codable {
  public var workerID: String
  /// Re-advertised free VRAM and disk, so the scheduler matches on what is really free.
  public var gpus: [GPU]?
  public var diskFree: Int64?
  /// The attempts the worker counts as its own (as in `register`), so the coordinator
  /// notices an assignment that never arrived: one committed just before a crash, or
  /// dropped by ZeroMQ with a connection that broke while it was in flight.
  public var activeAttempts: [AttemptRef]?
  public init(
    workerID: String, gpus: [GPU]? = nil, diskFree: Int64? = nil, activeAttempts: [AttemptRef]? = nil
  ) {
    self.workerID = workerID
    self.gpus = gpus
    self.diskFree = diskFree
    self.activeAttempts = activeAttempts
  }
}

/// Sent to a worker that speaks as if registered while the coordinator does not
/// know it (the coordinator restarted).
public struct ReregisterMessage: Sendable, Codable {
  public var reason: String
  public init(reason: String) { self.reason = reason }
}

public struct AssignedJob: Sendable, Hashable, Codable {
  public var jobID: String
  public var attempt: Int
  public var name: String
  public var entry: String
  public var args: JSONValue
  public var gpuIndices: [Int]
  public var requirements: Requirements
  public var timeoutSeconds: Double?
  public var artifacts: [String]

  public init(
    jobID: String, attempt: Int, name: String, entry: String, args: JSONValue, gpuIndices: [Int],
    requirements: Requirements, timeoutSeconds: Double?, artifacts: [String]
  ) {
    self.jobID = jobID
    self.attempt = attempt
    self.name = name
    self.entry = entry
    self.args = args
    self.gpuIndices = gpuIndices
    self.requirements = requirements
    self.timeoutSeconds = timeoutSeconds
    self.artifacts = artifacts
  }

  public var ref: AttemptRef { AttemptRef(jobID: jobID, attempt: attempt) }
}

/// `assign` carries the bundle as its one payload frame.
public struct AssignMessage: Sendable, Codable {
  public var job: AssignedJob
  public init(job: AssignedJob) { self.job = job }
}

public enum LogStream: String, Sendable, Codable {
  case stdout, stderr
  /// Lines the worker itself adds: step headers, warnings, the failure reason.
  case pinpool
}

public struct LogLine: Sendable, Hashable, Codable {
  /// Per-attempt sequence number, from 1, assigned by the worker.
  public var seq: Int
  public var stream: LogStream
  /// Seconds since 1970.
  public var time: Double
  public var line: String
  public init(seq: Int, stream: LogStream, time: Double, line: String) {
    self.seq = seq
    self.stream = stream
    self.time = time
    self.line = line
  }
}

/// The header of a `logBatch`; its one payload frame is the lines, a `LogChunk`,
/// numbered from `firstSeq`.
public struct LogBatchMessage: Sendable, Codable, Equatable {
  public var workerID: String
  public var jobID: String
  public var attempt: Int
  public var firstSeq: Int
  /// Lines in the payload; checked against it when received.
  public var count: Int
  public init(workerID: String, jobID: String, attempt: Int, firstSeq: Int, count: Int) {
    self.workerID = workerID
    self.jobID = jobID
    self.attempt = attempt
    self.firstSeq = firstSeq
    self.count = count
  }

  public var lastSeq: Int { firstSeq + count - 1 }
}

extension WireEnvelope {
  public static func logBatch(
    workerID: String, jobID: String, attempt: Int, firstSeq: Int, chunk: LogChunk
  ) -> WireEnvelope {
    WireEnvelope(
      .logBatch,
      LogBatchMessage(
        workerID: workerID, jobID: jobID, attempt: attempt, firstSeq: firstSeq, count: chunk.count),
      payload: [chunk.bytes])
  }

  /// A `logBatch` header and its lines, every record header checked against the count.
  public func decodeLogBatch() throws(WireError) -> (LogBatchMessage, LogChunk) {
    let message = try decode(LogBatchMessage.self)
    return (message, try lines(count: message.count, describedAs: "the lines"))
  }

  /// The one payload frame, as `count` lines, every record header checked.
  fileprivate func lines(count: Int, describedAs what: String) throws(WireError) -> LogChunk {
    guard payload.count == 1 else {
      throw .missingPayload(
        type: type.rawValue, detail: "expected 1 payload frame (\(what)), got \(payload.count)")
    }
    do {
      return try LogChunk(validating: payload[0], expectedCount: count)
    } catch {
      throw .missingPayload(type: type.rawValue, detail: error.description)
    }
  }
}

/// Every line up to and including `upTo` is durably stored.
public struct LogAckMessage: Sendable, Codable {
  public var jobID: String
  public var attempt: Int
  public var upTo: Int
  public init(jobID: String, attempt: Int, upTo: Int) {
    self.jobID = jobID
    self.attempt = attempt
    self.upTo = upTo
  }
}

public struct ProgressMessage: Sendable, Codable {
  public var workerID: String
  public var jobID: String
  public var attempt: Int
  /// `running`, or `serving` once a daemon script reached its last step.
  public var state: JobState
  public var stepIndex: Int
  public var stepCount: Int
  public var locals: JSONValue?
  public var notification: String?
  public init(
    workerID: String, jobID: String, attempt: Int, state: JobState, stepIndex: Int, stepCount: Int,
    locals: JSONValue? = nil, notification: String? = nil
  ) {
    self.workerID = workerID
    self.jobID = jobID
    self.attempt = attempt
    self.state = state
    self.stepIndex = stepIndex
    self.stepCount = stepCount
    self.locals = locals
    self.notification = notification
  }
}

public struct FinishedMessage: Sendable, Codable {
  public var workerID: String
  public var jobID: String
  public var attempt: Int
  public var state: JobState
  public var exitCode: Int32?
  public var error: String?
  public var locals: JSONValue?
  /// The last log sequence number of the attempt, so the coordinator knows when it
  /// holds the complete log.
  public var lastLogSeq: Int
  /// The reproducibility record: runtime tools, venvs, their packages.
  public var environment: JSONValue?
  /// The attempt's last lines, when they had not gone yet: they travel in the result's
  /// payload frame (a `LogChunk`) instead of a `logBatch` of their own, and the result's
  /// acknowledgement says how far they were stored. A short job's log is usually all
  /// tail, and this saves it a message each way.
  public var tail: LogTail?
  /// The attempt's last step report, when it had not gone yet (a worker holds step
  /// reports until its next tick, so a short job sends none of its own).
  public var progress: WithheldProgress?
  public init(
    workerID: String, jobID: String, attempt: Int, state: JobState, exitCode: Int32?, error: String?,
    locals: JSONValue?, lastLogSeq: Int, environment: JSONValue? = nil, tail: LogTail? = nil,
    progress: WithheldProgress? = nil
  ) {
    self.environment = environment
    self.tail = tail
    self.progress = progress
    self.workerID = workerID
    self.jobID = jobID
    self.attempt = attempt
    self.state = state
    self.exitCode = exitCode
    self.error = error
    self.locals = locals
    self.lastLogSeq = lastLogSeq
  }
}

/// A step report a `finished` carries. `runningFor` is set when no report said the
/// attempt was running: seconds from its first step to its end, by the worker's clock,
/// so the coordinator can date the start without comparing two machines' clocks.
public struct WithheldProgress: Sendable, Codable, Equatable {
  public var stepIndex: Int
  public var stepCount: Int
  public var runningFor: Double?
  public init(stepIndex: Int, stepCount: Int, runningFor: Double?) {
    self.stepIndex = stepIndex
    self.stepCount = stepCount
    self.runningFor = runningFor
  }
}

/// Where the lines a `finished` carries start, and how many there are.
public struct LogTail: Sendable, Codable, Equatable {
  public var firstSeq: Int
  public var count: Int
  public init(firstSeq: Int, count: Int) {
    self.firstSeq = firstSeq
    self.count = count
  }

  public var lastSeq: Int { firstSeq + count - 1 }
}

extension WireEnvelope {
  /// A result, with its tail's lines as the one payload frame when it has a tail.
  public static func finished(_ message: FinishedMessage, tail chunk: LogChunk?) -> WireEnvelope {
    WireEnvelope(.finished, message, payload: chunk.map { [$0.bytes] } ?? [])
  }

  /// A `finished` header and the lines of its tail, checked against the count.
  public func decodeFinished() throws(WireError) -> (FinishedMessage, LogChunk?) {
    let message = try decode(FinishedMessage.self)
    guard let tail = message.tail else {
      guard payload.isEmpty else {
        throw .missingPayload(
          type: "finished", detail: "expected no payload frame without a tail, got \(payload.count)")
      }
      return (message, nil)
    }
    return (message, try lines(count: tail.count, describedAs: "the tail's lines"))
  }
}

public struct CleanupMessage: Sendable, Codable {
  public var workerID: String
  public var jobID: String
  public var attempt: Int
  public var state: CleanupState
  public var bytesFreed: Int64
  public var diskFreeAfter: Int64
  public var reason: String?
  public init(
    workerID: String, jobID: String, attempt: Int, state: CleanupState, bytesFreed: Int64,
    diskFreeAfter: Int64, reason: String?
  ) {
    self.workerID = workerID
    self.jobID = jobID
    self.attempt = attempt
    self.state = state
    self.bytesFreed = bytesFreed
    self.diskFreeAfter = diskFreeAfter
    self.reason = reason
  }
}

public struct ReportAckMessage: Sendable, Codable {
  public enum Kind: String, Sendable, Codable { case finished, cleanup }
  public var jobID: String
  public var attempt: Int
  public var kind: Kind
  /// For a result that carried a tail: every line up to and including this one is
  /// durably stored (the `logAck` the tail would have had).
  public var logUpTo: Int?
  public init(jobID: String, attempt: Int, kind: Kind, logUpTo: Int? = nil) {
    self.jobID = jobID
    self.attempt = attempt
    self.kind = kind
    self.logUpTo = logUpTo
  }
}

/// Tells a worker to end an attempt: cancelled, timed out, or replaced by a newer one.
public struct StopMessage: Sendable, Codable {
  public var jobID: String
  public var attempt: Int
  public var reason: String
  /// The attempt is stale: the worker must not report a result for it, only clean up.
  public var stale: Bool
  public init(jobID: String, attempt: Int, reason: String, stale: Bool) {
    self.jobID = jobID
    self.attempt = attempt
    self.reason = reason
    self.stale = stale
  }
}

/// A message a registered worker sends about itself: it names the worker it comes from.
public protocol FromWorker {
  var workerID: String { get }
}

extension HeartbeatMessage: FromWorker {}
extension LogBatchMessage: FromWorker {}
extension ProgressMessage: FromWorker {}
extension FinishedMessage: FromWorker {}
extension CleanupMessage: FromWorker {}
extension ArtifactBeginMessage: FromWorker {}
extension ArtifactChunkMessage: FromWorker {}
