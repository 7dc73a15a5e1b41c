import CZeroMQ
import Foundation
import Logging
import Shared

/// Limits a coordinator enforces on what clients send.
public struct CoordinatorLimits: Sendable {
  public var maxBundleBytes = 64 * 1024 * 1024
  public var maxArrayJobs = 10_000
  public var maxLogLinesPerRequest = 5_000
  /// Any one frame larger than this makes libzmq drop the connection that sent it before
  /// the coordinator reads a byte of it; a bundle frame is the largest legitimate one.
  public var maxMessageBytes: Int64 = 64 * 1024 * 1024 + 1024 * 1024
  /// Submit calls per second per client (a key's name, or a connection without keys),
  /// with bursts of `submitBurst`; 0 means no limit.
  public var submitRate: Double = 50
  public var submitBurst: Double = 500
  /// Finished jobs and their logs are deleted this long after they end.
  public var retentionSeconds: Double = 30 * 86400
  /// Stored artifacts: per job and for the whole pool.
  public var artifacts = ArtifactLimits()
  /// The most bytes one `artifactFetch` reply carries.
  public var maxArtifactFetchBytes = 4 * 1024 * 1024
  public init() {}
}

public struct CoordinatorConfiguration: Sendable {
  public var dataDirectory: String
  public var bind: String
  public var settings: CoordinatorSettings
  public var limits: CoordinatorLimits
  /// With keys the endpoint speaks CurveZMQ and admits enrolled keys only.
  public var keys: ServerKeys?

  public init(
    dataDirectory: String, bind: String = "tcp://127.0.0.1:7450", settings: CoordinatorSettings = .init(),
    limits: CoordinatorLimits = .init(), keys: ServerKeys? = nil
  ) {
    self.dataDirectory = dataDirectory
    self.bind = bind
    self.settings = settings
    self.limits = limits
    self.keys = keys
  }
}

/// The coordinator process: one ROUTER socket on its own thread, the core, and the
/// store. All three are confined to the loop thread, so the core needs no locks.
public final class CoordinatorServer: Sendable {
  private let loop: SocketLoop
  /// The ZAP handler's loop, when the endpoint uses keys.
  private let authenticator: SocketLoop?
  public let endpoint: String

  public init(configuration: CoordinatorConfiguration, context: ZMQContext, logger: Logger) throws {
    let store = try JobStore(directory: configuration.dataDirectory)
    let enrolled = configuration.keys.map { EnrolledKeys(keys: $0, logger: logger) }
    let handler = try CoordinatorHandler(
      configuration: configuration, store: store, enrolledKeys: enrolled, logger: logger)
    if let enrolled {
      // Bound before the endpoint exists, so no handshake can find it missing.
      authenticator = try SocketLoop(
        name: "pinpool-zap", tickInterval: .seconds(3600),
        handler: ZAPAuthenticator(keys: enrolled, logger: logger)
      ) {
        let socket = try ZMQSocket(context: context, kind: .router)
        try socket.bind(ZAPAuthenticator.endpoint)
        return socket
      }
    } else {
      authenticator = nil
    }
    let bound = EndpointBox()
    do {
      loop = try SocketLoop(
        name: "pinpool-coordinator", tickInterval: .milliseconds(250), handler: handler
      ) {
        let socket = try ZMQSocket(context: context, kind: .router)
        // A worker that reconnects under the same identity takes over its old route.
        try socket.setOption(ZMQ_ROUTER_HANDOVER, Int32(1))
        try socket.setOption(ZMQ_SNDHWM, Int32(100_000))
        try socket.setOption(ZMQ_RCVHWM, Int32(100_000))
        try socket.setOption64(ZMQ_MAXMSGSIZE, configuration.limits.maxMessageBytes)
        if let keys = configuration.keys {
          try socket.makeCurveServer(secretKey: keys.pair.secretKey, domain: ZAPAuthenticator.domain)
        }
        try socket.bind(configuration.bind)
        bound.value = socket.lastEndpoint ?? configuration.bind
        return socket
      }
    } catch {
      authenticator?.shutdown()
      throw error
    }
    endpoint = bound.value
    logger.info(
      "coordinator listening",
      metadata: [
        "endpoint": "\(endpoint)", "store": "\(store.path)",
        "security": "\(configuration.keys.map { "curve, \($0.enrolled.count) enrolled keys" } ?? "none")",
      ])
  }

