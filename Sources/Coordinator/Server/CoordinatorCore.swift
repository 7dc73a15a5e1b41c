import Foundation
import Shared

/// The coordinator's state machine: messages and the clock in, store changes and
/// messages out. It owns no socket, database or clock, so tests drive it directly and
/// a simulator can replay it with faults injected.
struct CoordinatorCore: Sendable {
  let settings: CoordinatorSettings
  private(set) var workers = WorkerRegistry()
  private(set) var jobs: [Int64: LiveJob] = [:]
  private(set) var queue = JobQueue()
  private(set) var nextJobID: Int64
  /// Per job: the attempt whose log is being written and how far it is stored.
  private(set) var logCursors: [Int64: LogCursor] = [:]
  private var actions: [CoordinatorAction] = []
  /// Distinct requirements seen, numbered from 1 (see `LiveJob.QueueKey`), each with the
  /// one copy the jobs of that shape share.
  private var requirementClasses: [Requirements: (number: Int, box: RequirementsBox)] = [:]
  /// Final attempts whose worker has not reported their cleanup yet: until it does, it
  /// may upload their artifacts. Kept apart from `jobs` (which lets a final job go when
  /// its worker goes offline), so a laptop that sleeps through an upload can finish it
  /// when it wakes, and across a coordinator restart; forgotten after `owedCleanupDays`.
  private(set) var owedCleanup: [AttemptRef: OwedCleanup] = [:]
  private var lastOwedSweep = 0.0
  /// What the last scheduling pass saw (see `schedule`).
  private var lastPass: (inputs: (capacity: Int, queue: Int), at: Double)?
  /// Scheduling passes run (as Slurm's `sdiag` counts its cycles).
  private(set) var schedulingPasses = 0
  static let periodicPassSeconds = 1.0
  static let owedCleanupDays = 7.0

  struct OwedCleanup: Sendable, Hashable {
    var workerID: String
    var since: Double
  }

  /// The number and the shared copy of a shape of requirements, made on first sight.
  private mutating func shape(of requirements: Requirements) -> (number: Int, box: RequirementsBox) {
    if let known = requirementClasses[requirements] { return known }
    let made = (number: requirementClasses.count + 1, box: RequirementsBox(requirements))
    requirementClasses[requirements] = made
    return made
  }

  /// Numbers the job's requirements and points it at the shared copy.
  private mutating func classify(_ job: inout LiveJob, as known: (number: Int, box: RequirementsBox)? = nil) {
    let shape = known ?? shape(of: job.requirements)
    job.requirementClass = shape.number
    job.share(shape.box)
  }

  struct LogCursor: Sendable, Hashable {
    var attempt: Int
    /// Last worker-assigned sequence number stored for `attempt`.
    var workerSeq: Int
    /// Last job-wide sequence number stored.
    var jobSeq: Int
  }

  init(settings: CoordinatorSettings, nextJobID: Int64 = 1) {
    self.settings = settings
    self.nextJobID = nextJobID
  }

  /// Returns and clears what the inputs so far asked for.
  mutating func takeActions() -> [CoordinatorAction] {
    defer { actions.removeAll(keepingCapacity: true) }
    return actions
  }

  // MARK: Recovery

  /// Loads a job that was not final when the coordinator stopped. Assigned and running
  /// jobs stay with their worker: if it re-registers in time with the attempt they
  /// continue, otherwise the liveness check requeues them.
  mutating func restore(job: LiveJob, cursor: LogCursor?) {
    var job = job
    classify(&job)
    jobs[job.id] = job
    if job.state == .queued { queue.insert(job.queueKey) }
    if let cursor { logCursors[job.id] = cursor }
    nextJobID = max(nextJobID, job.id + 1)
  }

  mutating func restore(worker advert: WorkerAdvert, drained: Bool, now: Double) {
    // Until it speaks again we cannot route to it, but we remember its jobs' holdings
    // and give it one liveness window to come back.
    var record = WorkerRecord(advert: advert, peer: [], lastSeen: now, online: true, drained: drained)
    record.registered = false
    for job in jobs.values where job.workerID == advert.id && job.state.isActive {
      record.holdings[job.ref] = Holding(
        gpuIndices: job.gpuIndices, disk: job.requirements.disk ?? 0, active: true)
    }
    workers[advert.id] = record
  }

