import Foundation
import Shared

/// The worker's protocol state machine: coordinator messages, job events and the clock
/// in; messages and job commands out. It keeps every log line and report until the
/// coordinator acknowledges it and resends after any reconnect, so a Wi-Fi drop loses
/// nothing; the coordinator drops the duplicates by sequence number.
struct WorkerCore: Sendable {
  enum Action: Sendable {
    case send(WireEnvelope)
    /// `assignment`: the assign message's header as received, for the spool.
    case startJob(AssignedJob, bundle: Data, assignment: Data)
    /// End an attempt. A stale one must not report a result, only clean up.
    case stopJob(AttemptRef, reason: String, stale: Bool)
    /// Throw the socket away and connect afresh.
    case reconnect
    /// Read `length` bytes of the file at `path` from `message.offset` and send them as
    /// an `artifactChunk` (or report `artifactReadFailed`).
    case sendArtifactChunk(ArtifactChunkMessage, path: String, length: Int)
    /// The attempt's artifacts are all stored (`failure` nil), or the upload failed for
    /// good, or was abandoned because the attempt is stale: time to clean up.
    case artifactsDone(AttemptRef, ArtifactsResult)
    /// The coordinator has acknowledged everything of the attempt (every line, its result
    /// and its cleanup) and the core let it go: its spool is no longer needed.
    case forget(AttemptRef)
  }

  enum ArtifactsResult: Sendable, Equatable {
    case stored(files: Int, bytes: Int64)
    case failed(String)
    /// The attempt was replaced: its outputs are not wanted.
    case abandoned
  }

  enum Connection: Sendable, Equatable {
    case registering(since: Double)
    case registered
  }

  /// Lines of an attempt as taken from its output, numbered.
  /// A report and its message as sent, encoded once: it may go several times (after
  /// reconnects, unacknowledged) and is written to the spool in the same bytes.
  struct Report<Message: Encodable & Sendable>: Sendable {
    let message: Message
    let envelope: WireEnvelope

    init(_ type: MessageType, _ message: Message) {
      self.message = message
      self.envelope = WireEnvelope(type, message)
    }

    init(_ message: FinishedMessage, tail: LogChunk?) where Message == FinishedMessage {
      self.message = message
      self.envelope = .finished(message, tail: tail)
    }
  }

  struct NumberedChunk: Sendable {
    var firstSeq: Int
    var chunk: LogChunk
    var lastSeq: Int { firstSeq + chunk.count - 1 }
  }

  struct Attempt: Sendable {
    var job: AssignedJob
    var nextSeq = 1
    /// Lines not yet acknowledged, in order, as taken; the first `sentChunks` were sent
    /// since the last (re)connect, in `sentBytes` bytes.
    var unacked: [NumberedChunk] = []
    /// The last line the coordinator acknowledged.
    var acked = 0
    var sentChunks = 0
    /// The last line sent since the last (re)connect.
    var sent: Int { sentChunks > 0 ? unacked[sentChunks - 1].lastSeq : acked }
    var sentBytes = 0
    var unackedBytes = 0
    /// When the coordinator last acknowledged lines of this attempt (or, with none in
    /// flight, when sending started); lines in flight with no ack for two heartbeat
    /// intervals are sent again.
    var lastAckProgress: Double = 0
    /// The result, encoded once: every send and the spool use the same bytes.
    var finishedReport: Report<FinishedMessage>?
    var finished: FinishedMessage? { finishedReport?.message }
    /// Sent on this connection since it was recorded (the periodic resend aside): the last
    /// log ack then has no need to send it again.
    var finishedSent = false
    var finishedAcked = false
    var cleanupReport: Report<CleanupMessage>?
    var cleanup: CleanupMessage? { cleanupReport?.message }
    var stale = false
    var lastProgress: ProgressMessage?
    /// `lastProgress` is a step report not sent yet: it goes with the next tick, or inside
    /// the result if the job ends first.
    var progressWithheld = false
    /// When the first step started, while no report has said the attempt runs.
    var runningSince: Double?
    /// Uploading the attempt's artifacts, after its steps ended and before cleanup.
    var upload: ArtifactUpload?

    var unackedLines: Int { nextSeq - 1 - acked }
    var allSent: Bool { sent == nextSeq - 1 }

