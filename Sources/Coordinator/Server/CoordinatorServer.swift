import CZeroMQ
import Foundation
import Logging
import Shared

/// Limits a coordinator enforces on what clients send.
public struct CoordinatorLimits: Sendable {
  public var maxBundleBytes = 64 * 1024 * 1024
  public var maxArrayJobs = 10_000
  public var maxLogLinesPerRequest = 5_000
  /// Finished jobs and their logs are deleted this long after they end.
  public var retentionSeconds: Double = 30 * 86400
  public init() {}
}

public struct CoordinatorConfiguration: Sendable {
  public var dataDirectory: String
  public var bind: String
  public var settings: CoordinatorSettings
  public var limits: CoordinatorLimits

  public init(
    dataDirectory: String, bind: String = "tcp://127.0.0.1:7450", settings: CoordinatorSettings = .init(),
    limits: CoordinatorLimits = .init()
  ) {
    self.dataDirectory = dataDirectory
    self.bind = bind
    self.settings = settings
    self.limits = limits
  }
}

/// The coordinator process: one ROUTER socket on its own thread, the core, and the
/// store. All three are confined to the loop thread, so the core needs no locks.
public final class CoordinatorServer: Sendable {
  private let loop: SocketLoop
  public let endpoint: String

  public init(configuration: CoordinatorConfiguration, context: ZMQContext, logger: Logger) throws {
    let store = try JobStore(directory: configuration.dataDirectory)
    let handler = try CoordinatorHandler(configuration: configuration, store: store, logger: logger)
    let bound = EndpointBox()
    loop = try SocketLoop(
      name: "pinpool-coordinator", tickInterval: .milliseconds(250), handler: handler
    ) {
      let socket = try ZMQSocket(context: context, kind: .router)
      // A worker that reconnects under the same identity takes over its old route.
      try socket.setOption(ZMQ_ROUTER_HANDOVER, Int32(1))
      try socket.setOption(ZMQ_SNDHWM, Int32(100_000))
      try socket.setOption(ZMQ_RCVHWM, Int32(100_000))
      try socket.bind(configuration.bind)
      bound.value = socket.lastEndpoint ?? configuration.bind
      return socket
    }
    endpoint = bound.value
    logger.info("coordinator listening", metadata: ["endpoint": "\(endpoint)", "store": "\(store.path)"])
  }

  public func shutdown() { loop.shutdown() }
}

private final class EndpointBox: @unchecked Sendable {
  var value = ""
}

/// The thin I/O shell around `CoordinatorCore`: decodes frames, feeds the core,
/// commits what it asks for, then sends. Confined to the loop thread.
final class CoordinatorHandler: SocketLoopHandler, @unchecked Sendable {
  private var core: CoordinatorCore
  private let store: JobStore
  private let logger: Logger
  private let limits: CoordinatorLimits
  private var pendingQueries: [(peer: [UInt8], envelope: WireEnvelope)] = []
  private var lastPrune = 0.0

  init(configuration: CoordinatorConfiguration, store: JobStore, logger: Logger) throws {
    self.store = store
    self.logger = logger
    self.limits = configuration.limits
    core = CoordinatorCore(settings: configuration.settings, nextJobID: try store.maxJobID() + 1)
    let now = Timestamp.now()
    for (job, cursor) in try store.liveJobs() { core.restore(job: job, cursor: cursor) }
    for (advert, drained, _, state) in try store.workers() where state != .offline {
      core.restore(worker: advert, drained: drained, now: now)
    }
  }

  func received(_ messages: [[Data]], io: SocketLoopIO) {
    var now = Timestamp.now()
    for frames in messages {
      // Each message is stamped when it is handled: liveness must not count the time a
      // long batch spent on the messages before it against a worker.
      now = Timestamp.now()
      guard frames.count >= 2 else { continue }
      let peer = [UInt8](frames[0])
      let envelope: WireEnvelope
      do {
        envelope = try WireEnvelope(frames: Array(frames.dropFirst()))
      } catch {
        logger.warning("refused a message", metadata: ["error": "\(error)"])
        io.send(
          [frames[0]] + WireEnvelope(.error, ErrorReply(requestID: nil, message: error.description)).frames)
        continue
      }
      do {
        try dispatch(peer: peer, envelope: envelope, now: now)
      } catch let error as WireError {
        logger.warning(
          "refused a message", metadata: ["type": "\(envelope.type.rawValue)", "error": "\(error)"])
        let requestID = (try? envelope.decode(RequestIDOnly.self))?.requestID
        io.send(
          [frames[0]]
            + WireEnvelope(.error, ErrorReply(requestID: requestID, message: error.description)).frames)
      } catch {
        logger.error("message failed", metadata: ["type": "\(envelope.type.rawValue)", "error": "\(error)"])
      }
    }
    flush(io: io, now: now)
  }