  /// A final attempt whose cleanup report had not come when the coordinator stopped:
  /// its worker may still be uploading its artifacts.
  mutating func restoreOwedCleanup(_ ref: AttemptRef, workerID: String, now: Double) {
    owedCleanup[ref] = OwedCleanup(workerID: workerID, since: now)
  }

  mutating func noteIssuedID(_ id: Int64) { nextJobID = max(nextJobID, id + 1) }

  // MARK: Client requests

  mutating func submit(
    peer: [UInt8], request: SubmitRequest, bundleHash: String, bundle: [UInt8], now: Double
  ) {
    let indices: [Int?] = request.arrayIndices.map { $0.map(Optional.some) } ?? [nil]
    guard !indices.isEmpty else {
      fail(peer, requestID: request.requestID, "an array needs at least one index")
      return
    }
    var rows: [NewJobRow] = []
    let arrayID = request.arrayIndices == nil ? nil : nextJobID
    // Looked up once for the whole array: every job of it has the same requirements.
    let requirementShape = shape(of: request.requirements)
    for index in indices {
      let id = nextJobID
      nextJobID += 1
      var args = request.args
      var name = request.name
      if let index {
        var object = args.objectValue ?? JSONObject()
        object["index"] = .number(Double(index))
        args = .object(object)
        name = "\(request.name)[\(index)]"
      }
      rows.append(
        NewJobRow(
          id: id, name: name, priority: request.priority, retries: request.retries, entry: request.entry,
          args: args, requirements: request.requirements, artifacts: request.artifacts,
          timeoutSeconds: request.timeoutSeconds, submittedAt: now))
      rows[rows.count - 1].arrayID = arrayID
      rows[rows.count - 1].owner = request.owner
      var job = LiveJob(
        id: id, name: name, priority: request.priority, requirements: request.requirements, attempt: 0,
        retries: request.retries, failures: 0, lostCount: 0, state: .queued, workerID: nil,
        submittedAt: now, timeoutSeconds: request.timeoutSeconds)
      classify(&job, as: requirementShape)
      jobs[id] = job
      queue.insert(job.queueKey)
    }
    actions.append(.store(.insertJobs(rows, bundleHash: bundleHash, bundle: bundle)))
    let ids = rows.map { String($0.id) }
    reply(peer, requestID: request.requestID, SubmitReply(id: ids[0], ids: ids))
  }

  mutating func cancel(peer: [UInt8], request: CancelRequest, now: Double) {
    var cancelled: [String] = []
    var alreadyFinal: [String] = []
    for text in request.jobIDs {
      guard let id = Int64(text), var job = jobs[id], !job.state.isFinal else {
        alreadyFinal.append(text)
        continue
      }
      cancelled.append(text)
      switch job.state {
      case .queued:
        queue.remove(job.queueKey)
        job.state = .cancelled
        jobs[id] = job
        actions.append(
          .store(
            .jobFinished(
              id: id, attempt: job.attempt, state: .cancelled, exitCode: nil,
              error: "cancelled before it started", locals: nil, at: now)))
        jobs[id] = nil
      default:
        job.cancelRequested = true
        jobs[id] = job
        if let workerID = job.workerID, let worker = workers[workerID], worker.online {
          send(
            worker.peer, .stop,
            StopMessage(jobID: text, attempt: job.attempt, reason: "cancelled", stale: false))
        } else {
          finish(
            id: id, state: .cancelled, exitCode: nil, error: "cancelled (its worker is offline)", now: now)
        }
      }
    }
    reply(peer, requestID: request.requestID, CancelReply(cancelled: cancelled, alreadyFinal: alreadyFinal))
  }

  mutating func setDrained(peer: [UInt8], request: DrainRequest, drained: Bool, now: Double) {
    guard var worker = workers.find(request.worker) else {
      fail(peer, requestID: request.requestID, "no worker named '\(request.worker)'; see `pinpool workers`")
      return
    }
    worker.drained = drained
    workers[worker.advert.id] = worker
    actions.append(
      .store(
        .workerState(id: worker.advert.id, state: worker.state, drained: drained, lastSeen: worker.lastSeen)))
    reply(peer, requestID: request.requestID, worker.view())
  }

  // MARK: Worker messages