    /// Its latest step report went: nothing is held, and the coordinator knows it runs.
    mutating func progressSent() {
      progressWithheld = false
      runningSince = nil
    }

    /// Numbers and keeps new lines; returns the first one's number and how many lines
    /// wait to be sent. A stale attempt takes none: nothing would send them, so it could
    /// never be done.
    mutating func append(_ chunk: LogChunk) -> (firstSeq: Int, unsent: Int)? {
      guard !stale, chunk.count > 0 else { return nil }
      let first = nextSeq
      unacked.append(NumberedChunk(firstSeq: first, chunk: chunk))
      unackedBytes += chunk.bytes.count
      nextSeq += chunk.count
      return (first, nextSeq - 1 - sent)
    }

    /// The coordinator holds every line up to `upTo`; returns whether that is news.
    mutating func acknowledge(upTo: Int) -> Bool {
      // Never beyond the lines there are (a confused coordinator must not count as progress).
      guard min(upTo, nextSeq - 1) > acked else { return false }
      acked = min(upTo, nextSeq - 1)
      var removed = 0
      while removed < unacked.count, unacked[removed].lastSeq <= acked {
        unackedBytes -= unacked[removed].chunk.bytes.count
        if removed < sentChunks { sentBytes -= unacked[removed].chunk.bytes.count }
        removed += 1
      }
      unacked.removeFirst(removed)
      sentChunks = max(0, sentChunks - removed)
      if let first = unacked.first, first.firstSeq <= acked {
        // Acknowledged part way (a resend cut differently): keep the rest.
        let rest = first.chunk.dropping(first: acked - first.firstSeq + 1)
        let trimmed = first.chunk.bytes.count - rest.bytes.count
        unackedBytes -= trimmed
        if sentChunks > 0 { sentBytes -= trimmed }
        unacked[0] = NumberedChunk(firstSeq: acked + 1, chunk: rest)
      }
      return true
    }

    /// Every line not yet sent, as one chunk, counted as sent, when none is in flight
    /// and they fit one batch: the result carries them.
    mutating func takeTail(_ maxLines: Int, _ maxBytes: Int) -> NumberedChunk? {
      guard sentChunks == 0, sent == acked, !unacked.isEmpty, nextSeq - 1 - acked <= maxLines,
        unackedBytes <= maxBytes
      else { return nil }
      let (tail, _) = batch(from: 0, maxLines: maxLines, maxBytes: maxBytes)
      sentChunks = unacked.count
      sentBytes = unackedBytes
      return tail
    }

    /// The unacknowledged chunks from `start` joined while the lines and bytes fit (the
    /// first always goes, however big), and the index after the last one taken. Small
    /// chunks (a job printing slowly) go together; a big one goes as it is.
    func batch(from start: Int, maxLines: Int, maxBytes: Int) -> (NumberedChunk, end: Int) {
      var chunk = unacked[start].chunk
      var end = start + 1
      while end < unacked.count, chunk.count + unacked[end].chunk.count <= maxLines,
        chunk.bytes.count + unacked[end].chunk.bytes.count <= maxBytes
      {
        chunk.append(unacked[end].chunk)
        end += 1
      }
      return (NumberedChunk(firstSeq: unacked[start].firstSeq, chunk: chunk), end)
    }

    /// Everything unacknowledged goes again, from the first line.
    mutating func rewind() {
      sentChunks = 0
      sentBytes = 0
    }

    var done: Bool {
      cleanup != nil && unacked.isEmpty && (finishedAcked || stale) && cleanupAcked
    }
    var cleanupAcked = false
  }

  private(set) var advert: WorkerAdvert
  private(set) var connection: Connection
  private(set) var attempts: [AttemptRef: Attempt] = [:]
  private(set) var lastHeard: Double
  /// The latest time an input brought, for the inputs that bring none (log lines).
  private var clock: Double
  private var lastHeartbeatSent: Double = 0
  private var lastResend: Double = 0
  private var registerAttempts = 0
  /// Deterministic per worker (seeded from its id), so tests can predict it.
  private var jitter: SplitMix64

