import Foundation
import Testing

@testable import Shared
@testable import Worker

private let GB: Int64 = 1_000_000_000

private let advert = WorkerAdvert(
  id: "w-1", name: "edge-3",
  host: HostInfo(cpuCores: 4, memoryTotal: 16 * GB, platform: "linux", arch: "x64", hostname: "edge-3"),
  gpus: [], diskFree: 100 * GB, slots: 2, labels: [:])

private func job(_ id: String, attempt: Int = 1) -> AssignedJob {
  AssignedJob(
    jobID: id, attempt: attempt, name: "job-\(id)", entry: "install.json", args: .object(JSONObject()),
    gpuIndices: [], requirements: Requirements(), timeoutSeconds: nil, artifacts: [])
}

private let bundle = JobBundle(files: [.init(path: "install.json", mode: 0o644, data: Data("{}".utf8))])
  .encoded()

extension WorkerCore {
  /// One line, as a one-line chunk.
  @discardableResult
  fileprivate mutating func log(_ ref: AttemptRef, stream: LogStream, line: String, time: Double) -> Int? {
    log(ref, LogChunk([(stream, time, line)]))
  }
}

extension Array where Element == WorkerCore.Action {
  /// The messages sent, in order.
  fileprivate var sent: [WireEnvelope] {
    compactMap { if case .send(let envelope) = $0 { envelope } else { nil } }
  }
  fileprivate var types: [MessageType] { sent.map(\.type) }

  fileprivate func headers<H: Decodable>(_ type: MessageType, as: H.Type) throws -> [H] {
    try sent.filter { $0.type == type }.map { try $0.decode(H.self) }
  }

  fileprivate var loggedSeqs: [Int] {
    get throws {
      try headers(.logBatch, as: LogBatchMessage.self).flatMap { [Int]($0.firstSeq...$0.lastSeq) }
    }
  }

  /// The lines sent, read from the batches' payloads as the coordinator reads them.
  fileprivate var loggedLines: [LogLine] {
    get throws {
      try sent.filter { $0.type == .logBatch }.flatMap { envelope in
        let (message, chunk) = try envelope.decodeLogBatch()
        return chunk.lines(firstSeq: message.firstSeq)
      }
    }
  }

  fileprivate var forgotten: [AttemptRef] {
    compactMap { if case .forget(let ref) = $0 { ref } else { nil } }
  }

  fileprivate var reconnects: Int { filter { if case .reconnect = $0 { true } else { false } }.count }

  fileprivate var stops: [(ref: AttemptRef, stale: Bool)] {
    compactMap { if case .stopJob(let ref, _, let stale) = $0 { (ref, stale) } else { nil } }
  }
}

/// A worker core with a fake clock (interval 1 s, liveness 3: a 3 s window).
private struct Harness {
  var core: WorkerCore
  var now: Double = 100

  init() {
    core = WorkerCore(advert: advert, heartbeatInterval: 1, liveness: 3, now: 100)
  }

  mutating func take() -> [WorkerCore.Action] { core.takeActions() }

  @discardableResult
  mutating func receive<H: Encodable>(_ type: MessageType, _ header: H, payload: [Data] = [])
    -> [WorkerCore.Action]
  {
    core.received(WireEnvelope(type, header, payload: payload), now: now)
    return core.takeActions()
  }

  @discardableResult
  mutating func registered(stop: [AttemptRef] = []) -> [WorkerCore.Action] {
    receive(.registered, RegisteredMessage(heartbeatInterval: 1, liveness: 3, stopAttempts: stop))
  }

  @discardableResult
  mutating func tick(_ seconds: Double = 0) -> [WorkerCore.Action] {
    now += seconds
    core.tick(now: now)
    return core.takeActions()
  }

  /// Starts: register, registered, then an assignment for `ref`.
  mutating func running(_ ref: AttemptRef) -> AttemptRef {
    core.start(now: now)
    _ = take()
    registered()
    receive(.assign, AssignMessage(job: job(ref.jobID, attempt: ref.attempt)), payload: [bundle])
    return ref
  }

  /// A step of the attempt starts (at `time`, else now).
  mutating func step(
    _ ref: AttemptRef, _ index: Int, of count: Int, notification: String? = nil, at time: Double? = nil
  ) {
    core.progress(
      ref, state: .running, stepIndex: index, stepCount: count, locals: nil, notification: notification,
      now: time ?? now)
  }