  public func shutdown() {
    loop.shutdown()
    authenticator?.shutdown()
  }
}

private final class EndpointBox: @unchecked Sendable {
  var value = ""
}

/// The thin I/O shell around `CoordinatorCore`: decodes frames, feeds the core,
/// commits what it asks for, then sends. Confined to the loop thread.
final class CoordinatorHandler: SocketLoopHandler, @unchecked Sendable {
  private var core: CoordinatorCore
  private let store: JobStore
  private let artifacts: ArtifactStore
  private let logger: Logger
  private let limits: CoordinatorLimits
  private var pendingQueries: [(peer: [UInt8], envelope: WireEnvelope)] = []
  private var lastPrune = 0.0
  /// With keys: what is enrolled now, so a connection whose key was revoked is refused.
  private let enrolledKeys: EnrolledKeys?
  /// The endpoint uses keys: every message has an identity and roles apply.
  private var secured: Bool { enrolledKeys != nil }
  /// Which worker key registered each worker id, so one enrolled worker cannot speak
  /// for another.
  private var workerKeys: [String: String] = [:]
  private var submitLimiter: SubmitRateLimiter
  /// Step labels by bundle and entry script: they never change, and `submit --follow`
  /// asks for `status` every second.
  private var stepLabelCache: [String: [String]?] = [:]

  init(
    configuration: CoordinatorConfiguration, store: JobStore, enrolledKeys: EnrolledKeys?, logger: Logger
  ) throws {
    self.store = store
    self.logger = logger
    self.limits = configuration.limits
    self.enrolledKeys = enrolledKeys
    submitLimiter = SubmitRateLimiter(
      rate: configuration.limits.submitRate, burst: configuration.limits.submitBurst)
    core = CoordinatorCore(settings: configuration.settings, nextJobID: try store.maxJobID() + 1)
    let now = Timestamp.now()
    for (job, cursor) in try store.liveJobs() { core.restore(job: job, cursor: cursor) }
    for (advert, drained, _, state) in try store.workers() where state != .offline {
      core.restore(worker: advert, drained: drained, now: now)
    }
    for (ref, workerID) in try store.owedCleanups() {
      core.restoreOwedCleanup(ref, workerID: workerID, now: now)
    }
    artifacts = try ArtifactStore(
      root: (configuration.dataDirectory as NSString).appendingPathComponent("artifacts"),
      limits: configuration.limits.artifacts, stored: try store.allArtifacts())
  }

  var wantsOrigins: Bool { true }

  func received(_ messages: [[Data]], io: SocketLoopIO) {
    received(messages, origins: [], io: io)
  }

  func received(_ messages: [[Data]], origins: [MessageOrigin], io: SocketLoopIO) {
    var now = Timestamp.now()
    for (index, frames) in messages.enumerated() {
      let origin = index < origins.count ? origins[index] : MessageOrigin()
      let identity = secured ? origin.userID.flatMap(PeerIdentity.init(userID:)) : nil
      // Each message is stamped when it is handled: liveness must not count the time a
      // long batch spent on the messages before it against a worker.
      now = Timestamp.now()
      guard frames.count >= 2 else { continue }
      let peer = [UInt8](frames[0])
      let envelope: WireEnvelope
      do {
        envelope = try WireEnvelope(frames: Array(frames.dropFirst()))
      } catch {
        refuse(to: frames[0], nil, because: error.description, io: io)
        continue
      }
      if let identity, let keys = enrolledKeys,
        !(origin.key.map { keys.admits(key: $0, as: identity) } ?? false)
      {
        refuse(
          to: frames[0], envelope,
          because: "\(identity)'s key is no longer enrolled with this coordinator", io: io)
        continue
      }
      do {
        try dispatch(peer: peer, envelope: envelope, identity: identity, address: origin.address, now: now)
      } catch let error as AccessError {
        refuse(to: frames[0], envelope, because: error.description, io: io)
      } catch let error as WireError {
        refuse(to: frames[0], envelope, because: error.description, io: io)
      } catch {
        logger.error("message failed", metadata: ["type": "\(envelope.type.rawValue)", "error": "\(error)"])
      }
    }
    flush(io: io, now: now)
  }

