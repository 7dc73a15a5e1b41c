import CZeroMQ
import Foundation
import Logging
import Shared

public struct WorkerConfiguration: Sendable {
  public var coordinator: String
  public var root: String
  public var name: String?
  public var labels: [String: String] = [:]
  public var slots: Int = 1
  /// `vendor:model:vram` declarations; when empty the GPUs are probed.
  public var declaredGPUs: [GPU]?
  public var passEnvironment: [String] = []
  public var shellOptions = ShellOptions()
  /// Keep a failed job's workspace this many seconds for inspection (`--keep-failed`).
  public var keepFailed: Double?
  /// Size budget of `ROOT/cache`, enforced when no job runs (`--cache-budget`).
  public var cacheBudget: Int64?
  /// Seconds between re-probing free VRAM (probed GPUs only).
  public var probeInterval: Double = 30
  /// Install and use the private runtime (uv, node, ffmpeg, hf) on first need.
  public var useRuntime = true
  /// Where the private runtime lives; default `ROOT/runtime`. Several workers on one
  /// machine may share one (installs are serialised by a file lock).
  public var runtimeDirectory: String?
  /// Cap on artifact uploads, bytes per second per job (`--upload-rate`); nil for none.
  public var uploadRate: Int64?
  /// How long a workspace is kept when its artifacts could not be uploaded.
  public var keepUnuploaded: Double = 7 * 86400

  public var runtimeRoot: String { runtimeDirectory ?? root + "/runtime" }
  /// With keys the worker speaks CurveZMQ to a coordinator that enrolled its public key.
  public var keys: PeerKeys?

  public init(coordinator: String, root: String) {
    self.coordinator = coordinator
    self.root = root
  }
}

/// The stable identity a worker keeps across restarts, in `ROOT/worker.json`, so the
/// coordinator recognises it and can reconcile its jobs.
struct WorkerIdentity: Codable {
  var id: String
  var name: String

  static func load(root: String, name: String?) throws -> WorkerIdentity {
    let path = root + "/worker.json"
    if let data = FileManager.default.contents(atPath: path),
      var identity = try? JSONDecoder().decode(WorkerIdentity.self, from: data)
    {
      if let name, name != identity.name {
        identity.name = name
        try JSONEncoder().encode(identity).write(to: URL(fileURLWithPath: path), options: .atomic)
      }
      return identity
    }
    let identity = WorkerIdentity(
      id: "w-" + UUID().uuidString.lowercased().prefix(12),
      name: name ?? ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? "worker")
    try JSONEncoder().encode(identity).write(to: URL(fileURLWithPath: path), options: .atomic)
    return identity
  }
}

/// What the worker would advertise, for `pinpool worker --probe`.
public enum WorkerProbe {
  public static func advert(configuration: WorkerConfiguration) async throws -> (WorkerAdvert, [String]) {
    try FileManager.default.createDirectory(atPath: configuration.root, withIntermediateDirectories: true)
    let identity = try WorkerIdentity.load(root: configuration.root, name: configuration.name)
    var warnings: [String] = []
    let gpus: [GPU]
    if let declared = configuration.declaredGPUs {
      gpus = declared
    } else {
      let result = await GPUProbe.probe()
      gpus = result.gpus
      warnings = result.warnings
    }
    let advert = WorkerAdvert(
      id: identity.id, name: identity.name,
      host: HostProbe.facts(), gpus: gpus, diskFree: HostProbe.diskFree(at: configuration.root),
      slots: configuration.slots,
      labels: configuration.labels)
    return (advert, warnings)
  }
}