  /// 2 s, 4 s, 8 s ... up to 30 s, each scaled by a factor in [0.5, 1.5).
  var registerRetryDelay: Double {
    let base = min(30, max(2, heartbeatInterval) * pow(2, Double(min(registerAttempts, 5))))
    var generator = jitter
    generator.state &+= UInt64(registerAttempts)
    return base * (0.5 + generator.unit())
  }
  var heartbeatInterval: Double
  var liveness: Int
  /// Lines and bytes per `logBatch` (a chunk taken whole may be larger): larger batches
  /// amortise framing and the coordinator's commit.
  var maxBatchLines = 8192
  var maxBatchBytes = 1 << 20
  /// Lines and bytes of one attempt sent and not yet acknowledged, at most: a job
  /// printing faster than the coordinator stores waits here (its lines are in the spool)
  /// instead of filling the coordinator's socket queue, where they would delay every
  /// heartbeat behind them and the coordinator's memory would grow with the log.
  var maxInFlightLines = 65_536
  var maxInFlightBytes = 8 << 20
  /// Artifact upload cap in bytes per second, per attempt (`--upload-rate`); nil for none.
  var uploadRate: Int64?
  /// Artifact chunk size without a rate cap.
  var uploadChunkSize = 1 << 20
  private var actions: [Action] = []

  init(advert: WorkerAdvert, heartbeatInterval: Double = 5, liveness: Int = 6, now: Double) {
    self.advert = advert
    self.heartbeatInterval = heartbeatInterval
    self.liveness = liveness
    self.connection = .registering(since: now)
    self.lastHeard = now
    self.clock = now
    self.jitter = SplitMix64(
      seed: advert.id.utf8.reduce(UInt64(1_469_598_103_934_665_603)) {
        ($0 ^ UInt64($1)) &* 1_099_511_628_211
      })
  }

  mutating func takeActions() -> [Action] {
    defer { actions.removeAll(keepingCapacity: true) }
    return actions
  }

  var livenessWindow: Double { heartbeatInterval * Double(liveness) }

  /// Attempts the coordinator must keep counting as ours: running, or finished with
  /// a result it has not acknowledged yet (else it would call them lost and rerun them).
  var activeAttemptRefs: [AttemptRef] {
    attempts.filter { !$0.value.stale && !$0.value.finishedAcked }.map(\.key)
      .sorted(by: Self.inOrder)
  }

  /// The attempts in a fixed order, so what they send is deterministic.
  private var refsInOrder: [AttemptRef] { attempts.keys.sorted(by: Self.inOrder) }

  /// By job id, then attempt number; compared in place, not as two made strings per
  /// comparison (log flushes sort).
  private static func inOrder(_ a: AttemptRef, _ b: AttemptRef) -> Bool {
    a.jobID != b.jobID ? a.jobID < b.jobID : a.attempt < b.attempt
  }

  // MARK: Inputs

  mutating func start(now: Double) {
    sendRegister(now: now)
  }

  mutating func updateResources(gpus: [GPU], diskFree: Int64) {
    advert.gpus = gpus
    advert.diskFree = diskFree
  }