  mutating func log(_ ref: AttemptRef, _ count: Int) {
    for i in 0..<count { core.log(ref, stream: .stdout, line: "line \(i)", time: now) }
  }
}

@Suite struct WorkerCoreTests {
  @Test func registersOnStart() throws {
    var h = Harness()
    h.core.start(now: h.now)
    let actions = h.take()
    #expect(actions.types == [.register])
    let register = try #require(try actions.headers(.register, as: RegisterMessage.self).first)
    #expect(register.worker == advert)
    #expect(register.activeAttempts == [])
    #expect(h.core.connection == .registering(since: 100))
    h.registered()
    #expect(h.core.connection == .registered)
  }

  @Test func assignStartsTheJobOnce() throws {
    var h = Harness()
    h.core.start(now: h.now)
    h.registered()
    let assign = AssignMessage(job: job("7"))
    let actions = h.receive(.assign, assign, payload: [bundle])
    #expect(actions.count == 1)
    guard case .startJob(let started, let data, _) = actions.first else {
      Issue.record("expected startJob, got \(actions)")
      return
    }
    #expect(started == job("7"))
    #expect(data == bundle)
    #expect(h.core.activeAttemptRefs == [AttemptRef(jobID: "7", attempt: 1)])
    // A repeated assign (resent after a reconnect) does not start it twice.
    #expect(h.receive(.assign, assign, payload: [bundle]).isEmpty)
    // An assign without its bundle frame is ignored.
    #expect(h.receive(.assign, AssignMessage(job: job("8"))).isEmpty)
  }

  @Test func logsAreBatchedAndKeptUntilAcknowledged() throws {
    var h = Harness()
    let ref = h.running(AttemptRef(jobID: "7", attempt: 1))
    h.log(ref, 3)
    #expect(h.take().isEmpty)  // batched, not one message per line
    let flushed = h.tick(0.1)
    #expect(try flushed.loggedSeqs == [1, 2, 3])
    let batch = try #require(try flushed.headers(.logBatch, as: LogBatchMessage.self).first)
    #expect(batch.workerID == "w-1")
    #expect(batch.jobID == "7")
    #expect(batch.attempt == 1)
    #expect(batch.firstSeq == 1 && batch.count == 3)
    #expect(try flushed.loggedLines.map(\.line) == ["line 0", "line 1", "line 2"])
    // Sent once; not again on the next tick.
    #expect(try h.tick(0.1).loggedSeqs == [])

    h.receive(.logAck, LogAckMessage(jobID: "7", attempt: 1, upTo: 2))
    #expect(h.core.attempts[ref]?.unacked.flatMap { Array($0.firstSeq...$0.lastSeq) } == [3])
    h.receive(.logAck, LogAckMessage(jobID: "7", attempt: 1, upTo: 3))
    #expect(h.core.attempts[ref]?.unacked.isEmpty == true)
  }

  @Test func chunksTakenWholeAreSentWholeAndAPartAckKeepsTheRest() throws {
    var h = Harness()
    let ref = h.running(AttemptRef(jobID: "7", attempt: 1))
    // What the agent takes from a job's output: one chunk of many lines.
    let chunk = LogChunk((1...6).map { (.stdout, 1, "l\($0)") })
    #expect(h.core.log(ref, chunk) == 1)
    #expect(h.core.log(ref, LogChunk([(.stderr, 2, "l7")])) == 7)
    let sent = h.tick(0.1)
    #expect(try sent.loggedSeqs == [1, 2, 3, 4, 5, 6, 7])
    #expect(try sent.loggedLines.map(\.line) == (1...7).map { "l\($0)" })
    #expect(try sent.loggedLines.last?.stream == .stderr)
    // The coordinator acknowledges part way into the first chunk (it held some lines
    // from before a reconnect): the rest is kept, and goes again after a reconnect.
    h.receive(.logAck, LogAckMessage(jobID: "7", attempt: 1, upTo: 4))
    let attempt = try #require(h.core.attempts[ref])
    #expect(attempt.unacked.map(\.firstSeq) == [5, 7])
    #expect(attempt.unackedLines == 3)
    #expect(attempt.unackedBytes == attempt.unacked.reduce(0) { $0 + $1.chunk.bytes.count })
    #expect(attempt.unacked[0].chunk.lines(firstSeq: 5).map(\.line) == ["l5", "l6"])
    #expect(try h.registered().loggedSeqs == [5, 6, 7])
    // An acknowledgement beyond what was sent (never from a sane coordinator) empties it.
    h.receive(.logAck, LogAckMessage(jobID: "7", attempt: 1, upTo: 99))
    #expect(h.core.attempts[ref]?.unacked.isEmpty == true)
    #expect(h.core.attempts[ref]?.unackedBytes == 0)
    #expect(h.core.attempts[ref]?.acked == 7)
  }