  mutating func register(peer: [UInt8], message: RegisterMessage, now: Double) {
    let advert = message.worker
    var record =
      workers[advert.id]
      ?? WorkerRecord(advert: advert, peer: peer, lastSeen: now, online: true, drained: false)
    record.advert = advert
    record.peer = peer
    record.lastSeen = now
    record.online = true
    record.registered = true
    let reported = Set(message.activeAttempts)
    var stop: [AttemptRef] = []
    // A cancel or timeout decided while the worker was unreachable is sent again now.
    var resendStop: [LiveJob] = []
    // Attempts whose result the coordinator already took (its acknowledgement was lost,
    // or the worker restarted before hearing it): not stale, for they may still be
    // uploading artifacts, but told to stop should they still run (the coordinator gave
    // up on them while the worker was away).
    var finishedStop: [(ref: AttemptRef, state: String, logStoredUpTo: Int)] = []
    for ref in message.activeAttempts {
      if case let (id, job)? = currentAttempt(ref, on: advert.id), job.state.isFinal {
        record.holdings[ref] = Holding(
          gpuIndices: job.gpuIndices, disk: job.requirements.disk ?? 0, active: false)
        let cursor = logCursors[id].flatMap { $0.attempt == ref.attempt ? $0.workerSeq : nil } ?? 0
        finishedStop.append((ref, job.state.rawValue, cursor))
        continue
      }
      if jobs[Int64(ref.jobID) ?? -1] == nil, owedCleanup[ref]?.workerID == advert.id {
        // Its result was taken, so every line up to it is stored (see `finished`).
        finishedStop.append((ref, "finished", WireRange.logSeq.upperBound))
        continue
      }
      guard case let (_, job)? = currentAttempt(ref, on: advert.id), job.state.isActive else {
        stop.append(ref)
        continue
      }
      record.holdings[ref] = Holding(
        gpuIndices: job.gpuIndices, disk: job.requirements.disk ?? 0, active: true)
      if job.cancelRequested || job.timedOut { resendStop.append(job) }
    }
    workers[advert.id] = record
    actions.append(.store(.upsertWorker(advert, state: record.state, drained: record.drained, lastSeen: now)))
    // Jobs we placed on this worker that it no longer runs were lost with its
    // previous process (a crash or a reboot).
    for job in jobs.values
    where job.workerID == advert.id && job.state.isActive && !reported.contains(job.ref) {
      lose(jobID: job.id, reason: "worker \(advert.name) restarted without it", now: now)
    }
    // Holdings of attempts that ended while we could not hear about their cleanup
    // are released: the worker no longer has their workspace open.
    if var current = workers[advert.id] {
      current.holdings = current.holdings.filter { reported.contains($0.key) }
      workers[advert.id] = current
    }
    // Before `registered`, upon which the worker resends what it holds unacknowledged:
    // the log of an attempt whose result is in need not travel again.
    for (ref, _, upTo) in finishedStop where upTo > 0 {
      send(peer, .logAck, LogAckMessage(jobID: ref.jobID, attempt: ref.attempt, upTo: upTo))
    }
    send(
      peer, .registered,
      RegisteredMessage(
        heartbeatInterval: settings.heartbeatInterval, liveness: settings.liveness, stopAttempts: stop))
    for job in resendStop {
      send(
        peer, .stop,
        StopMessage(
          jobID: job.idText, attempt: job.attempt, reason: job.timedOut ? "timed out" : "cancelled",
          stale: false))
    }
    for (ref, state, _) in finishedStop {
      send(
        peer, .stop,
        StopMessage(
          jobID: ref.jobID, attempt: ref.attempt, reason: "the job is already \(state)", stale: false))
    }
  }

  mutating func heartbeat(peer: [UInt8], message: HeartbeatMessage, now: Double) {
    guard var worker = workers[message.workerID] else {
      send(
        peer, .reregister,
        ReregisterMessage(reason: "the coordinator does not know worker \(message.workerID)"))
      return
    }
    let wasOffline = !worker.online
    worker.peer = peer
    worker.lastSeen = now
    if let gpus = message.gpus { worker.advert.gpus = gpus }
    if let disk = message.diskFree { worker.advert.diskFree = disk }
    if wasOffline || !worker.registered {
      // Declared dead (its jobs moved on), or known only from the store after a
      // restart: it must register again and list its attempts, so the coordinator
      // learns which continue, which to stop, and which it never received.
      workers[message.workerID] = worker
      send(
        peer, .reregister,
        ReregisterMessage(
          reason: wasOffline
            ? "the worker was offline; its jobs were requeued"
            : "the coordinator restarted and needs the worker's attempts"))
      return
    }
    workers[message.workerID] = worker
    if let reported = message.activeAttempts {
      reconcile(worker: worker, reported: Set(reported), now: now)
    }
    send(peer, .heartbeat, HeartbeatMessage(workerID: message.workerID))
  }

