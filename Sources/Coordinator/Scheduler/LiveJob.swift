import Shared

/// A job the coordinator still acts on: queued, on a worker, or final but with its
/// log or cleanup still outstanding. Finished and cleaned jobs live only in the store.
struct LiveJob: Sendable {
  var id: Int64
  var name: String
  var priority: Int
  /// Held by reference: the jobs of one array (or one shape, once the core has interned
  /// it) share one copy, which keeps a job's entry in the coordinator's job table small —
  /// with 100,000 queued jobs that table is most of the coordinator's memory.
  private(set) var requirementsBox: RequirementsBox
  /// Read only: a job's requirements, its class and the shared copy are set together.
  var requirements: Requirements { requirementsBox.value }
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

  init(
    id: Int64, name: String, priority: Int, requirements: Requirements, attempt: Int, retries: Int,
    failures: Int, lostCount: Int, state: JobState, workerID: String?, gpuIndices: [Int] = [],
    submittedAt: Double, startedAt: Double? = nil, timeoutSeconds: Double? = nil
  ) {
    self.id = id
    self.name = name
    self.priority = priority
    self.requirementsBox = RequirementsBox(requirements)
    self.attempt = attempt
    self.retries = retries
    self.failures = failures
    self.lostCount = lostCount
    self.state = state
    self.workerID = workerID
    self.gpuIndices = gpuIndices
    self.submittedAt = submittedAt
    self.startedAt = startedAt
    self.timeoutSeconds = timeoutSeconds
  }

  /// Points the job at an equal, shared copy of its requirements.
  mutating func share(_ box: RequirementsBox) {
    precondition(box.value == requirementsBox.value, "shared requirements must be equal")
    requirementsBox = box
  }

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

/// An immutable, shareable copy of a job's requirements.
final class RequirementsBox: Sendable {
  let value: Requirements
  init(_ value: Requirements) { self.value = value }
}
