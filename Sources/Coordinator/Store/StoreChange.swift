import Shared

/// A row the core wants written. The shell applies every change of one batch of
/// messages in one transaction, and sends the batch's replies only after it commits:
/// an id is never returned for a job that is not on disk.
enum StoreChange: Sendable {
  case insertJobs([NewJobRow], bundleHash: String, bundle: [UInt8])
  case jobAssigned(id: Int64, attempt: Int, workerID: String, workerName: String, gpus: [Int], at: Double)
  case jobProgress(
    id: Int64, state: JobState?, stepIndex: Int, stepCount: Int, locals: JSONValue?, at: Double)
  case jobNotification(id: Int64, text: String)
  case jobEnvironment(id: Int64, environment: JSONValue)
  /// `started`: the step report the result carried (`startedAt` set only when no report
  /// said the job was running), stored with the result in one update.
  case jobFinished(
    id: Int64, attempt: Int, state: JobState, exitCode: Int32?, error: String?, locals: JSONValue?,
    at: Double,
    started: StartedRecord? = nil
  )
  case jobRequeued(id: Int64, attempt: Int, failures: Int, lostCount: Int, reason: String, at: Double)
  case attemptEnded(id: Int64, attempt: Int, state: JobState, error: String?, at: Double)
  case jobCleanup(
    id: Int64, attempt: Int, state: CleanupState, bytesFreed: Int64?, diskFreeAfter: Int64?, reason: String?)
  /// Lines continuing the job's log: numbered from `firstJobSeq` job-wide and from
  /// `firstWorkerSeq` in the attempt.
  case appendLogChunk(jobID: Int64, attempt: Int, firstJobSeq: Int, firstWorkerSeq: Int, chunk: LogChunk)
  case upsertWorker(WorkerAdvert, state: WorkerState, drained: Bool, lastSeen: Double)
  case workerState(id: String, state: WorkerState, drained: Bool, lastSeen: Double)
  /// An artifact file is stored and verified.
  case artifactStored(jobID: Int64, attempt: Int, name: String, size: Int64, sha256: String, at: Double)
}

struct NewJobRow: Sendable {
  var id: Int64
  var arrayID: Int64? = nil
  var name: String
  var priority: Int
  var retries: Int
  var entry: String
  var args: JSONValue
  var requirements: Requirements
  var artifacts: [String]
  var timeoutSeconds: Double?
  var submittedAt: Double
  var owner: String? = nil
}

/// Where a job stood when its result came with the step report it had not sent.
struct StartedRecord: Sendable, Equatable {
  var startedAt: Double?
  var stepIndex: Int
  var stepCount: Int
}