  /// Logs a refused message and answers it with an error reply (naming its request, when
  /// it has one, so the client matches the reply to what it sent).
  private func refuse(to peer: Data, _ envelope: WireEnvelope?, because reason: String, io: SocketLoopIO) {
    logger.warning(
      "refused a message", metadata: ["type": "\(envelope?.type.rawValue ?? "-")", "error": "\(reason)"])
    let requestID = envelope.flatMap { try? $0.decode(RequestIDOnly.self) }?.requestID
    io.send([peer] + WireEnvelope(.error, ErrorReply(requestID: requestID, message: reason)).frames)
  }

  func tick(io: SocketLoopIO) {
    let now = Timestamp.now()
    // A key deleted from the folders stops its open connections too, within a second.
    enrolledKeys?.reloadIfChanged(now: now)
    core.tick(now: now)
    flush(io: io, now: now)
    if now - lastPrune > 60 {
      lastPrune = now
      do {
        let pruned = try store.pruneJobs(
          finishedBefore: now - limits.retentionSeconds, keep: Set(core.jobs.keys))
        for id in pruned { artifacts.removeJob(id) }
        if !pruned.isEmpty {
          logger.info("deleted finished jobs past retention", metadata: ["jobs": "\(pruned.count)"])
        }
      } catch {
        logger.error("pruning finished jobs failed", metadata: ["error": "\(error)"])
      }
    }
  }

  private func dispatch(
    peer: [UInt8], envelope: WireEnvelope, identity: PeerIdentity?, address: String?, now: Double
  ) throws {
    if secured, let refusal = Authorization.refusal(envelope.type, from: identity) {
      throw AccessError(refusal)
    }
    switch envelope.type {
    case .register:
      let message = try envelope.decode(RegisterMessage.self)
      try checkWorkerKey(message.worker.id, identity, registering: true)
      core.register(peer: peer, message: message, now: now)
    case .heartbeat:
      core.heartbeat(
        peer: peer, message: try checked(envelope.decode(HeartbeatMessage.self), identity), now: now)
    case .logBatch:
      let (message, chunk) = try envelope.decodeLogBatch()
      core.logBatch(peer: peer, message: try checked(message, identity), chunk: chunk, now: now)
    case .progress:
      core.progress(
        peer: peer, message: try checked(envelope.decode(ProgressMessage.self), identity), now: now)
    case .finished:
      let (message, tail) = try envelope.decodeFinished()
      core.finished(peer: peer, message: try checked(message, identity), tail: tail, now: now)
    case .cleanup:
      core.cleanup(peer: peer, message: try checked(envelope.decode(CleanupMessage.self), identity), now: now)
    case .artifactBegin:
      core.artifactBegin(
        peer: peer, message: try checked(envelope.decode(ArtifactBeginMessage.self), identity), now: now)
    case .artifactChunk:
      let message = try checked(envelope.decode(ArtifactChunkMessage.self), identity)
      guard envelope.payload.count == 1, let data = envelope.payload.first else {
        throw WireError.missingPayload(
          type: "artifactChunk", detail: "expected 1 payload frame (the bytes), got \(envelope.payload.count)"
        )
      }
      core.artifactChunk(peer: peer, message: message, data: data, now: now)
    case .submit: try submit(peer: peer, envelope: envelope, identity: identity, address: address, now: now)
    case .cancel:
      var request = try envelope.decode(CancelRequest.self)
      var owners: [(text: String, owner: String?)] = []
      for text in request.jobIDs {
        guard let id = Int64(text), let owner = try store.jobOwner(id) else {
          throw WireError.malformedHeader(type: "cancel", detail: "no job '\(text)'")
        }
        owners.append((text, owner))
      }
      if let array = request.array {
        let members = try Int64(array).map { try store.arrayJobOwners($0) } ?? []
        guard !members.isEmpty else {
          throw WireError.malformedHeader(type: "cancel", detail: "no array '\(array)'")
        }
        request.jobIDs += members.map { String($0.id) }
        owners += members.map { (String($0.id), $0.owner) }
      }
      for (text, owner) in owners {
        if secured, !Authorization.mayCancel(identity, jobOwner: owner) {
          throw AccessError(
            "job \(text) was submitted by \(owner ?? "someone without a key"); "
              + "\(identity.map(\.description) ?? "a client") may cancel only its own jobs (an admin may cancel any)"
          )
        }
      }
      core.cancel(peer: peer, request: request, now: now)
    case .drain, .undrain:
      core.setDrained(
        peer: peer, request: try envelope.decode(DrainRequest.self), drained: envelope.type == .drain,
        now: now)
    case .status, .jobs, .logs, .workers, .artifacts, .artifactFetch:
      // Answered after this batch commits, so a status right after a submit sees it.
      pendingQueries.append((peer, envelope))
    case .registered, .assign, .logAck, .reportAck, .stop, .reregister, .artifactAck, .reply, .error:
      throw WireError.unknownType("\(envelope.type.rawValue) (not accepted by a coordinator)")
    }
  }