  func tick(io: SocketLoopIO) {
    let now = Timestamp.now()
    core.tick(now: now)
    flush(io: io, now: now)
    if now - lastPrune > 60 {
      lastPrune = now
      do {
        let pruned = try store.prune(finishedBefore: now - limits.retentionSeconds, keep: Set(core.jobs.keys))
        if pruned > 0 { logger.info("deleted finished jobs past retention", metadata: ["jobs": "\(pruned)"]) }
      } catch {
        logger.error("pruning finished jobs failed", metadata: ["error": "\(error)"])
      }
    }
  }

  private func dispatch(peer: [UInt8], envelope: WireEnvelope, now: Double) throws {
    switch envelope.type {
    case .register: core.register(peer: peer, message: try envelope.decode(RegisterMessage.self), now: now)
    case .heartbeat: core.heartbeat(peer: peer, message: try envelope.decode(HeartbeatMessage.self), now: now)
    case .logBatch: core.logBatch(peer: peer, message: try envelope.decode(LogBatchMessage.self), now: now)
    case .progress: core.progress(peer: peer, message: try envelope.decode(ProgressMessage.self), now: now)
    case .finished: core.finished(peer: peer, message: try envelope.decode(FinishedMessage.self), now: now)
    case .cleanup: core.cleanup(peer: peer, message: try envelope.decode(CleanupMessage.self), now: now)
    case .submit: try submit(peer: peer, envelope: envelope, now: now)
    case .cancel:
      var request = try envelope.decode(CancelRequest.self)
      if let array = request.array {
        let ids = try Int64(array).map { try store.arrayJobIDs($0) } ?? []
        guard !ids.isEmpty else {
          throw WireError.malformedHeader(type: "cancel", detail: "no array '\(array)'")
        }
        request.jobIDs += ids.map(String.init)
      }
      for text in request.jobIDs {
        guard let id = Int64(text), try store.jobExists(id) else {
          throw WireError.malformedHeader(type: "cancel", detail: "no job '\(text)'")
        }
      }
      core.cancel(peer: peer, request: request, now: now)
    case .drain, .undrain:
      core.setDrained(
        peer: peer, request: try envelope.decode(DrainRequest.self), drained: envelope.type == .drain,
        now: now)
    case .status, .jobs, .logs, .workers:
      // Answered after this batch commits, so a status right after a submit sees it.
      pendingQueries.append((peer, envelope))
    case .registered, .assign, .logAck, .reportAck, .stop, .reregister, .reply, .error:
      throw WireError.unknownType("\(envelope.type.rawValue) (not accepted by a coordinator)")
    }
  }

  private func submit(peer: [UInt8], envelope: WireEnvelope, now: Double) throws {
    let request = try envelope.decode(SubmitRequest.self)
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
    for case .store(let change) in actions { changes.append(change) }
    do {
      try store.apply(changes)
    } catch {
      // Nothing about this batch may be acknowledged: replies and acks would promise
      // what is not on disk. Workers resend unacknowledged data; clients retry.
      logger.critical("store write failed; replies of this batch withheld", metadata: ["error": "\(error)"])
      pendingQueries.removeAll()
      return
    }
    for action in actions {
      switch action {
      case .store: continue
      case .send(let peer, let envelope): io.send([Data(peer)] + envelope.frames)
      case .assign(let peer, let jobID, let attempt, let gpus):
        do {
          guard let (job, bundle) = try store.assignment(jobID: jobID, attempt: attempt, gpuIndices: gpus)
          else {
            continue
          }
          io.send([Data(peer)] + WireEnvelope(.assign, AssignMessage(job: job), payload: [bundle]).frames)
        } catch {
          logger.error("cannot load job for assignment", metadata: ["job": "\(jobID)", "error": "\(error)"])
        }
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
      // The step timeline's labels, from the stored bundle (the last few are cached);
      // without them `status` still answers, showing only `step n/m`.
      if let (job, bundle) = try? store.assignment(jobID: id, attempt: view.attempt, gpuIndices: view.gpus) {
        view.steps = StepLabels.labels(bundle: bundle, entry: job.entry)
      }
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
    default:
      throw WireError.unknownType(envelope.type.rawValue)
    }
  }
}

enum QueryError: Error, CustomStringConvertible {
  case noJob(String)
  var description: String {
    switch self {
    case .noJob(let id): "no job '\(id)'; see `pinpool jobs`"
    }
  }
}