  /// An attempt the coordinator placed on this worker a whole liveness window ago that
  /// the worker does not list never reached it: the coordinator crashed between
  /// committing the assignment and sending it, or the connection broke with the message
  /// in flight. Waiting longer would leave the job `assigned` forever; it is lost and
  /// requeued, and the worker is told to drop that attempt should it still turn up
  /// (ZeroMQ keeps order, so the stop can only arrive after the assignment).
  private mutating func reconcile(worker: WorkerRecord, reported: Set<AttemptRef>, now: Double) {
    for ref in worker.holdings.filter(\.value.active).map(\.key) where !reported.contains(ref) {
      guard case let (id, job)? = currentAttempt(ref, on: worker.advert.id), job.state.isActive else {
        continue
      }
      if let sent = job.assignedAt, now - sent < settings.livenessWindow { continue }
      lose(jobID: id, reason: "worker \(worker.advert.name) never received attempt \(ref.attempt)", now: now)
      send(
        worker.peer, .stop,
        StopMessage(
          jobID: ref.jobID, attempt: ref.attempt, reason: "the assignment was given up as lost", stale: true))
    }
  }

  /// Looks up the worker a message claims to come from; unknown workers are asked to
  /// register, so after a coordinator restart they resync by themselves.
  private mutating func knownWorker(_ workerID: String, peer: [UInt8], now: Double) -> WorkerRecord? {
    guard var worker = workers[workerID], worker.online, worker.registered else {
      send(peer, .reregister, ReregisterMessage(reason: "the coordinator does not know worker \(workerID)"))
      return nil
    }
    worker.peer = peer
    worker.lastSeen = now
    workers[workerID] = worker
    return worker
  }

  /// The job whose current attempt `ref` is, if `workerID` runs it (in whatever state).
  private func currentAttempt(_ ref: AttemptRef, on workerID: String) -> (id: Int64, job: LiveJob)? {
    guard let id = Int64(ref.jobID), let job = jobs[id], job.attempt == ref.attempt, job.workerID == workerID
    else { return nil }
    return (id, job)
  }

  /// The job a message is about, if that attempt is the current one. A message from a
  /// replaced attempt is refused and its worker told to stop it.
  private mutating func currentJob(_ jobID: String, attempt: Int, workerID: String, peer: [UInt8]) -> LiveJob?
  {
    guard let id = Int64(jobID), let job = jobs[id] else { return nil }
    guard job.attempt == attempt, job.workerID == workerID, job.state.isActive else {
      // Replaced by a newer attempt, requeued after its worker was declared lost, or
      // ended while the worker was away: that attempt must stop, and its word is void.
      if attempt <= job.attempt {
        send(
          peer, .stop,
          StopMessage(
            jobID: jobID, attempt: attempt,
            reason: job.attempt == attempt
              ? "attempt \(attempt) is no longer this worker's (the job is \(job.state.rawValue))"
              : "attempt \(attempt) was replaced by attempt \(job.attempt)",
            stale: true))
      }
      return nil
    }
    return job
  }

  mutating func logBatch(peer: [UInt8], message: LogBatchMessage, chunk: LogChunk, now: Double) {
    guard knownWorker(message.workerID, peer: peer, now: now) != nil else { return }
    if let ack = storeLines(peer: peer, message: message, chunk: chunk, stopStale: true) {
      send(peer, .logAck, LogAckMessage(jobID: message.jobID, attempt: message.attempt, upTo: ack))
    }
  }