  mutating func received(_ envelope: WireEnvelope, now: Double) {
    lastHeard = now
    clock = max(clock, now)
    switch envelope.type {
    case .registered:
      guard let message = try? envelope.decode(RegisteredMessage.self) else { return }
      heartbeatInterval = message.heartbeatInterval
      liveness = message.liveness
      connection = .registered
      registerAttempts = 0
      for ref in message.stopAttempts {
        markStale(ref, reason: "the coordinator replaced or cancelled this attempt")
      }
      resendEverything(now: now)
    case .reregister:
      sendRegister(now: now)
    case .heartbeat:
      break
    case .assign:
      guard let message = try? envelope.decode(AssignMessage.self), let bundle = envelope.payload.first else {
        return
      }
      let ref = message.job.ref
      guard attempts[ref] == nil else { return }
      attempts[ref] = Attempt(job: message.job)
      actions.append(.startJob(message.job, bundle: bundle, assignment: envelope.header))
    case .logAck:
      guard let message = try? envelope.decode(LogAckMessage.self) else { return }
      let ref = AttemptRef(jobID: message.jobID, attempt: message.attempt)
      guard attempts[ref] != nil else { return }
      let progressed = attempts[ref]!.acknowledge(upTo: message.upTo)
      if progressed { attempts[ref]!.lastAckProgress = now }
      // The window opened: send what waited; a result that waited for its log goes now.
      flushLogs()
      if progressed, let attempt = attempts[ref], attempt.unacked.isEmpty,
        let finished = attempt.finishedReport,
        !attempt.finishedSent, !attempt.finishedAcked, !attempt.stale, connection == .registered
      {
        attempts[ref]!.finishedSent = true
        actions.append(.send(finished.envelope))
      }
      forgetIfDone(ref)
    case .reportAck:
      guard let message = try? envelope.decode(ReportAckMessage.self) else { return }
      let ref = AttemptRef(jobID: message.jobID, attempt: message.attempt)
      guard var attempt = attempts[ref] else { return }
      switch message.kind {
      case .finished:
        attempt.finishedAcked = true
        if let upTo = message.logUpTo, attempt.acknowledge(upTo: upTo) { attempt.lastAckProgress = now }
      case .cleanup: attempt.cleanupAcked = true
      }
      attempts[ref] = attempt
      forgetIfDone(ref)
    case .stop:
      guard let message = try? envelope.decode(StopMessage.self) else { return }
      let ref = AttemptRef(jobID: message.jobID, attempt: message.attempt)
      if message.stale {
        markStale(ref, reason: message.reason)
      } else if attempts[ref] != nil {
        actions.append(.stopJob(ref, reason: message.reason, stale: false))
      }
    case .artifactAck:
      guard let message = try? envelope.decode(ArtifactAckMessage.self),
        attempts[message.ref]?.upload != nil
      else { return }
      attempts[message.ref]!.upload!.received(message, now: now)
      pumpUploads(now: now)
    case .error:
      break
    default:
      break
    }
  }

  mutating func tick(now: Double) {
    clock = max(clock, now)
    switch connection {
    case .registering(let since):
      if now - since > registerRetryDelay {
        // No answer: the coordinator may be down or our socket wedged on a dead route.
        // Back off (up to 30 s) with jitter, so a restarted coordinator is not met by
        // every laptop of the team in the same millisecond.
        registerAttempts += 1
        actions.append(.reconnect)
        sendRegister(now: now)
      }
    case .registered:
      if now - lastHeard > livenessWindow {
        actions.append(.reconnect)
        sendRegister(now: now)
        return
      }
      if now - lastHeartbeatSent >= heartbeatInterval {
        lastHeartbeatSent = now
        actions.append(
          .send(
            WireEnvelope(
              .heartbeat,
              HeartbeatMessage(
                workerID: advert.id, gpus: advert.gpus, diskFree: advert.diskFree,
                activeAttempts: activeAttemptRefs))))
      }
      flushLogs()
      sendWithheldProgress()
      pumpUploads(now: now)
      // Reports whose acknowledgement got lost are sent again now and then.
      if now - lastResend >= heartbeatInterval * 2 {
        lastResend = now
        // Lines in flight whose acknowledgement stopped coming go again, from the first
        // one: the batch or its ack was lost with a dropped connection.
        for (ref, attempt) in attempts
        where attempt.sent > attempt.acked && now - attempt.lastAckProgress >= heartbeatInterval * 2 {
          attempts[ref]?.rewind()
        }
        flushLogs()
        for attempt in attempts.values {
          if let finished = attempt.finishedReport, !attempt.finishedAcked, !attempt.stale,
            attempt.unacked.isEmpty
          {
            actions.append(.send(finished.envelope))
          }
          if let cleanup = attempt.cleanupReport, !attempt.cleanupAcked {
            actions.append(.send(cleanup.envelope))
          }
        }
      }
    }
  }

  /// Numbers and keeps lines the attempt printed; returns the first one's number, for
  /// the shell's spool (nil: the attempt takes no lines).
  @discardableResult
  mutating func log(_ ref: AttemptRef, _ chunk: LogChunk) -> Int? {
    // One in-place access (a mutating call through the optional subscript): reading the
    // attempt out of the dictionary would copy it, retains and all.
    guard let (first, unsent) = attempts[ref]?.append(chunk) ?? nil else { return nil }
    if unsent >= maxBatchLines { flushLogs() }
    return first
  }

