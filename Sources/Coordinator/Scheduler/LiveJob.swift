import Shared

/// A job the coordinator still acts on: queued, on a worker, or final but with its
/// log or cleanup still outstanding. Finished and cleaned jobs live only in the store.
struct LiveJob: Sendable {
  var id: Int64
  var name: String
  var priority: Int
  var requirements: Requirements
  var attempt: Int
  var retries: Int
  var failures: Int
  var lostCount: Int
  var state: JobState
  var workerID: String?
  var gpuIndices: [Int] = []
  var submittedAt: Double
  var startedAt: Double?
  /// When the current attempt was sent to its worker: a heartbeat that still does not
  /// list it a liveness window later means the assignment never arrived.
  var assignedAt: Double?
  var timeoutSeconds: Double?
  var cancelRequested = false
  var timedOut = false

  var idText: String { String(id) }
  var ref: AttemptRef { AttemptRef(jobID: idText, attempt: attempt) }

  /// The order a queue is served in: higher priority first, then first come.
  struct QueueKey: Comparable, Hashable, Sendable {
    var priority: Int
    var id: Int64
    /// The job's requirements as a small number (equal requirements, equal number; 0
    /// when unknown), so a scheduling pass can skip a shape that fits nowhere without
    /// touching the job.
    var requirementClass: Int = 0
    static func < (a: QueueKey, b: QueueKey) -> Bool {
      a.priority != b.priority ? a.priority > b.priority : a.id < b.id
    }
  }

  var requirementClass = 0
  var queueKey: QueueKey { QueueKey(priority: priority, id: id, requirementClass: requirementClass) }
}