  /// Stores what continues the attempt's log and returns how far the worker may count
  /// its lines as stored (nil: not at all, and nothing is to be acknowledged).
  private mutating func storeLines(peer: [UInt8], message: LogBatchMessage, chunk: LogChunk, stopStale: Bool)
    -> Int?
  {
    guard let id = Int64(message.jobID) else { return nil }
    let ack = message.lastSeq
    // A job that is final and fully cleaned up: everything of it was stored when it
    // ended; acknowledge so the worker can forget the lines.
    guard let job = jobs[id] else { return ack }
    // Lines of the current attempt are kept even after it ended (they may trail its
    // result after a reconnect); lines of a replaced or requeued attempt are not.
    guard job.attempt == message.attempt, job.workerID == message.workerID else {
      guard message.attempt <= job.attempt else { return nil }
      if stopStale {
        send(
          peer, .stop,
          StopMessage(
            jobID: message.jobID, attempt: message.attempt, reason: "attempt was replaced", stale: true))
      }
      return ack
    }
    var cursor = logCursors[id] ?? LogCursor(attempt: message.attempt, workerSeq: 0, jobSeq: 0)
    if cursor.attempt != message.attempt {
      cursor = LogCursor(attempt: message.attempt, workerSeq: 0, jobSeq: cursor.jobSeq)
    }
    // Only lines that continue exactly where the stored log ends are taken. A resend
    // repeats lines we hold (dropped, so each is stored once); a batch sent on a new
    // connection can overtake one lost with the old (kept back, not acknowledged, so the
    // worker resends from the gap and no line is skipped).
    if message.firstSeq <= cursor.workerSeq + 1, message.lastSeq > cursor.workerSeq {
      let fresh = chunk.dropping(first: cursor.workerSeq + 1 - message.firstSeq)
      actions.append(
        .store(
          .appendLogChunk(
            jobID: id, attempt: message.attempt, firstJobSeq: cursor.jobSeq + 1,
            firstWorkerSeq: cursor.workerSeq + 1, chunk: fresh)))
      cursor.workerSeq = message.lastSeq
      cursor.jobSeq += fresh.count
      logCursors[id] = cursor
    }
    return cursor.workerSeq
  }

  mutating func progress(peer: [UInt8], message: ProgressMessage, now: Double) {
    guard knownWorker(message.workerID, peer: peer, now: now) != nil,
      var job = currentJob(message.jobID, attempt: message.attempt, workerID: message.workerID, peer: peer)
    else { return }
    var newState: JobState?
    if message.state != job.state, message.state == .running || message.state == .serving {
      newState = message.state
      if job.startedAt == nil { job.startedAt = now }
      job.state = message.state
      jobs[job.id] = job
    }
    actions.append(
      .store(
        .jobProgress(
          id: job.id, state: newState, stepIndex: message.stepIndex, stepCount: message.stepCount,
          locals: message.locals, at: now)))
    if let note = message.notification { actions.append(.store(.jobNotification(id: job.id, text: note))) }
  }

  mutating func finished(peer: [UInt8], message: FinishedMessage, tail: LogChunk? = nil, now: Double) {
    guard knownWorker(message.workerID, peer: peer, now: now) != nil else { return }
    // The log's last lines first, as a `logBatch` would have brought them; the stale
    // attempt's stop, if any, comes from the result below.
    var logUpTo: Int?
    if let tail, let range = message.tail {
      let lines = LogBatchMessage(
        workerID: message.workerID, jobID: message.jobID, attempt: message.attempt, firstSeq: range.firstSeq,
        count: range.count)
      logUpTo = storeLines(peer: peer, message: lines, chunk: tail, stopStale: false)
    }
    // A result may overtake log lines lost with a dropped connection. It is taken only
    // once every line up to `lastLogSeq` is stored; until then it is not acknowledged,
    // and the worker resends the missing lines and then the result.
    let ref = AttemptRef(jobID: message.jobID, attempt: message.attempt)
    let current = currentAttempt(ref, on: message.workerID)
    if case let (id, job)? = current, job.state.isActive,
      message.lastLogSeq > (logCursors[id].map { $0.attempt == message.attempt ? $0.workerSeq : 0 } ?? 0)
    {
      // The tail is held (or dropped) all the same; say so, as its own batch would have.
      if let logUpTo {
        send(peer, .logAck, LogAckMessage(jobID: message.jobID, attempt: message.attempt, upTo: logUpTo))
      }
      return
    }
    defer {
      send(
        peer, .reportAck,
        ReportAckMessage(jobID: message.jobID, attempt: message.attempt, kind: .finished, logUpTo: logUpTo))
    }
    if case let (_, job)? = current, job.state.isFinal {
      // A result we already took, sent again because its acknowledgement was lost: the
      // attempt is still this worker's (it may be uploading artifacts), so no stop.
      return
    }
    guard
      let job = currentJob(message.jobID, attempt: message.attempt, workerID: message.workerID, peer: peer)
    else {
      return
    }
    if let environment = message.environment {
      actions.append(.store(.jobEnvironment(id: job.id, environment: environment)))
    }
    var state = message.state
    var error = message.error
    if job.timedOut, state != .succeeded {
      state = .failed
      error = "timed out after \(Int(job.timeoutSeconds ?? 0)) s"
    } else if job.cancelRequested {
      state = .cancelled
    }
    if state == .failed, job.failures < job.retries, !job.cancelRequested {
      // The script failed but the job has retries left: a new attempt, queued again.
      markHoldingInactive(job)
      requeue(
        jobID: job.id, failures: job.failures + 1, lostCount: job.lostCount, ended: .failed,
        reason: error ?? "failed", now: now)
      return
    }
    markHoldingInactive(job)
    // A short job's only step report comes inside its result; it ran for `runningFor`
    // before the result was sent, so it started no later than that before now.
    let started = message.progress.map { progress in
      StartedRecord(
        startedAt: job.startedAt == nil ? progress.runningFor.map { now - $0 } : nil,
        stepIndex: progress.stepIndex, stepCount: progress.stepCount)
    }
    finish(
      id: job.id, state: state, exitCode: message.exitCode, error: error, locals: message.locals,
      started: started, now: now)
  }

