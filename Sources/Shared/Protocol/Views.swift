/// The `--json` shapes of DESIGN.md. Fields may be added; none may be renamed.

public struct StepView: Sendable, Hashable, Codable {
  public var index: Int
  public var count: Int
  public init(index: Int, count: Int) {
    self.index = index
    self.count = count
  }
}

public struct CleanupView: Sendable, Hashable, Codable {
  public var state: CleanupState
  public var bytesFreed: Int64?
  public var diskFreeAfter: Int64?
  public var reason: String?
  public init(state: CleanupState, bytesFreed: Int64?, diskFreeAfter: Int64? = nil, reason: String? = nil) {
    self.state = state
    self.bytesFreed = bytesFreed
    self.diskFreeAfter = diskFreeAfter
    self.reason = reason
  }
}

public struct JobView: Sendable, Hashable, Codable {
  public var id: String
  public var name: String
  public var state: JobState
  public var attempt: Int
  public var worker: String?
  public var exitCode: Int32?
  public var error: String?
  public var locals: JSONValue
  public var step: StepView
  public var cleanup: CleanupView
  public var submittedAt: String
  public var startedAt: String?
  public var finishedAt: String?
  // Additions beyond the fixed shape.
  public var priority: Int
  public var requirements: Requirements
  public var gpus: [Int]
  public var waitReason: String?
  public var notifications: [String]
  /// What the job ran with (runtime tools, venvs and their packages), once known.
  public var environment: JSONValue?
  /// The array the job belongs to (the id of its first job), for `--array` jobs.
  public var array: String?
  /// A label for each top-level step of the entry script (`shell.run`, `script.start
  /// torch.json`, …), for the step timeline of `status`; filled by `status` only.
  public var steps: [String]?
  /// The client key the job was submitted with (nil on a pool without keys).
  public var owner: String?
  /// When the current attempt was given to its worker; filled by `status` only. Between
  /// it and `startedAt` the worker prepared (its private runtime on first use, a cache
  /// eviction), which is not time spent queued.
  public var assignedAt: String?
  /// The files the job stored (`pinpool artifacts`); filled by `status` only.
  public var artifacts: [ArtifactView]?

  public init(
    id: String, name: String, state: JobState, attempt: Int, worker: String?, exitCode: Int32?,
    error: String?, locals: JSONValue, step: StepView, cleanup: CleanupView, submittedAt: String,
    startedAt: String?, finishedAt: String?, priority: Int, requirements: Requirements, gpus: [Int],
    waitReason: String?, notifications: [String], environment: JSONValue? = nil,
    array: String? = nil, steps: [String]? = nil
  ) {
    self.array = array
    self.steps = steps
    self.id = id
    self.name = name
    self.state = state
    self.attempt = attempt
    self.worker = worker
    self.exitCode = exitCode
    self.error = error
    self.locals = locals
    self.step = step
    self.cleanup = cleanup
    self.submittedAt = submittedAt
    self.startedAt = startedAt
    self.finishedAt = finishedAt
    self.priority = priority
    self.requirements = requirements
    self.gpus = gpus
    self.waitReason = waitReason
    self.notifications = notifications
    self.environment = environment
  }
}

public struct GPUView: Sendable, Hashable, Codable {
  public var index: Int
  public var vendor: GPUVendor
  public var model: String
  public var vramTotal: Int64
  public var vramFree: Int64
  public init(_ gpu: GPU) {
    index = gpu.index
    vendor = gpu.vendor
    model = gpu.model
    vramTotal = gpu.vramTotal
    vramFree = gpu.vramFree
  }
}

public struct WorkerView: Sendable, Hashable, Codable {
  public var id: String
  public var name: String
  public var state: WorkerState
  public var gpus: [GPUView]
  public var diskFree: Int64
  public var slots: Int
  public var running: Int
  public var lastSeen: String
  public var labels: [String: String]
  public var cpuCores: Int
  public var memoryTotal: Int64
  public init(
    id: String, name: String, state: WorkerState, gpus: [GPUView], diskFree: Int64, slots: Int,
    running: Int, lastSeen: String, labels: [String: String], cpuCores: Int, memoryTotal: Int64
  ) {
    self.id = id
    self.name = name
    self.state = state
    self.gpus = gpus
    self.diskFree = diskFree
    self.slots = slots
    self.running = running
    self.lastSeen = lastSeen
    self.labels = labels
    self.cpuCores = cpuCores
    self.memoryTotal = memoryTotal
  }
}

public struct LogLineView: Sendable, Hashable, Codable {
  /// Job-wide sequence number (across attempts), the one `logs --since` takes.
  public var seq: Int
  public var stream: LogStream
  public var time: String
  public var line: String
  public var attempt: Int
  public init(seq: Int, stream: LogStream, time: String, line: String, attempt: Int) {
    self.seq = seq
    self.stream = stream
    self.time = time
    self.line = line
    self.attempt = attempt
  }
}