  /// Takes back an attempt an earlier run of this worker finished but could not
  /// deliver (from its spool): its lines, result and cleanup are resent after
  /// registering, and the coordinator keeps what it does not have yet.
  /// With `cleanup` nil the workspace is still there, its artifacts to be uploaded
  /// (`startUpload`) before it is cleaned up.
  ///
  /// Lines the spool lacks (a write failed, say on a full disk) are lost; each run of them
  /// is delivered as as many `pinpool` lines, the first saying so, so the numbering holds
  /// and the coordinator, which takes a result only behind its whole log, takes this one.
  /// Returns how many lines were lost, or nil (and restores nothing) when the spool names
  /// more missing lines than any job printed: it is corrupt, and the attempt is better
  /// rerun than delivered.
  @discardableResult
  mutating func restore(
    job: AssignedJob, chunks: [NumberedChunk], finished: FinishedMessage, cleanup: CleanupMessage?,
    now: Double
  ) -> Int? {
    var attempt = Attempt(job: job)
    var lost = 0
    func fill(upTo last: Int) {
      let missing = last - attempt.nextSeq + 1
      guard missing > 0 else { return }
      var filler = LogChunk()
      filler.append(
        stream: .pinpool, time: now,
        text: "pinpool: \(missing) log line\(missing == 1 ? " was" : "s were") lost: "
          + "the worker could not write them to its spool before it restarted")
      for _ in 1..<missing { filler.append(stream: .pinpool, time: now, text: "") }
      _ = attempt.append(filler)
      lost += missing
    }
    let sorted = chunks.sorted { $0.firstSeq < $1.firstSeq }.filter { $0.chunk.count > 0 }
    let lastSeq = max(finished.lastLogSeq, sorted.last?.lastSeq ?? 0)
    let held = sorted.reduce(0) { $0 + $1.chunk.count }
    guard lastSeq - held <= 1_000_000 else { return nil }
    for chunk in sorted where chunk.lastSeq >= attempt.nextSeq {
      fill(upTo: chunk.firstSeq - 1)
      _ = attempt.append(chunk.chunk.dropping(first: attempt.nextSeq - chunk.firstSeq))
    }
    fill(upTo: finished.lastLogSeq)
    // The spool keeps a result's header, not its tail's lines (they are in the spool
    // as lines, restored above, and go as batches).
    var finished = finished
    finished.tail = nil
    attempt.finishedReport = Report(.finished, finished)
    attempt.cleanupReport = cleanup.map { Report(.cleanup, $0) }
    attempts[job.ref] = attempt
    return lost
  }

  /// A step started (or the job serves, or notifies). A step report waits for the next
  /// tick: a job that ends before it carries the report in its result instead, which on
  /// short jobs saves a message and a store update each. A notification or a change to
  /// serving goes at once.
  mutating func progress(
    _ ref: AttemptRef, state: JobState, stepIndex: Int, stepCount: Int, locals: JSONValue?,
    notification: String?, now: Double
  ) {
    guard let attempt = attempts[ref], !attempt.stale else { return }
    let message = ProgressMessage(
      workerID: advert.id, jobID: ref.jobID, attempt: ref.attempt, state: state, stepIndex: stepIndex,
      stepCount: stepCount, locals: locals, notification: notification)
    attempts[ref]!.lastProgress = message
    if attempt.lastProgress == nil { attempts[ref]!.runningSince = now }
    if state == .running, notification == nil {
      attempts[ref]!.progressWithheld = true
      return
    }
    flushLogs()
    // In place: `flushLogs` just advanced this attempt's send cursor.
    attempts[ref]!.progressWithheld = false
    if connection == .registered {
      attempts[ref]!.progressSent()
      actions.append(.send(WireEnvelope(.progress, message)))
    }
  }

  /// Step reports held since the last tick.
  private mutating func sendWithheldProgress() {
    guard connection == .registered else { return }
    var due: [AttemptRef] = []
    for (ref, attempt) in attempts where attempt.progressWithheld { due.append(ref) }
    if due.count > 1 { due.sort(by: Self.inOrder) }
    for ref in due {
      attempts[ref]!.progressSent()
      if let message = attempts[ref]!.lastProgress { actions.append(.send(WireEnvelope(.progress, message))) }
    }
  }