  mutating func cleanup(peer: [UInt8], message: CleanupMessage, now: Double) {
    guard var worker = knownWorker(message.workerID, peer: peer, now: now) else { return }
    let ref = AttemptRef(jobID: message.jobID, attempt: message.attempt)
    worker.holdings[ref] = nil
    if owedCleanup.removeValue(forKey: ref) != nil, let id = Int64(message.jobID) {
      actions.append(.artifact(.settle(jobID: id, attempt: message.attempt)))
    }
    worker.advert.diskFree = message.diskFreeAfter
    workers[message.workerID] = worker
    if let id = Int64(message.jobID) {
      actions.append(
        .store(
          .jobCleanup(
            id: id, attempt: message.attempt, state: message.state, bytesFreed: message.bytesFreed,
            diskFreeAfter: message.diskFreeAfter, reason: message.reason)))
      if let job = jobs[id], job.state.isFinal, job.attempt == message.attempt {
        jobs[id] = nil
        logCursors[id] = nil
      }
    }
    send(peer, .reportAck, ReportAckMessage(jobID: message.jobID, attempt: message.attempt, kind: .cleanup))
  }

  // MARK: Artifacts

  /// A worker begins (or resumes) uploading an artifact of an attempt. It is taken
  /// while the attempt is the job's current one on that worker, running or finished
  /// with its cleanup still owed; the shell checks the limits and answers.
  mutating func artifactBegin(peer: [UInt8], message: ArtifactBeginMessage, now: Double) {
    guard knownWorker(message.workerID, peer: peer, now: now) != nil,
      let id = artifactJob(message.ref, name: message.name, workerID: message.workerID, peer: peer)
    else { return }
    let reason =
      "uploading artifacts: \(message.name) (\(message.index + 1) of \(message.count), "
      + "\(ByteSize(bytes: message.size)))"
    if owedCleanup[message.ref] != nil {
      actions.append(
        .store(
          .jobCleanup(
            id: id, attempt: message.attempt, state: .pending, bytesFreed: nil, diskFreeAfter: nil,
            reason: reason)))
    }
    actions.append(.artifact(.begin(peer: peer, jobID: id, message)))
  }

  mutating func artifactChunk(peer: [UInt8], message: ArtifactChunkMessage, data: Data, now: Double) {
    guard knownWorker(message.workerID, peer: peer, now: now) != nil,
      let id = artifactJob(message.ref, name: message.name, workerID: message.workerID, peer: peer)
    else { return }
    actions.append(.artifact(.chunk(peer: peer, jobID: id, message, data)))
  }

  /// The job an artifact message is about, if its attempt is current on that worker.
  /// A replaced attempt is told to stop; one the coordinator is done with is refused.
  private mutating func artifactJob(_ ref: AttemptRef, name: String, workerID: String, peer: [UInt8])
    -> Int64?
  {
    if let owed = owedCleanup[ref], owed.workerID == workerID, let id = Int64(ref.jobID) { return id }
    guard let id = Int64(ref.jobID), let job = jobs[id], ref.attempt <= job.attempt else {
      send(
        peer, .artifactAck,
        ArtifactAckMessage(
          jobID: ref.jobID, attempt: ref.attempt, name: name, offset: 0, complete: false,
          error:
            "job \(ref.jobID) attempt \(ref.attempt) takes no artifacts: the coordinator no longer expects "
            + "anything of that attempt (it was cleaned up, or never assigned)"))
      return nil
    }
    guard job.attempt == ref.attempt, job.workerID == workerID, job.state.isActive else {
      send(
        peer, .stop,
        StopMessage(
          jobID: ref.jobID, attempt: ref.attempt,
          reason: job.attempt == ref.attempt
            ? "attempt \(ref.attempt) is no longer this worker's"
            : "attempt \(ref.attempt) was replaced by attempt \(job.attempt)",
          stale: true))
      return nil
    }
    return id
  }