  /// A worker's report, once its worker id is checked against the connection's key.
  private func checked<M: FromWorker>(_ message: M, _ identity: PeerIdentity?) throws -> M {
    try checkWorkerKey(message.workerID, identity)
    return message
  }

  /// A worker key speaks only for the worker ids it registered.
  /// Checked on the message the dispatcher decoded anyway (once: a log batch is the
  /// hottest message there is). Without keys there is no worker key to check.
  private func checkWorkerKey(_ workerID: String, _ identity: PeerIdentity?, registering: Bool = false) throws
  {
    guard secured, let identity, identity.role == .worker else { return }
    if let owner = workerKeys[workerID], owner != identity.name {
      throw AccessError("worker \(workerID) belongs to worker key \(owner), not \(identity.name)")
    }
    if registering { workerKeys[workerID] = identity.name }
  }

  private func submit(
    peer: [UInt8], envelope: WireEnvelope, identity: PeerIdentity?, address: String?, now: Double
  ) throws {
    var request = try envelope.decode(SubmitRequest.self)
    // The owner is who the handshake says, never what the request claims.
    request.owner = identity?.name
    // A client is its key; without keys, its host (a new CLI process is a new connection).
    let client = identity?.userID ?? address ?? peer.map { String($0, radix: 16) }.joined()
    if let wait = submitLimiter.take(client, now: now) {
      throw AccessError(
        "too many submits: at most \(limits.submitRate.formatted()) a second per client "
          + "(bursts of \(Int(limits.submitBurst))); try again in \(String(format: "%.1f", wait)) s, "
          + "or submit many jobs at once with --array")
    }
    guard let bundleData = envelope.payload.first else {
      throw WireError.missingPayload(type: "submit", detail: "no bundle frame")
    }
    guard bundleData.count <= limits.maxBundleBytes else {
      throw WireError.missingPayload(
        type: "submit",
        detail: "bundle is \(ByteSize(bytes: Int64(bundleData.count))), over the limit of "
          + "\(ByteSize(bytes: Int64(limits.maxBundleBytes)))")
    }
    let bundle: JobBundle
    do {
      bundle = try JobBundle(decoding: bundleData)
    } catch {
      throw WireError.missingPayload(type: "submit", detail: error.description)
    }
    guard bundle.file(request.entry) != nil else {
      throw WireError.malformedHeader(
        type: "submit", detail: "the bundle has no entry script '\(request.entry)'")
    }
    guard case .object = request.args else {
      throw WireError.malformedHeader(type: "submit", detail: "args must be an object")
    }
    do {
      try ArtifactGlob.validate(request.artifacts)
    } catch {
      throw WireError.malformedHeader(type: "submit", detail: error.description)
    }
    if let indices = request.arrayIndices {
      guard !indices.isEmpty, indices.count <= limits.maxArrayJobs else {
        throw WireError.malformedHeader(
          type: "submit", detail: "an array holds 1 to \(limits.maxArrayJobs) jobs, got \(indices.count)")
      }
    }
    core.submit(
      peer: peer, request: request, bundleHash: bundleData.sha256Hex, bundle: [UInt8](bundleData), now: now)
  }