/// The worker process's I/O shell: the DEALER socket's loop thread, the core, and
/// one task per running job. Everything that touches the core runs on this actor.
public actor WorkerAgent {
  private let configuration: WorkerConfiguration
  private let logger: Logger
  private var core: WorkerCore
  private var loop: SocketLoop?
  /// Messages of the actions being performed, for the loop.
  private var outgoing: [[Data]] = []
  private let events: AsyncStream<AgentEvent>
  private let sink: AsyncStream<AgentEvent>.Continuation
  private var jobs: [AttemptRef: Task<Void, Never>] = [:]
  private var staleAttempts: Set<AttemptRef> = []
  private let context: ZMQContext
  private var lastResourceRefresh = 0.0
  private var lastProbe = Timestamp.now()
  private let spool: LogSpool
  private var probing = false
  /// Each running attempt's printed lines, taken in slices (see `JobOutput`).
  private var outputs: [AttemptRef: JobOutput] = [:]
  /// Attempts whose output waits because the coordinator has not acknowledged enough of
  /// their log yet; an acknowledgement lets them go on.
  private var held: Set<AttemptRef> = []
  /// Attempts being stopped: their output is never held, so their pipes drain and the
  /// stop completes even while the coordinator is behind.
  private var stopping: Set<AttemptRef> = []
  /// Lines taken from one attempt per turn, so messages and ticks interleave with output.
  private let linesPerTurn = 32_768
  /// Unacknowledged lines, or bytes, of one attempt above which its output waits (and
  /// the job with it).
  private let heldAboveLines = 200_000
  private let heldAboveBytes = 32 << 20
  /// Workspaces whose artifacts are uploading, with the state their job ended in.
  private var awaitingUpload: [AttemptRef: (workspace: String, state: JobState)] = [:]
  /// Uploads an earlier run of the worker left unfinished, resumed after starting.
  private var resumeUploads: [(job: AssignedJob, workspace: String, state: JobState)] = []
  /// When the cache is trimmed to its budget (`--cache-budget`), and the jobs waiting for
  /// it. The walk runs off the actor: a cache of a few hundred thousand files takes
  /// seconds, and on the actor it held up heartbeats, acknowledgements and every job's
  /// output. Nil without a budget.
  private var eviction: CacheEviction<(job: AssignedJob, bundle: Data)>?

  enum AgentEvent: Sendable {
    case message(WireEnvelope)
    case tick
    /// The attempt's `JobOutput` has lines.
    case output(AttemptRef)
    case progress(AttemptRef, JobState, Int, Int, JSONValue?)
    case notify(AttemptRef, String)
    case ended(AttemptRef, JobOutcome)
    case cleaned(AttemptRef, CleanupState, Int64, Int64, String?)
    case gpus([GPU])
    /// The steps ended and the artifacts were collected; cleanup waits for their upload.
    case collected(AttemptRef, [ArtifactFile], workspace: String, state: JobState)
    /// The cache was trimmed to its budget: the bytes freed, the cache's size after, and
    /// the disk's free bytes then.
    case evicted(freed: Int64, remaining: Int64, diskFree: Int64)
  }

  public init(configuration: WorkerConfiguration, context: ZMQContext, logger: Logger) async throws {
    var configuration = configuration
    self.logger = logger
    self.context = context
    for folder in ["jobs", "cache", "runtime", "spool", "pids"] {
      try FileManager.default.createDirectory(
        atPath: configuration.root + "/" + folder, withIntermediateDirectories: true)
    }
    let killed = ShellPidJournal.killLeftovers(directory: configuration.root + "/pids")
    // Every command of every job records its process group here.
    configuration.shellOptions.pidJournal = ShellPidJournal(directory: configuration.root + "/pids")
    self.configuration = configuration
    eviction = configuration.cacheBudget.map { CacheEviction(budget: $0) }
    let swept = KeptWorkspaces.sweep(
      jobsRoot: configuration.root + "/jobs", now: Timestamp.now(), includeUnmarked: true,
      diskFreeAt: configuration.root)
    if !swept.isEmpty {
      logger.info("removed workspaces an earlier run left behind", metadata: ["workspaces": "\(swept)"])
    }
    if !killed.isEmpty {
      logger.warning("killed process groups an earlier run left behind", metadata: ["groups": "\(killed)"])
    }
    let (advert, warnings) = try await WorkerProbe.advert(configuration: configuration)
    for warning in warnings { logger.warning("GPU probe: \(warning)") }
    core = WorkerCore(advert: advert, now: Timestamp.now())
    core.uploadRate = configuration.uploadRate
    spool = LogSpool(directory: configuration.root + "/spool")
    // Attempts an earlier run finished but could not deliver: resend them. Attempts it
    // was still running are lost (their processes were killed above); the coordinator
    // requeues them, so their spool goes.
    for recovered in spool.recover() {
      guard let finished = recovered.finished else {
        spool.forget(recovered.job.ref)
        continue
      }
      // Stopped while uploading artifacts: the workspace was marked to outlive the
      // restart; the upload resumes (from what the coordinator holds) once registered.
      let workspace = Workspace.path(
        workerRoot: configuration.root, jobID: recovered.job.jobID, attempt: recovered.job.attempt)
      let uploading =
        recovered.cleanup == nil && !recovered.job.artifacts.isEmpty
        && KeptWorkspaces.deadline(of: workspace) != nil
      let cleanup =
        uploading
        ? nil
        : recovered.cleanup
          ?? CleanupMessage(
            workerID: advert.id, jobID: finished.jobID, attempt: finished.attempt, state: .done,
            bytesFreed: 0,
            diskFreeAfter: HostProbe.diskFree(at: configuration.root),
            reason: "workspace removed when the worker restarted")
      guard
        let lost = core.restore(
          job: recovered.job, chunks: recovered.chunks, finished: finished, cleanup: cleanup,
          now: Timestamp.now())
      else {
        logger.error(
          "dropping a corrupt spool; the coordinator will rerun the attempt",
          metadata: ["attempt": "\(recovered.job.ref)"])
        spool.forget(recovered.job.ref)
        continue
      }
      if lost > 0 {
        logger.warning(
          "log lines missing from the spool",
          metadata: ["attempt": "\(recovered.job.ref)", "lines": "\(lost)"])
      }
      if uploading {
        resumeUploads.append((recovered.job, workspace, finished.state))
        logger.info("resuming an artifact upload", metadata: ["attempt": "\(recovered.job.ref)"])
        continue
      }
      logger.info(
        "resending an attempt an earlier run finished", metadata: ["attempt": "\(recovered.job.ref)"])
    }
    (events, sink) = AsyncStream.makeStream(of: AgentEvent.self)
  }

  public var advert: WorkerAdvert { core.advert }

  /// Connects and serves until the task is cancelled.
  public func run() async throws {
    let sink = self.sink
    let endpoint = configuration.coordinator
    let keys = configuration.keys
    let context = self.context
    let handler = WorkerSocketHandler(sink: sink)
    let loop = try SocketLoop(name: "pinpool-worker", tickInterval: .milliseconds(50), handler: handler) {
      let socket = try ZMQSocket(context: context, kind: .dealer)
      try socket.setOption(ZMQ_SNDHWM, Int32(100_000))
      try socket.setOption(ZMQ_RECONNECT_IVL, Int32(100))
      try socket.setOption(ZMQ_RECONNECT_IVL_MAX, Int32(5000))
      if let keys { try socket.makeCurveClient(keys) }
      try socket.connect(endpoint)
      return socket
    }
    self.loop = loop
    logger.info(
      "worker started",
      metadata: [
        "name": "\(core.advert.name)", "id": "\(core.advert.id)", "coordinator": "\(endpoint)",
        "gpus":
          "\(core.advert.gpus.map { "\($0.model) \(ByteSize(bytes: $0.vramTotal).decimalDescription)" })",
      ])
    core.start(now: Timestamp.now())
    perform(core.takeActions())
    for (job, workspace, state) in resumeUploads {
      let sink = self.sink
      Task.detached {
        let (files, _) = ArtifactCollector.collect(globs: job.artifacts, workspace: workspace)
        sink.yield(.collected(job.ref, files, workspace: workspace, state: state))
      }
    }
    resumeUploads = []
    await withTaskCancellationHandler {
      for await event in events {
        handle(event)
      }
    } onCancel: {
      sink.finish()
    }
    await shutdown()
  }

  private func shutdown() async {
    // Nobody takes lines any more: let blocked pipe readers go, so the jobs can stop.
    for output in outputs.values { output.close() }
    for task in jobs.values { task.cancel() }
    for task in jobs.values { await task.value }
    jobs.removeAll()
    loop?.shutdown()
    loop = nil
  }

  private func handle(_ event: AgentEvent) {
    let now = Timestamp.now()
    switch event {
    case .message(let envelope):
      if envelope.type == .error, let refusal = try? envelope.decode(ErrorReply.self) {
        // Refusals (a key without the worker role, a malformed report) are the operator's to see.
        logger.warning("the coordinator refused a message", metadata: ["error": "\(refusal.message)"])
      }
      core.received(envelope, now: now)
      // An acknowledgement may let held output go on.
      for ref in held where !mustHold(ref) {
        held.remove(ref)
        sink.yield(.output(ref))
      }
    case .tick:
      if now - lastResourceRefresh > 10 {
        lastResourceRefresh = now
        core.updateResources(gpus: core.advert.gpus, diskFree: HostProbe.diskFree(at: configuration.root))
        KeptWorkspaces.sweep(
          jobsRoot: configuration.root + "/jobs", now: now, includeUnmarked: false,
          diskFreeAt: configuration.root)
      }
      if configuration.declaredGPUs == nil, !probing, now - lastProbe > configuration.probeInterval {
        // Free VRAM changes with what else runs on the card; advertise what is real.
        lastProbe = now
        probing = true
        let sink = self.sink
        Task {
          let result = await GPUProbe.probe()
          sink.yield(.gpus(result.gpus))
        }
      }
      core.tick(now: now)
    case .gpus(let gpus):
      probing = false
      if !gpus.isEmpty || core.advert.gpus.isEmpty {
        core.updateResources(gpus: gpus, diskFree: core.advert.diskFree)
      }
    case .output(let ref):
      guard let output = outputs[ref] else { break }
      if !stopping.contains(ref), mustHold(ref) {
        held.insert(ref)
        break
      }
      if take(from: output, ref, limit: linesPerTurn) { sink.yield(.output(ref)) }
    case .progress(let ref, let state, let index, let count, let locals):
      drainOutput(ref)
      // A negative index means "same step" (a `local.set` reporting new locals).
      let last = core.attempts[ref]?.lastProgress
      core.progress(
        ref, state: last?.state == .serving ? .serving : state,
        stepIndex: index < 0 ? last?.stepIndex ?? 0 : index,
        stepCount: count, locals: locals ?? last?.locals, notification: nil, now: Timestamp.now())
    case .notify(let ref, let text):
      drainOutput(ref)
      let last = core.attempts[ref]?.lastProgress
      core.progress(
        ref, state: last?.state ?? .running, stepIndex: last?.stepIndex ?? 0, stepCount: last?.stepCount ?? 0,
        locals: last?.locals, notification: text, now: Timestamp.now())
    case .ended(let ref, let outcome):
      // Every line the job printed comes before its result.
      drainOutput(ref)
      outputs[ref]?.close()
      outputs[ref] = nil
      held.remove(ref)
      stopping.remove(ref)
      core.jobEnded(
        ref, state: outcome.state, exitCode: outcome.exitCode, error: outcome.error, locals: outcome.locals,
        environment: outcome.environment, now: Timestamp.now())
      if let finished = core.attempts[ref]?.finishedReport { spool.report(finished.envelope, ref) }
    case .cleaned(let ref, let state, let freed, let free, let reason):
      jobs[ref] = nil
      core.cleanedUp(ref, state: state, bytesFreed: freed, diskFreeAfter: free, reason: reason)
      if let cleanup = core.attempts[ref]?.cleanupReport { spool.report(cleanup.envelope, ref) }
      // With no job running, nothing is using the cache.
      if jobs.isEmpty, let budget = eviction?.budget, eviction?.idle(diskFree: free, now: now) == true {
        let root = configuration.root
        let sink = self.sink
        Task.detached {
          let (freed, remaining) = CacheBudget.enforce(cacheRoot: root + "/cache", budget: budget)
          sink.yield(.evicted(freed: freed, remaining: remaining, diskFree: HostProbe.diskFree(at: root)))
        }
      }
    case .evicted(let freed, let remaining, let diskFree):
      if freed > 0 { core.updateResources(gpus: core.advert.gpus, diskFree: diskFree) }
      let waiting = eviction?.walked(total: remaining, diskFree: diskFree, now: now) ?? []
      for (job, bundle) in waiting { start(job, bundle: bundle) }
    case .collected(let ref, let files, let workspace, let state):
      awaitingUpload[ref] = (workspace, state)
      if !files.isEmpty {
        logger.info(
          "uploading artifacts",
          metadata: [
            "attempt": "\(ref)", "files": "\(files.count)",
            "bytes": "\(files.totalBytes)",
          ])
      }
      core.startUpload(ref, files: files, now: now)
    }
    perform(core.takeActions())
  }

  /// Moves up to `limit` lines into the core and the spool; true when more wait.
  private func take(from output: JobOutput, _ ref: AttemptRef, limit: Int) -> Bool {
    let (chunk, more) = output.take(limit)
    if let firstSeq = core.log(ref, chunk) { spool.lines(ref, firstSeq: firstSeq, chunk) }
    return more
  }

  /// The coordinator is too far behind with this attempt's log to take more of it now.
  private func mustHold(_ ref: AttemptRef) -> Bool {
    guard let attempt = core.attempts[ref] else { return false }
    return attempt.unackedLines >= heldAboveLines || attempt.unackedBytes >= heldAboveBytes
  }

  /// Takes everything the attempt printed so far, whatever is held, so a progress report
  /// or the result never overtakes the lines before it.
  private func drainOutput(_ ref: AttemptRef) {
    guard let output = outputs[ref] else { return }
    while take(from: output, ref, limit: linesPerTurn) {}
  }

  private func perform(_ actions: [WorkerCore.Action]) {
    // Everything recorded goes to disk before anything about it is sent; with nothing to
    // send, lines gather in memory and go to disk in one write with the next batch.
    if !actions.isEmpty {
      for failure in spool.flush() {
        logger.error("cannot write the log spool", metadata: ["error": "\(failure)"])
      }
    }
    // Handed to the loop together at the end (one wake-up of its thread, not one each).
    defer { flushOutgoing() }
    for action in actions {
      switch action {
      case .send(let envelope):
        logger.trace("send", metadata: ["type": "\(envelope.type.rawValue)"])
        outgoing.append(envelope.frames)
      case .reconnect:
        logger.warning("no word from the coordinator; reconnecting")
        flushOutgoing()
        loop?.resetSocket()
      case .startJob(let job, let bundle, let assignment):
        spool.assigned(job, header: assignment)
        if eviction?.admit(job.ref, (job, bundle)) ?? true { start(job, bundle: bundle) }
      case .stopJob(let ref, let reason, let stale):
        logger.info("stopping job", metadata: ["attempt": "\(ref)", "reason": "\(reason)"])
        if stale { staleAttempts.insert(ref) }
        // A stale attempt's lines go nowhere: unblock its reader so it can be stopped.
        if stale { outputs[ref]?.close() }
        stopping.insert(ref)
        if held.remove(ref) != nil { sink.yield(.output(ref)) }
        jobs[ref]?.cancel()
        if eviction?.withdraw(ref) == true {
          // Never started: it ends here, as a job cancelled before its first step would.
          sink.yield(
            .ended(
              ref,
              JobOutcome(
                state: .cancelled, exitCode: nil, error: "cancelled before it started: \(reason)",
                locals: .object(JSONObject()))))
          sink.yield(.cleaned(ref, .done, 0, core.advert.diskFree, nil))
        }
      case .sendArtifactChunk(let message, let path, let length):
        do {
          let data = try Self.readChunk(path: path, offset: message.offset, length: length)
          outgoing.append(WireEnvelope(.artifactChunk, message, payload: [data]).frames)
        } catch {
          // Reported to the core at once; its failure ends in `artifactsDone`.
          core.artifactReadFailed(
            message.ref, reason: "artifact '\(message.name)': \(error)", now: Timestamp.now())
          perform(core.takeActions())
        }
      case .artifactsDone(let ref, let result):
        finishUpload(ref, result: result)
      case .forget(let ref):
        spool.forget(ref)
      }
    }
  }

  private func flushOutgoing() {
    guard !outgoing.isEmpty else { return }
    loop?.send(contentsOf: outgoing)
    outgoing.removeAll(keepingCapacity: true)
  }

  /// Cleans up after the upload: a workspace whose artifacts could not be stored is kept
  /// (it holds the only copy) and the reason reported with the cleanup.
  private func finishUpload(_ ref: AttemptRef, result: WorkerCore.ArtifactsResult) {
    guard let (workspace, state) = awaitingUpload.removeValue(forKey: ref) else { return }
    let configuration = self.configuration
    let sink = self.sink
    let logger = self.logger
    switch result {
    case .stored(let files, let bytes):
      if files > 0 {
        logger.info(
          "artifacts stored", metadata: ["attempt": "\(ref)", "files": "\(files)", "bytes": "\(bytes)"])
      }
    case .failed(let reason):
      logger.error("artifact upload failed", metadata: ["attempt": "\(ref)", "error": "\(reason)"])
    case .abandoned:
      break
    }
    jobs[ref] = Task.detached {
      if case .failed(let reason) = result {
        let until = Timestamp.now() + configuration.keepUnuploaded
        try? KeptWorkspaces.keep(workspace, until: until)
        sink.yield(
          .cleaned(
            ref, .kept, 0, HostProbe.diskFree(at: configuration.root),
            "artifact upload failed: \(reason); workspace kept at \(workspace) until \(Timestamp.iso(until))")
        )
        return
      }
      Self.cleanUp(
        ref: ref, workspace: workspace, state: state, configuration: configuration, sink: sink, logger: logger
      )
    }
  }

  /// `length` bytes of a file from `offset`; fewer means the file shrank, which is an error.
  private static func readChunk(path: String, offset: Int64, length: Int) throws -> Data {
    guard let handle = FileHandle(forReadingAtPath: path) else {
      throw WorkspaceError("cannot open '\(path)' (it vanished?)")
    }
    defer { try? handle.close() }
    try handle.seek(toOffset: UInt64(offset))
    let data = try handle.read(upToCount: length) ?? Data()
    guard data.count == length else {
      throw WorkspaceError(
        "'\(path)' holds fewer bytes than when it was hashed (it changed after the job ended)")
    }
    return data
  }

  private func start(_ job: AssignedJob, bundle: Data) {
    let ref = job.ref
    let sink = self.sink
    let output = JobOutput { sink.yield(.output(ref)) }
    outputs[ref] = output
    let configuration = self.configuration
    let advert = core.advert
    let logger = self.logger
    logger.info("starting job", metadata: ["attempt": "\(ref)", "name": "\(job.name)"])
    // Detached: a job must never run on the agent, whose heartbeats cannot wait.
    jobs[ref] = Task.detached {
      let outcome = await Self.execute(
        job: job, bundle: bundle, configuration: configuration, advert: advert, sink: sink, output: output)
      guard let workspace = outcome.workspace else {
        sink.yield(.ended(ref, outcome.outcome))
        sink.yield(.cleaned(ref, .done, 0, HostProbe.diskFree(at: configuration.root), nil))
        return
      }
      if !job.artifacts.isEmpty {
        // Collected before the end is reported, so what the log says about them is part
        // of the log the result closes.
        let (files, warnings) = ArtifactCollector.collect(globs: job.artifacts, workspace: workspace)
        for warning in warnings { output.append(.pinpool, "warning: \(warning)", blocking: false) }
        if !files.isEmpty {
          // Should the worker stop before the upload ends, its next start must not sweep
          // away the only copy: marked (before the end is recorded), the workspace
          // outlives a restart, and the upload resumes.
          try? KeptWorkspaces.keep(workspace, until: Timestamp.now() + configuration.keepUnuploaded)
          let bytes = files.totalBytes
          output.append(
            .pinpool,
            "uploading \(files.count) artifact\(files.count == 1 ? "" : "s") (\(ByteSize(bytes: bytes))): "
              + files.map(\.name).joined(separator: ", "), blocking: false)
        }
        sink.yield(.ended(ref, outcome.outcome))
        sink.yield(.collected(ref, files, workspace: workspace, state: outcome.outcome.state))
        return
      }
      sink.yield(.ended(ref, outcome.outcome))
      Self.cleanUp(
        ref: ref, workspace: workspace, state: outcome.outcome.state, configuration: configuration,
        sink: sink,
        logger: logger)
    }
  }

  /// Deletes a workspace (or keeps a failed job's, with `--keep-failed`) and reports it.
  private static func cleanUp(
    ref: AttemptRef, workspace: String, state: JobState, configuration: WorkerConfiguration,
    sink: AsyncStream<AgentEvent>.Continuation, logger: Logger
  ) {
    if state == .failed, let keep = configuration.keepFailed {
      let until = Timestamp.now() + keep
      if (try? KeptWorkspaces.keep(workspace, until: until)) != nil {
        sink.yield(
          .cleaned(
            ref, .kept, 0, HostProbe.diskFree(at: configuration.root),
            "kept for inspection at \(workspace) until \(Timestamp.iso(until)) (--keep-failed)"))
        return
      }
    }
    do {
      let freed = try ParkedWorkspaces.cleanUp(
        workspace, jobsFolder: (workspace as NSString).deletingLastPathComponent)
      sink.yield(.cleaned(ref, .done, freed, HostProbe.diskFree(at: configuration.root), nil))
    } catch {
      logger.error("cleanup failed", metadata: ["attempt": "\(ref)", "error": "\(error)"])
      sink.yield(
        .cleaned(
          ref, .kept, error.bytesFreed, HostProbe.diskFree(at: configuration.root), error.description))
    }
  }

  private static func execute(
    job: AssignedJob, bundle: Data, configuration: WorkerConfiguration, advert: WorkerAdvert,
    sink: AsyncStream<AgentEvent>.Continuation, output: JobOutput
  ) async -> (outcome: JobOutcome, workspace: String?) {
    let ref = job.ref
    let workspace: Workspace
    do {
      let files = try JobBundle(decoding: bundle)
      workspace = try Workspace.create(
        workerRoot: configuration.root, jobID: job.jobID, attempt: job.attempt,
        files: files.files.map { ($0.path, $0.mode, [UInt8]($0.data)) })
    } catch {
      let message = "cannot prepare the workspace: \(error)"
      output.append(.pinpool, "error: \(message)", blocking: false)
      return (JobOutcome(state: .failed, exitCode: nil, error: message, locals: .object(JSONObject())), nil)
    }
    let vendor = advert.gpus.first { job.gpuIndices.contains($0.index) }?.vendor
    let environment = JobEnvironment.make(
      workerRoot: configuration.root, workspace: workspace.root,
      jobVariables: ["PINPOOL_JOB_ID": job.jobID, "PINPOOL_ATTEMPT": String(job.attempt)],
      gpuIndices: job.gpuIndices, gpuVendor: vendor,
      runtimeBin: configuration.useRuntime ? [configuration.runtimeRoot + "/bin"] : [],
      passThrough: configuration.passEnvironment, workspaceFoldersExist: workspace.reused)
    let options = configuration.shellOptions
    var runtimeTools = JSONValue.null
    if configuration.useRuntime {
      let runtime = PrivateRuntime(root: configuration.runtimeRoot, cacheRoot: configuration.root + "/cache")
      if !runtime.status().installed {
        output.append(.pinpool, "preparing the worker's private runtime (first use)", blocking: false)
      }
      do {
        let status = try await runtime.ensureInstalled(log: { _ in })
        runtimeTools =
          (try? JSONDecoder().decode(JSONValue.self, from: JSONEncoder().encode(status))) ?? .null
      } catch {
        output.append(.pinpool, "warning: \(error)", blocking: false)
      }
    }
    var context = ExecutionContext(
      job: job, workspace: workspace, workerRoot: configuration.root, host: advert.host,
      machineGPUs: advert.gpus,
      environment: environment,
      runtimeBin: configuration.useRuntime ? [configuration.runtimeRoot + "/bin"] : [],
      shellOptions: options)
    context.runtimeTools = runtimeTools
    let events = JobEvents(
      log: { stream, line in output.append(stream, line, blocking: false) },
      processOutput: { stream, line in output.append(stream, line.bytes, time: line.time, blocking: true) },
      progress: { state, index, count, locals in sink.yield(.progress(ref, state, index, count, locals)) },
      notify: { text in sink.yield(.notify(ref, text)) })
    let outcome = await ScriptExecutor(context: context, events: events).run()
    return (outcome, workspace.root)
  }
}

/// Forwards what the socket thread receives to the agent. Confined to that thread.
final class WorkerSocketHandler: SocketLoopHandler, @unchecked Sendable {
  private let sink: AsyncStream<WorkerAgent.AgentEvent>.Continuation

  init(sink: AsyncStream<WorkerAgent.AgentEvent>.Continuation) {
    self.sink = sink
  }

  func received(_ messages: [[Data]], io: SocketLoopIO) {
    for frames in messages {
      guard let envelope = try? WireEnvelope(frames: frames) else { continue }
      sink.yield(.message(envelope))
    }
  }

  func tick(io: SocketLoopIO) {
    sink.yield(.tick)
  }
}