  // MARK: Time

  /// Declares silent workers offline (their jobs become lost and are requeued) and
  /// stops jobs past their timeout.
  mutating func tick(now: Double) {
    if now - lastOwedSweep > 60 {
      lastOwedSweep = now
      owedCleanup = owedCleanup.filter { now - $0.value.since < Self.owedCleanupDays * 86400 }
    }
    for workerID in workers.silent(now: now, window: settings.livenessWindow) {
      guard var worker = workers[workerID] else { continue }
      worker.online = false
      let lostRefs = worker.holdings.filter(\.value.active).map(\.key)
      // Finished attempts whose cleanup report will not come: the job is done with.
      for ref in worker.holdings.filter({ !$0.value.active }).map(\.key) {
        guard let id = Int64(ref.jobID), let job = jobs[id], job.attempt == ref.attempt, job.state.isFinal
        else {
          continue
        }
        jobs[id] = nil
        logCursors[id] = nil
      }
      worker.holdings = [:]
      workers[workerID] = worker
      actions.append(
        .store(
          .workerState(id: workerID, state: .offline, drained: worker.drained, lastSeen: worker.lastSeen)))
      for ref in lostRefs {
        guard let id = Int64(ref.jobID), let job = jobs[id], job.attempt == ref.attempt, job.state.isActive
        else { continue }
        lose(
          jobID: id,
          reason: "worker \(worker.advert.name) missed heartbeats for \(Int(settings.livenessWindow)) s",
          now: now)
      }
    }
    // Only jobs on workers can time out; walking 100,000 queued jobs every tick would not do.
    let active = workers.workers.values.flatMap { $0.holdings.filter(\.value.active).keys }
    for ref in active {
      guard let id = Int64(ref.jobID), var job = jobs[id], job.attempt == ref.attempt, job.state.isActive,
        !job.timedOut
      else { continue }
      guard let limit = job.timeoutSeconds, let started = job.startedAt, now - started > limit else {
        continue
      }
      job.timedOut = true
      jobs[job.id] = job
      if let workerID = job.workerID, let worker = workers[workerID], worker.online {
        send(
          worker.peer, .stop,
          StopMessage(
            jobID: job.idText, attempt: job.attempt, reason: "timed out after \(Int(limit)) s", stale: false))
      }
    }
  }

  /// Assigns whatever fits now: a scheduling pass, run when the queue or a worker's
  /// capacity changed since the last one, and at least every `periodicPassSeconds` anyway.
  ///
  /// Why not after every batch of messages, as before: with 1,000 workers a pass costs a
  /// scan of every worker for each class of waiting jobs, and most batches are heartbeats
  /// that change nothing a pass looks at. A pass over unchanged inputs places nothing
  /// new (the last one placed everything that fit, and aging only holds workers back),
  /// so skipping it changes no decision; the periodic pass is the safety net Slurm also
  /// keeps beside its event-driven scheduling.
  mutating func schedule(now: Double) {
    guard !queue.isEmpty else { return }
    let inputs = (capacity: workers.capacityVersion, queue: queue.version)
    if let last = lastPass, last.inputs == inputs, now - last.at < Self.periodicPassSeconds { return }
    defer { lastPass = ((workers.capacityVersion, queue.version), now) }
    schedulingPasses += 1
    let capacities = workers.capacities
    guard capacities.values.contains(where: { $0.freeSlots > 0 }) else { return }
    for assignment in Scheduler.plan(
      queue: queue, jobs: jobs, capacities: capacities, names: workers.names, now: now,
      agingSeconds: settings.agingSeconds)
    {
      guard var job = jobs[assignment.jobID], var worker = workers[assignment.workerID] else { continue }
      queue.remove(job.queueKey)
      job.attempt += 1
      job.state = .assigned
      job.workerID = worker.advert.id
      job.gpuIndices = assignment.gpuIndices
      job.startedAt = nil
      job.assignedAt = now
      jobs[job.id] = job
      worker.holdings[job.ref] = Holding(
        gpuIndices: assignment.gpuIndices, disk: job.requirements.disk ?? 0, active: true)
      workers[worker.advert.id] = worker
      actions.append(
        .store(
          .jobAssigned(
            id: job.id, attempt: job.attempt, workerID: worker.advert.id, workerName: worker.advert.name,
            gpus: assignment.gpuIndices, at: now)))
      actions.append(
        .assign(peer: worker.peer, jobID: job.id, attempt: job.attempt, gpuIndices: assignment.gpuIndices))
    }
  }