  private func flush(io: SocketLoopIO, now: Double) {
    core.schedule(now: now)
    let actions = core.takeActions()
    var changes: [StoreChange] = []
    var newJobs = 0
    defer {
      // Decoding and storing a big array leaves megabytes of freed blocks in this
      // thread's malloc arena, which glibc keeps; hand them back, so the resident size
      // stays what the live jobs need (≤ 150 MB with 100,000 queued).
      if newJobs >= 1000 { _ = malloc_trim(0) }
    }
    // Artifact chunks are written (and synced) first; a file they complete is recorded
    // in this batch's transaction, and its acknowledgement leaves only after the commit.
    var artifactAcks: [Int: ArtifactAckMessage] = [:]
    for (index, action) in actions.enumerated() {
      switch action {
      case .store(let change):
        if case .insertJobs(let rows, _, _) = change { newJobs += rows.count }
        changes.append(change)
      case .artifact(let operation):
        let outcome: ArtifactOutcome
        switch operation {
        case .begin(_, let jobID, let message): outcome = artifacts.begin(jobID: jobID, message, now: now)
        case .chunk(_, let jobID, let message, let data):
          outcome = artifacts.chunk(jobID: jobID, message, data: data, now: now)
        case .settle(let jobID, let attempt):
          artifacts.settle(job: jobID, attempt: attempt)
          continue
        }
        if let stored = outcome.stored { changes.append(stored) }
        if case .begin(_, _, let message) = operation, outcome.ack.error == nil, !outcome.ack.complete,
          outcome.ack.offset > 0
        {
          logger.info(
            "artifact upload resumes",
            metadata: [
              "attempt": "\(message.ref)", "name": "\(message.name)", "offset": "\(outcome.ack.offset)",
              "size": "\(message.size)",
            ])
        }
        if let error = outcome.ack.error {
          logger.warning(
            "artifact refused",
            metadata: ["attempt": "\(outcome.ack.ref)", "name": "\(outcome.ack.name)", "error": "\(error)"])
        }
        artifactAcks[index] = outcome.ack
      default: continue
      }
    }
    do {
      try store.apply(changes)
    } catch {
      // Nothing about this batch may be acknowledged: replies and acks would promise
      // what is not on disk. And the core has already moved past it (its log cursors,
      // its queue), so carrying on would drop what workers resend as duplicates. Stop
      // instead (fail-stop, as etcd does on a failed WAL write): a restart rebuilds
      // the core from what is on disk, workers resend everything unacknowledged, and
      // clients retry. Under systemd (Restart=on-failure) that is automatic.
      logger.critical(
        "store write failed; stopping so a restart resumes from what is on disk",
        metadata: ["error": "\(error)", "store": "\(store.path)"])
      exit(75)
    }
    // The batch's assignments, read together (one read transaction).
    var assignments: [Int: (AssignedJob, Data)] = [:]
    let assigning = actions.enumerated().compactMap { index, action in
      if case .assign(_, let jobID, let attempt, let gpus) = action {
        (action: index, request: (jobID: jobID, attempt: attempt, gpuIndices: gpus))
      } else {
        nil
      }
    }
    if !assigning.isEmpty {
      do {
        let loaded = try store.assignments(assigning.map(\.request))
        for (wanted, assignment) in zip(assigning, loaded) { assignments[wanted.action] = assignment }
      } catch {
        logger.error(
          "cannot load jobs for assignment",
          metadata: ["jobs": "\(assigning.map(\.request.jobID))", "error": "\(error)"])
      }
    }
    for (index, action) in actions.enumerated() {
      switch action {
      case .store: continue
      case .send(let peer, let envelope): io.send([Data(peer)] + envelope.frames)
      case .artifact(let operation):
        guard let ack = artifactAcks[index] else { continue }
        let peer: [UInt8]
        switch operation {
        case .begin(let p, _, _), .chunk(let p, _, _, _): peer = p
        case .settle: continue
        }
        io.send([Data(peer)] + WireEnvelope(.artifactAck, ack).frames)
      case .assign(let peer, _, _, _):
        guard let (job, bundle) = assignments[index] else { continue }
        io.send([Data(peer)] + WireEnvelope(.assign, AssignMessage(job: job), payload: [bundle]).frames)
      }
    }
    let queries = pendingQueries
    pendingQueries.removeAll(keepingCapacity: true)
    for (peer, envelope) in queries {
      let reply: WireEnvelope
      do {
        reply = try answer(envelope)
      } catch {
        let requestID = (try? envelope.decode(RequestIDOnly.self))?.requestID
        let message = "\(error)"
        reply = WireEnvelope(.error, ErrorReply(requestID: requestID, message: message))
      }
      io.send([Data(peer)] + reply.frames)
    }
  }