  mutating func jobEnded(
    _ ref: AttemptRef, state: JobState, exitCode: Int32?, error: String?, locals: JSONValue?,
    environment: JSONValue? = nil, now: Double
  ) {
    guard var attempt = attempts[ref] else { return }
    // The step report still held goes inside the result, with how long the job ran when
    // no report ever said it was running.
    var withheld: WithheldProgress?
    if attempt.progressWithheld, let last = attempt.lastProgress {
      withheld = WithheldProgress(
        stepIndex: last.stepIndex, stepCount: last.stepCount,
        runningFor: attempt.runningSince.map { max(0, now - $0) })
      attempt.progressWithheld = false
    }
    // With nothing in flight, lines that fit one batch go inside the result, and their
    // wait for an ack starts now (as a batch's does), not at the last ack long ago.
    let tail =
      connection == .registered && !attempt.stale ? attempt.takeTail(maxBatchLines, maxBatchBytes) : nil
    if tail != nil { attempt.lastAckProgress = clock }
    attempts[ref] = attempt
    flushLogs()
    let message = FinishedMessage(
      workerID: advert.id, jobID: ref.jobID, attempt: ref.attempt, state: state, exitCode: exitCode,
      error: error, locals: locals, lastLogSeq: attempt.nextSeq - 1, environment: environment,
      tail: tail.map { LogTail(firstSeq: $0.firstSeq, count: $0.chunk.count) }, progress: withheld)
    let report = Report(message, tail: tail?.chunk)
    attempts[ref]!.finishedReport = report
    // Behind a full window the result waits: the ack that empties the log sends it.
    if connection == .registered, !attempt.stale, let flushed = attempts[ref], flushed.allSent {
      attempts[ref]!.finishedSent = true
      actions.append(.send(report.envelope))
    }
  }

  mutating func cleanedUp(
    _ ref: AttemptRef, state: CleanupState, bytesFreed: Int64, diskFreeAfter: Int64, reason: String?
  ) {
    guard var attempt = attempts[ref] else { return }
    advert.diskFree = diskFreeAfter
    let message = CleanupMessage(
      workerID: advert.id, jobID: ref.jobID, attempt: ref.attempt, state: state, bytesFreed: bytesFreed,
      diskFreeAfter: diskFreeAfter, reason: reason)
    let report = Report(.cleanup, message)
    attempt.cleanupReport = report
    attempts[ref] = attempt
    if connection == .registered { actions.append(.send(report.envelope)) }
  }

  /// The attempt's steps ended and its artifacts were collected: upload them (none:
  /// done at once). A stale attempt's outputs are not wanted.
  mutating func startUpload(_ ref: AttemptRef, files: [ArtifactFile], now: Double) {
    guard let attempt = attempts[ref], attempt.upload == nil else { return }
    if attempt.stale {
      actions.append(.artifactsDone(ref, .abandoned))
      return
    }
    if files.isEmpty {
      actions.append(.artifactsDone(ref, .stored(files: 0, bytes: 0)))
      return
    }
    attempts[ref]!.upload = ArtifactUpload(
      ref: ref, workerID: advert.id, files: files, rate: uploadRate, chunkSize: uploadChunkSize,
      stallTimeout: max(15, livenessWindow))
    pumpUploads(now: now)
  }

  /// The shell could not read a file it was asked to send.
  mutating func artifactReadFailed(_ ref: AttemptRef, reason: String, now: Double) {
    guard attempts[ref]?.upload != nil else { return }
    attempts[ref]!.upload!.readFailed(reason)
    pumpUploads(now: now)
  }

  // MARK: Internals

  private mutating func sendRegister(now: Double) {
    connection = .registering(since: now)
    for ref in attempts.keys {
      attempts[ref]?.rewind()
      attempts[ref]?.finishedSent = false
      attempts[ref]?.upload?.resume()
    }
    actions.append(
      .send(WireEnvelope(.register, RegisterMessage(worker: advert, activeAttempts: activeAttemptRefs))))
  }