  // MARK: Queries (read-only)

  func waitReason(jobID: Int64) -> String? {
    guard let job = jobs[jobID], job.state == .queued else { return nil }
    return Scheduler.waitReason(for: job.requirements, workers: Array(workers.workers.values))
  }

  func workerViews() -> [WorkerView] { workers.sortedViews() }

  func logCursor(jobID: Int64) -> LogCursor? { logCursors[jobID] }

  // MARK: Transitions

  private mutating func markHoldingInactive(_ job: LiveJob) {
    guard let workerID = job.workerID, var worker = workers[workerID] else { return }
    worker.holdings[job.ref]?.active = false
    workers[workerID] = worker
  }

  private mutating func finish(
    id: Int64, state: JobState, exitCode: Int32?, error: String?, locals: JSONValue? = nil,
    started: StartedRecord? = nil, now: Double
  ) {
    guard var job = jobs[id] else { return }
    job.state = state
    if job.startedAt == nil, let startedAt = started?.startedAt { job.startedAt = startedAt }
    jobs[id] = job
    actions.append(
      .store(
        .jobFinished(
          id: id, attempt: job.attempt, state: state, exitCode: exitCode, error: error, locals: locals,
          at: now, started: started)))
    // Keep the job while its worker still owes us the cleanup report; a job that
    // never reached a worker has nothing to clean.
    let holding = job.workerID.flatMap { workers[$0]?.holdings[job.ref] }
    if holding == nil {
      jobs[id] = nil
      logCursors[id] = nil
    } else if let workerID = job.workerID {
      owedCleanup[job.ref] = OwedCleanup(workerID: workerID, since: now)
    }
  }

  private mutating func lose(jobID: Int64, reason: String, now: Double) {
    guard let job = jobs[jobID] else { return }
    if let workerID = job.workerID, var worker = workers[workerID] {
      worker.holdings[job.ref] = nil
      workers[workerID] = worker
    }
    // `requeue` records the ended attempt itself; record it here only otherwise, so
    // the batch does not carry the same `attemptEnded` twice.
    if job.cancelRequested || job.lostCount >= settings.maxLostRequeues {
      actions.append(
        .store(.attemptEnded(id: jobID, attempt: job.attempt, state: .lost, error: reason, at: now)))
    }
    if job.cancelRequested {
      finish(id: jobID, state: .cancelled, exitCode: nil, error: "cancelled; \(reason)", now: now)
    } else if job.lostCount < settings.maxLostRequeues {
      requeue(
        jobID: jobID, failures: job.failures, lostCount: job.lostCount + 1, ended: .lost, reason: reason,
        now: now)
    } else {
      finish(
        id: jobID, state: .failed, exitCode: nil,
        error: "lost \(job.lostCount + 1) times (\(reason)); giving up", now: now)
    }
  }

  private mutating func requeue(
    jobID: Int64, failures: Int, lostCount: Int, ended: JobState, reason: String, now: Double
  ) {
    guard var job = jobs[jobID] else { return }
    actions.append(
      .store(.attemptEnded(id: jobID, attempt: job.attempt, state: ended, error: reason, at: now)))
    job.state = .queued
    job.failures = failures
    job.lostCount = lostCount
    job.workerID = nil
    job.gpuIndices = []
    job.startedAt = nil
    job.timedOut = false
    jobs[jobID] = job
    queue.insert(job.queueKey)
    actions.append(
      .store(
        .jobRequeued(
          id: jobID, attempt: job.attempt, failures: failures, lostCount: lostCount, reason: reason, at: now))
    )
  }

  // MARK: Sending

  private mutating func send<H: Encodable>(_ peer: [UInt8], _ type: MessageType, _ header: H) {
    guard !peer.isEmpty else { return }
    actions.append(.send(peer: peer, WireEnvelope(type, header)))
  }

  private mutating func reply<R: Codable & Sendable>(_ peer: [UInt8], requestID: String, _ result: R) {
    send(peer, .reply, Reply(requestID: requestID, result: result))
  }

  private mutating func fail(_ peer: [UInt8], requestID: String?, _ message: String) {
    send(peer, .error, ErrorReply(requestID: requestID, message: message))
  }
}