  @Test func fullBatchesGoOutWithoutWaitingForATick() throws {
    var h = Harness()
    let ref = h.running(AttemptRef(jobID: "7", attempt: 1))
    h.core.maxBatchLines = 4
    h.log(ref, 10)
    let batches = try h.take().headers(.logBatch, as: LogBatchMessage.self)
    #expect(batches.map { Array($0.firstSeq...$0.lastSeq) } == [[1, 2, 3, 4], [5, 6, 7, 8]])
    #expect(try h.tick(0.1).loggedSeqs == [9, 10])
  }

  @Test func aJobFasterThanTheCoordinatorWaitsBehindAWindow() throws {
    var h = Harness()
    let ref = h.running(AttemptRef(jobID: "7", attempt: 1))
    h.core.maxBatchLines = 4
    h.core.maxInFlightLines = 8
    h.log(ref, 20)
    // Two batches in flight, the rest held back.
    #expect(try h.take().loggedSeqs == Array(1...8))
    #expect(try h.tick(0.1).loggedSeqs == [])
    h.core.jobEnded(ref, state: .succeeded, exitCode: 0, error: nil, locals: nil, now: h.now)
    #expect(h.take().types.isEmpty, "the result waits until its log has gone out")
    // Each ack opens the window by what it acknowledged.
    #expect(
      try h.receive(.logAck, LogAckMessage(jobID: "7", attempt: 1, upTo: 4)).loggedSeqs == Array(9...12))
    #expect(
      try h.receive(.logAck, LogAckMessage(jobID: "7", attempt: 1, upTo: 12)).loggedSeqs == Array(13...20))
    // The last ack lets the result go at once, not at the next resend round.
    let last = h.receive(.logAck, LogAckMessage(jobID: "7", attempt: 1, upTo: 20))
    #expect(last.types == [.finished])
  }

  @Test func aStaleAttemptTakesNoMoreLinesAndIsForgottenAfterItsCleanup() throws {
    var h = Harness()
    let ref = h.running(AttemptRef(jobID: "7", attempt: 1))
    h.log(ref, 3)
    _ = h.take()
    h.receive(.stop, StopMessage(jobID: "7", attempt: 1, reason: "replaced", stale: true))
    // Lines its pipes still held when it was stopped go nowhere: nothing would send them.
    #expect(h.core.log(ref, stream: .stdout, line: "late", time: h.now) == nil)
    #expect(h.core.attempts[ref]?.unacked.isEmpty == true)
    h.core.jobEnded(ref, state: .cancelled, exitCode: nil, error: nil, locals: nil, now: h.now)
    h.core.cleanedUp(ref, state: .done, bytesFreed: 1, diskFreeAfter: 1, reason: nil)
    _ = h.take()
    let acked = h.receive(.reportAck, ReportAckMessage(jobID: "7", attempt: 1, kind: .cleanup))
    #expect(h.core.attempts[ref] == nil)
    #expect(acked.forgotten == [ref])
  }

  @Test func linesInFlightWithoutAnAckAreSentAgain() throws {
    var h = Harness()
    let ref = h.running(AttemptRef(jobID: "7", attempt: 1))
    h.core.maxBatchLines = 4
    h.core.maxInFlightLines = 8
    h.log(ref, 10)
    #expect(try h.take().loggedSeqs == Array(1...8))
    h.receive(.heartbeat, HeartbeatMessage(workerID: "w-1"))
    // Acks keep coming: nothing is resent.
    h.now += 1.5
    _ = h.receive(.logAck, LogAckMessage(jobID: "7", attempt: 1, upTo: 4))
    h.receive(.heartbeat, HeartbeatMessage(workerID: "w-1"))
    #expect(try h.tick(0.6).loggedSeqs.allSatisfy { $0 > 8 })
    // Then they stop (the batch or its ack was lost): the window goes again from its start.
    h.receive(.heartbeat, HeartbeatMessage(workerID: "w-1"))
    var resent: [Int] = []
    for _ in 0..<5 {
      resent += try h.tick(0.5).loggedSeqs
      h.receive(.heartbeat, HeartbeatMessage(workerID: "w-1"))
    }
    #expect(resent.first == 5)
    #expect(Set(resent) == Set(5...10))
  }

  @Test func unacknowledgedLinesAreResentOnceAfterReconnect() throws {
    var h = Harness()
    let ref = h.running(AttemptRef(jobID: "7", attempt: 1))
    h.log(ref, 5)
    #expect(try h.tick(0.1).loggedSeqs == [1, 2, 3, 4, 5])
    h.receive(.logAck, LogAckMessage(jobID: "7", attempt: 1, upTo: 2))
    h.log(ref, 2)  // 6, 7 — not yet sent

    // Nothing heard for longer than the window: reconnect and register again.
    let silent = h.tick(3.5)
    #expect(silent.reconnects == 1)
    #expect(silent.types == [.register])
    let register = try #require(try silent.headers(.register, as: RegisterMessage.self).first)
    #expect(register.activeAttempts == [ref])
    // While registering, nothing is sent.
    h.log(ref, 1)  // 8
    #expect(try h.tick(0.5).loggedSeqs == [])

    let resent = h.registered()
    #expect(try resent.loggedSeqs == [3, 4, 5, 6, 7, 8])
    // Each line once per resend: the next tick does not repeat them.
    #expect(try h.tick(0.1).loggedSeqs == [])
  }

  @Test func finishedGoesOutAfterTheLogsItEnds() throws {
    var h = Harness()
    let ref = h.running(AttemptRef(jobID: "7", attempt: 1))
    h.step(ref, 0, of: 1)
    h.log(ref, 2)
    let ticked = h.tick(0.1)
    #expect(ticked.types == [.logBatch, .progress])
    #expect(try ticked.loggedSeqs == [1, 2])
    h.log(ref, 1)
    h.core.jobEnded(ref, state: .succeeded, exitCode: 0, error: nil, locals: nil, now: h.now)
    let actions = h.take()
    // Lines in flight: the rest go as a batch, and the result after them, bare.
    #expect(actions.types == [.logBatch, .finished])
    #expect(try actions.loggedSeqs == [3])
    let finished = try #require(try actions.headers(.finished, as: FinishedMessage.self).first)
    #expect(finished.lastLogSeq == 3)
    #expect(finished.tail == nil)
    // Its step report went with the tick, not again inside the result.
    #expect(finished.progress == nil)
    #expect(finished.state == .succeeded)
    #expect(finished.attempt == 1)
    // It went out once: the ack of the lines before it does not send it again.
    #expect(h.receive(.logAck, LogAckMessage(jobID: "7", attempt: 1, upTo: 3)).types.isEmpty)
  }

  @Test func aStepReportWaitsForTheNextTick() throws {
    var h = Harness()
    let ref = h.running(AttemptRef(jobID: "7", attempt: 1))
    h.step(ref, 0, of: 2)
    h.step(ref, 1, of: 2)
    #expect(h.take().isEmpty)
    // Only the latest goes, once.
    let ticked = h.tick(0.05)
    let reports = try ticked.headers(.progress, as: ProgressMessage.self)
    #expect(reports.map(\.stepIndex) == [1])
    #expect(h.tick(0.05).types.isEmpty)
    // Having said it runs, its result brings no step report.
    h.core.jobEnded(ref, state: .succeeded, exitCode: 0, error: nil, locals: nil, now: h.now)
    let finished = try #require(try h.take().headers(.finished, as: FinishedMessage.self).first)
    #expect(finished.progress == nil)
  }

  @Test func aJobEndingBeforeTheTickCarriesItsStepReportInItsResult() throws {
    var h = Harness()
    let ref = h.running(AttemptRef(jobID: "7", attempt: 1))
    h.step(ref, 0, of: 1, at: 100.5)
    h.log(ref, 1)
    h.core.jobEnded(ref, state: .succeeded, exitCode: 0, error: nil, locals: nil, now: 100.75)
    let actions = h.take()
    #expect(actions.types == [.finished])
    let finished = try #require(try actions.headers(.finished, as: FinishedMessage.self).first)
    #expect(finished.progress == WithheldProgress(stepIndex: 0, stepCount: 1, runningFor: 0.25))
    // Nothing is left to say that it ran.
    #expect(h.tick(0.05).types.isEmpty)
  }

  @Test func aNotificationOrServingGoesAtOnce() throws {
    var h = Harness()
    let ref = h.running(AttemptRef(jobID: "7", attempt: 1))
    h.step(ref, 0, of: 1)
    h.step(ref, 0, of: 1, notification: "model loaded")
    let notified = try h.take().headers(.progress, as: ProgressMessage.self)
    #expect(notified.map(\.notification) == ["model loaded"])
    h.core.progress(
      ref, state: .serving, stepIndex: 1, stepCount: 1, locals: nil, notification: nil, now: h.now)
    #expect(try h.take().headers(.progress, as: ProgressMessage.self).map(\.state) == [.serving])
    #expect(h.tick(0.05).types.isEmpty)
  }

  @Test func aLogWithNothingInFlightGoesInsideItsResult() throws {
    var h = Harness()
    let ref = h.running(AttemptRef(jobID: "7", attempt: 1))
    // Just before the periodic resend, long after the attempt's last ack (none yet).
    h.tick(1.9)
    h.log(ref, 2)
    h.core.jobEnded(ref, state: .succeeded, exitCode: 0, error: nil, locals: nil, now: h.now)
    h.core.cleanedUp(ref, state: .done, bytesFreed: 10, diskFreeAfter: 1, reason: nil)
    let actions = h.take()
    #expect(actions.types == [.finished, .cleanup])
    let (finished, tail) = try actions.sent[0].decodeFinished()
    #expect(finished.lastLogSeq == 2)
    #expect(finished.tail == LogTail(firstSeq: 1, count: 2))
    #expect(tail?.lines(firstSeq: 1).map(\.line) == ["line 0", "line 1"])
    // Counted as sent, and waiting for their ack from now: the resend does not take
    // them for lines whose ack stopped coming.
    #expect(try h.tick(0.1).loggedSeqs == [])

    // The result's ack says the lines are stored; with the cleanup's, the attempt is done.
    h.receive(.reportAck, ReportAckMessage(jobID: "7", attempt: 1, kind: .finished, logUpTo: 2))
    #expect(h.core.attempts[ref]?.unackedLines == 0)
    #expect(
      h.receive(.reportAck, ReportAckMessage(jobID: "7", attempt: 1, kind: .cleanup)).forgotten == [ref])
  }

  @Test func aTailLostWithTheConnectionGoesAgainAsBatches() throws {
    var h = Harness()
    let ref = h.running(AttemptRef(jobID: "7", attempt: 1))
    h.log(ref, 2)
    h.core.jobEnded(ref, state: .succeeded, exitCode: 0, error: nil, locals: nil, now: h.now)
    #expect(h.take().types == [.finished])
    #expect(h.tick(3.5).reconnects == 1)
    let resent = h.registered()
    // Lines first, then the result; the coordinator drops the tail's repeat by number.
    #expect(resent.types == [.logBatch, .finished])
    #expect(try resent.loggedSeqs == [1, 2])
  }

  @Test func aLogLargerThanABatchDoesNotRideInTheResult() throws {
    var h = Harness()
    h.core.maxBatchLines = 4
    let ref = h.running(AttemptRef(jobID: "7", attempt: 1))
    h.log(ref, 3)
    h.core.log(ref, LogChunk((0..<2).map { (.stdout, h.now, "more \($0)") }))
    h.core.jobEnded(ref, state: .succeeded, exitCode: 0, error: nil, locals: nil, now: h.now)
    let actions = h.take()
    #expect(try actions.headers(.finished, as: FinishedMessage.self).map(\.tail) == [nil])
    #expect(try actions.loggedSeqs == [1, 2, 3, 4, 5])
  }

  @Test func reportAcksLetTheAttemptBeForgotten() throws {
    var h = Harness()
    let ref = h.running(AttemptRef(jobID: "7", attempt: 1))
    h.log(ref, 1)
    h.core.jobEnded(ref, state: .failed, exitCode: 1, error: "exit 1", locals: nil, now: h.now)
    h.core.cleanedUp(ref, state: .done, bytesFreed: 10, diskFreeAfter: 99 * GB, reason: nil)
    let sent = h.take()
    #expect(sent.types == [.finished, .cleanup])
    #expect(h.core.advert.diskFree == 99 * GB)

    h.receive(.reportAck, ReportAckMessage(jobID: "7", attempt: 1, kind: .finished))
    #expect(h.core.attempts[ref] != nil)
    // A finished result that was acknowledged no longer counts as active.
    #expect(h.core.activeAttemptRefs == [])
    let cleanupAcked = h.receive(.reportAck, ReportAckMessage(jobID: "7", attempt: 1, kind: .cleanup))
    #expect(h.core.attempts[ref] != nil)  // a log line is still unacknowledged
    #expect(cleanupAcked.forgotten.isEmpty)
    let lastAck = h.receive(.logAck, LogAckMessage(jobID: "7", attempt: 1, upTo: 1))
    #expect(h.core.attempts[ref] == nil)
    // Told once, when the last acknowledgement lets the attempt go: its spool can go.
    #expect(lastAck.forgotten == [ref])
    // Acks for attempts it no longer knows are ignored.
    #expect(h.receive(.reportAck, ReportAckMessage(jobID: "7", attempt: 1, kind: .finished)).isEmpty)
  }

  @Test func unacknowledgedReportsAreResent() throws {
    var h = Harness()
    let ref = h.running(AttemptRef(jobID: "7", attempt: 1))
    h.core.jobEnded(ref, state: .succeeded, exitCode: 0, error: nil, locals: nil, now: h.now)
    h.core.cleanedUp(ref, state: .done, bytesFreed: 10, diskFreeAfter: 1, reason: nil)
    _ = h.take()
    h.receive(.heartbeat, HeartbeatMessage(workerID: "w-1"))
    let later = h.tick(2.1)
    #expect(later.types.contains(.finished))
    #expect(later.types.contains(.cleanup))
    // After a reconnect, too, in order: logs, then results.
    h.tick(3.5)
    let resent = h.registered()
    #expect(resent.types == [.finished, .cleanup])
  }

  @Test func resultsHeldWhileRegisteringGoOutOnRegistration() throws {
    var h = Harness()
    let ref = h.running(AttemptRef(jobID: "7", attempt: 1))
    h.receive(.reregister, ReregisterMessage(reason: "coordinator restarted"))
    #expect(h.core.connection == .registering(since: h.now))
    h.step(ref, 1, of: 2)
    h.log(ref, 2)
    #expect(h.take().isEmpty)
    let resent = h.registered()
    #expect(resent.types == [.logBatch, .progress])
    h.core.jobEnded(ref, state: .succeeded, exitCode: 0, error: nil, locals: nil, now: h.now)
    #expect(h.take().types == [.finished])
  }

  @Test func staleStopEndsTheAttemptWithoutAResult() throws {
    var h = Harness()
    let ref = h.running(AttemptRef(jobID: "7", attempt: 1))
    h.log(ref, 3)
    let stop = h.receive(.stop, StopMessage(jobID: "7", attempt: 1, reason: "replaced", stale: true))
    #expect(stop.stops.map(\.ref) == [ref])
    #expect(stop.stops.first?.stale == true)
    #expect(h.core.activeAttemptRefs == [])
    // Its log and result are dropped; only its cleanup is reported.
    #expect(try h.tick(0.1).loggedSeqs == [])
    h.core.jobEnded(ref, state: .failed, exitCode: 143, error: "killed", locals: nil, now: h.now)
    #expect(h.take().types == [])
    h.core.cleanedUp(ref, state: .done, bytesFreed: 1, diskFreeAfter: 1, reason: nil)
    #expect(h.take().types == [.cleanup])
    h.receive(.reportAck, ReportAckMessage(jobID: "7", attempt: 1, kind: .cleanup))
    #expect(h.core.attempts[ref] == nil)
  }

  @Test func nonStaleStopAsksForTheJobToEnd() {
    var h = Harness()
    let ref = h.running(AttemptRef(jobID: "7", attempt: 1))
    let stop = h.receive(.stop, StopMessage(jobID: "7", attempt: 1, reason: "cancelled", stale: false))
    #expect(stop.stops.map(\.ref) == [ref])
    #expect(stop.stops.first?.stale == false)
    #expect(h.core.activeAttemptRefs == [ref])
    // A stop for an attempt it does not run is ignored.
    #expect(h.receive(.stop, StopMessage(jobID: "9", attempt: 1, reason: "x", stale: false)).isEmpty)
    #expect(h.receive(.stop, StopMessage(jobID: "9", attempt: 1, reason: "x", stale: true)).isEmpty)
  }

  @Test func registrationCanStopStaleAttempts() throws {
    var h = Harness()
    let ref = h.running(AttemptRef(jobID: "7", attempt: 1))
    h.log(ref, 2)
    h.tick(3.5)
    let resent = h.registered(stop: [ref])
    #expect(resent.stops.map(\.ref) == [ref])
    #expect(try resent.loggedSeqs == [])
  }

  @Test func heartbeatsAreSentEachInterval() throws {
    var h = Harness()
    h.core.start(now: h.now)
    h.registered()
    _ = h.take()
    var beats = 0
    for _ in 0..<10 {
      let actions = h.tick(0.5)
      beats += actions.types.filter { $0 == .heartbeat }.count
      h.receive(.heartbeat, HeartbeatMessage(workerID: "w-1"))
    }
    #expect(beats == 5)
    let beat = try #require(try h.tick(1).headers(.heartbeat, as: HeartbeatMessage.self).first)
    #expect(beat.workerID == "w-1")
    #expect(beat.diskFree == advert.diskFree)
  }

  @Test func reconnectOnlyAfterTheLivenessWindow() {
    var h = Harness()
    h.core.start(now: h.now)
    h.registered()
    #expect(h.tick(3).reconnects == 0)
    #expect(h.tick(0.01).reconnects == 1)
    #expect(h.core.connection == .registering(since: h.now))
  }

  @Test func unansweredRegistrationIsRetriedOnAFreshSocketWithBackoff() {
    var h = Harness()
    h.core.start(now: h.now)
    _ = h.take()
    let first = h.core.registerRetryDelay
    // Jittered around 2 s: between 1 and 3 s.
    #expect(first >= 1 && first < 3)
    #expect(h.tick(first - 0.01).isEmpty)
    let retry = h.tick(0.02)
    #expect(retry.reconnects == 1)
    #expect(retry.types == [.register])
    // It does not hammer: the next try waits longer (about 4 s, jittered).
    let second = h.core.registerRetryDelay
    #expect(second >= 2 && second < 6)
    #expect(h.tick(second - 0.05).isEmpty)
    #expect(h.tick(0.1).reconnects == 1)
    // And never more than 30 s (×1.5 jitter) however long the coordinator stays away.
    for _ in 0..<10 { _ = h.tick(h.core.registerRetryDelay + 0.01) }
    #expect(h.core.registerRetryDelay < 45)
  }

  @Test func registeredAdoptsTheCoordinatorsTiming() {
    var h = Harness()
    h.core.start(now: h.now)
    h.receive(.registered, RegisteredMessage(heartbeatInterval: 10, liveness: 2, stopAttempts: []))
    #expect(h.core.heartbeatInterval == 10)
    #expect(h.core.liveness == 2)
    #expect(h.core.livenessWindow == 20)
    #expect(h.tick(19).reconnects == 0)
    #expect(h.tick(2).reconnects == 1)
  }

  @Test func undecodableMessagesAreIgnored() {
    var h = Harness()
    h.core.start(now: h.now)
    _ = h.take()
    h.core.received(WireEnvelope(type: .registered, header: Data("{oops".utf8)), now: h.now)
    h.core.received(WireEnvelope(type: .logAck, header: Data("[]".utf8)), now: h.now)
    h.core.received(WireEnvelope(type: .error, header: Data("{}".utf8)), now: h.now)
    #expect(h.take().isEmpty)
    #expect(h.core.connection == .registering(since: 100))
  }
}