  private mutating func markStale(_ ref: AttemptRef, reason: String) {
    guard var attempt = attempts[ref] else { return }
    let wasRunning = attempt.finished == nil
    attempt.stale = true
    attempt.unacked.removeAll()
    attempt.acked = attempt.nextSeq - 1
    attempt.unackedBytes = 0
    attempt.rewind()
    let wasUploading = attempt.upload != nil
    attempt.upload = nil
    attempts[ref] = attempt
    if wasRunning { actions.append(.stopJob(ref, reason: reason, stale: true)) }
    if wasUploading { actions.append(.artifactsDone(ref, .abandoned)) }
    forgetIfDone(ref)
  }

  private mutating func flushLogs() {
    guard connection == .registered else { return }
    // Only the attempts with lines to send (mostly none or one), in order.
    var due: [AttemptRef] = []
    for (ref, attempt) in attempts where !attempt.stale && !attempt.allSent { due.append(ref) }
    if due.count > 1 { due.sort(by: Self.inOrder) }
    for ref in due {
      guard var attempt = attempts[ref] else { continue }
      if attempt.sent == attempt.acked { attempt.lastAckProgress = clock }
      while attempt.sentChunks < attempt.unacked.count, attempt.sent - attempt.acked < maxInFlightLines,
        attempt.sentBytes < maxInFlightBytes
      {
        let (batch, end) = attempt.batch(
          from: attempt.sentChunks, maxLines: maxBatchLines, maxBytes: maxBatchBytes)
        actions.append(
          .send(
            .logBatch(
              workerID: advert.id, jobID: ref.jobID, attempt: ref.attempt, firstSeq: batch.firstSeq,
              chunk: batch.chunk)))
        attempt.sentChunks = end
        attempt.sentBytes += batch.chunk.bytes.count
      }
      attempts[ref] = attempt
    }
  }

  /// After (re)registering: every unacknowledged line, then progress, then reports,
  /// in that order, so the coordinator never sees a result before the log it ends.
  private mutating func resendEverything(now: Double) {
    lastResend = now
    lastHeartbeatSent = now
    for ref in attempts.keys { attempts[ref]?.rewind() }
    flushLogs()
    for ref in refsInOrder {
      guard let attempt = attempts[ref] else { continue }
      if !attempt.stale, attempt.finished == nil, let progress = attempt.lastProgress {
        attempts[ref]?.progressSent()
        actions.append(.send(WireEnvelope(.progress, progress)))
      }
      // Only behind the whole log: with more unacknowledged than the window holds, the
      // acknowledgement that empties it sends the result.
      if let finished = attempt.finishedReport, !attempt.finishedAcked, !attempt.stale, attempt.allSent {
        attempts[ref]?.finishedSent = true
        actions.append(.send(finished.envelope))
      }
      if let cleanup = attempt.cleanupReport, !attempt.cleanupAcked {
        actions.append(.send(cleanup.envelope))
      }
    }
  }

  /// Uploads whatever is due, attempts in a fixed order; finished uploads end in
  /// `artifactsDone`.
  private mutating func pumpUploads(now: Double) {
    // Every tick comes here; most have nothing uploading.
    guard attempts.values.contains(where: { $0.upload != nil }) else { return }
    for ref in refsInOrder {
      guard attempts[ref]?.upload != nil else { continue }
      if connection == .registered {
        for request in attempts[ref]!.upload!.pump(now: now) {
          switch request {
          case .begin(let message): actions.append(.send(WireEnvelope(.artifactBegin, message)))
          case .chunk(let message, let path, let length):
            actions.append(.sendArtifactChunk(message, path: path, length: length))
          }
        }
      }
      guard let upload = attempts[ref]?.upload, let outcome = upload.outcome else { continue }
      attempts[ref]!.upload = nil
      switch outcome {
      case .completed:
        actions.append(.artifactsDone(ref, .stored(files: upload.files.count, bytes: upload.totalBytes)))
      case .failed(let reason):
        actions.append(.artifactsDone(ref, .failed(reason)))
      }
    }
  }

  private mutating func forgetIfDone(_ ref: AttemptRef) {
    guard let attempt = attempts[ref], attempt.done else { return }
    attempts[ref] = nil
    actions.append(.forget(ref))
  }
}