  private func answer(_ envelope: WireEnvelope) throws -> WireEnvelope {
    let waitReason: (Int64) -> String? = { [core] in core.waitReason(jobID: $0) }
    switch envelope.type {
    case .status:
      let request = try envelope.decode(JobRequest.self)
      guard let id = Int64(request.jobID), var view = try store.job(id, waitReason: waitReason) else {
        throw QueryError.noJob(request.jobID)
      }
      // The step timeline's labels, from the stored bundle, parsed once per bundle and
      // entry; without them `status` still answers, showing only `step n/m`.
      if let script = try? store.entryScript(jobID: id) {
        let key = script.bundleHash + "\n" + script.entry
        if let cached = stepLabelCache[key] {
          view.steps = cached
        } else {
          let labels = (try? store.bundle(hash: script.bundleHash)).flatMap {
            StepLabels.labels(bundle: $0, entry: script.entry)
          }
          if stepLabelCache.count >= 256 { stepLabelCache.removeAll() }
          stepLabelCache[key] = labels
          view.steps = labels
        }
      }
      view.artifacts = try store.artifacts(jobID: id)
      return WireEnvelope(.reply, Reply(requestID: request.requestID, result: view))
    case .jobs:
      let request = try envelope.decode(JobsRequest.self)
      let views = try store.jobs(
        state: request.state, worker: request.worker, array: request.array.flatMap { Int64($0) },
        limit: min(request.limit ?? 1000, 100_000),
        waitReason: waitReason)
      return WireEnvelope(.reply, Reply(requestID: request.requestID, result: views))
    case .logs:
      let request = try envelope.decode(LogsRequest.self)
      guard let id = Int64(request.jobID), let view = try store.job(id, waitReason: { _ in nil }) else {
        throw QueryError.noJob(request.jobID)
      }
      let lines = try store.logs(
        jobID: id, since: request.since, limit: max(1, min(request.limit, limits.maxLogLinesPerRequest)))
      // Complete once final and the core no longer waits for lines of it.
      let complete = view.state.isFinal && core.jobs[id] == nil
      return WireEnvelope(
        .reply,
        Reply(
          requestID: request.requestID, result: LogsReply(lines: lines, state: view.state, complete: complete)
        ))
    case .workers:
      let request = try envelope.decode(WorkersRequest.self)
      return WireEnvelope(.reply, Reply(requestID: request.requestID, result: core.workerViews()))
    case .artifacts:
      let request = try envelope.decode(ArtifactsRequest.self)
      guard let id = Int64(request.jobID), try store.jobExists(id) else {
        throw QueryError.noJob(request.jobID)
      }
      return WireEnvelope(.reply, Reply(requestID: request.requestID, result: try store.artifacts(jobID: id)))
    case .artifactFetch:
      let request = try envelope.decode(ArtifactFetchRequest.self)
      guard let id = Int64(request.jobID), try store.jobExists(id) else {
        throw QueryError.noJob(request.jobID)
      }
      guard
        let artifact = try store.artifacts(jobID: id).first(where: {
          $0.name == request.name && $0.attempt == request.attempt
        })
      else {
        throw QueryError.noArtifact(job: request.jobID, attempt: request.attempt, name: request.name)
      }
      guard request.offset >= 0, request.offset <= artifact.size, request.length >= 0 else {
        throw QueryError.badRange(name: request.name, offset: request.offset, size: artifact.size)
      }
      let length = Int(
        min(Int64(min(request.length, limits.maxArtifactFetchBytes)), artifact.size - request.offset))
      let data = try artifacts.read(
        job: id, attempt: request.attempt, name: request.name, offset: request.offset, length: length)
      return WireEnvelope(
        .reply,
        Reply(
          requestID: request.requestID,
          result: ArtifactFetchReply(
            name: artifact.name, offset: request.offset, length: data.count, size: artifact.size,
            sha256: artifact.sha256)),
        payload: [data])
    default:
      throw WireError.unknownType(envelope.type.rawValue)
    }
  }
}

enum QueryError: Error, CustomStringConvertible {
  case noJob(String)
  case noArtifact(job: String, attempt: Int, name: String)
  case badRange(name: String, offset: Int64, size: Int64)
  var description: String {
    switch self {
    case .noJob(let id): "no job '\(id)'; see `pinpool jobs`"
    case .noArtifact(let job, let attempt, let name):
      "job \(job) has no artifact '\(name)' from attempt \(attempt); see `pinpool artifacts \(job)`"
    case .badRange(let name, let offset, let size):
      "cannot read artifact '\(name)' at offset \(offset): it holds \(size) bytes"
    }
  }
}
