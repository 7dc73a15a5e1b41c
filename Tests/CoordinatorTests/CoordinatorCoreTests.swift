import Foundation
import Testing

@testable import Coordinator
@testable import Shared

private let GB: Int64 = 1_000_000_000

// MARK: - Reading what the core asked for

extension Array where Element == CoordinatorAction {
  fileprivate var changes: [StoreChange] {
    compactMap { if case .store(let change) = $0 { change } else { nil } }
  }

  fileprivate func sent(_ type: MessageType) -> [(peer: [UInt8], envelope: WireEnvelope)] {
    compactMap {
      if case .send(let peer, let envelope) = $0, envelope.type == type { (peer, envelope) } else { nil }
    }
  }

  fileprivate func headers<H: Decodable>(_ type: MessageType, as: H.Type) throws -> [H] {
    try sent(type).map { try $0.envelope.decode(H.self) }
  }

  fileprivate var assigns: [(peer: [UInt8], jobID: Int64, attempt: Int, gpus: [Int])] {
    compactMap {
      if case .assign(let peer, let jobID, let attempt, let gpus) = $0 {
        (peer, jobID, attempt, gpus)
      } else {
        nil
      }
    }
  }
}

extension Array where Element == StoreChange {
  fileprivate var inserted: [NewJobRow] {
    flatMap { change -> [NewJobRow] in if case .insertJobs(let rows, _, _) = change { rows } else { [] } }
  }
  fileprivate var assigned: [(id: Int64, attempt: Int, workerID: String, gpus: [Int])] {
    compactMap {
      if case .jobAssigned(let id, let attempt, let workerID, _, let gpus, _) = $0 {
        (id, attempt, workerID, gpus)
      } else {
        nil
      }
    }
  }
  fileprivate var progress: [(id: Int64, state: JobState?, step: Int, count: Int)] {
    compactMap {
      if case .jobProgress(let id, let state, let step, let count, _, _) = $0 {
        (id, state, step, count)
      } else {
        nil
      }
    }
  }
  fileprivate var finished: [(id: Int64, attempt: Int, state: JobState, exitCode: Int32?, error: String?)] {
    compactMap {
      if case .jobFinished(let id, let attempt, let state, let exitCode, let error, _, _, _) = $0 {
        (id, attempt, state, exitCode, error)
      } else {
        nil
      }
    }
  }
  fileprivate var requeued: [(id: Int64, attempt: Int, failures: Int, lostCount: Int, reason: String)] {
    compactMap {
      if case .jobRequeued(let id, let attempt, let failures, let lostCount, let reason, _) = $0 {
        (id, attempt, failures, lostCount, reason)
      } else {
        nil
      }
    }
  }
  fileprivate var attemptsEnded: [(id: Int64, attempt: Int, state: JobState, error: String?)] {
    compactMap {
      if case .attemptEnded(let id, let attempt, let state, let error, _) = $0 {
        (id, attempt, state, error)
      } else {
        nil
      }
    }
  }
  fileprivate var logs: [(jobID: Int64, attempt: Int, firstJobSeq: Int, seqs: [Int])] {
    compactMap {
      if case .appendLogChunk(let jobID, let attempt, let first, let firstWorkerSeq, let chunk) = $0 {
        (jobID, attempt, first, [Int](firstWorkerSeq..<firstWorkerSeq + chunk.count))
      } else {
        nil
      }
    }
  }
  fileprivate var cleanups: [(id: Int64, attempt: Int, state: CleanupState, bytesFreed: Int64?)] {
    compactMap {
      if case .jobCleanup(let id, let attempt, let state, let bytes, _, _) = $0 {
        (id, attempt, state, bytes)
      } else {
        nil
      }
    }
  }
  fileprivate var workerStates: [(id: String, state: WorkerState, drained: Bool)] {
    compactMap {
      if case .workerState(let id, let state, let drained, _) = $0 { (id, state, drained) } else { nil }
    }
  }
  fileprivate var upserts: [(advert: WorkerAdvert, state: WorkerState)] {
    compactMap { if case .upsertWorker(let advert, let state, _, _) = $0 { (advert, state) } else { nil } }
  }
}

// MARK: - A core with a fake clock

private func gpu(_ index: Int, _ vramGB: Int64) -> GPU {
  GPU(index: index, vendor: .nvidia, model: "card", vramTotal: vramGB * GB, vramFree: vramGB * GB)
}

private func advert(
  _ name: String, gpus: [GPU] = [], slots: Int = 1, disk: Int64 = 500 * GB, labels: [String: String] = [:]
) -> WorkerAdvert {
  WorkerAdvert(
    id: "w-\(name)", name: name,
    host: HostInfo(cpuCores: 4, memoryTotal: 32 * GB, platform: "linux", arch: "x64", hostname: name),
    gpus: gpus, diskFree: disk, slots: slots, labels: labels)
}

private func peer(_ advert: WorkerAdvert) -> [UInt8] { Array("peer-\(advert.name)".utf8) }
private let clientPeer: [UInt8] = Array("client".utf8)

private struct Harness {
  var core: CoordinatorCore
  var now: Double = 1_000

  init(
    settings: CoordinatorSettings = CoordinatorSettings(heartbeatInterval: 5, liveness: 6, maxLostRequeues: 3)
  ) {
    core = CoordinatorCore(settings: settings)
  }

  mutating func advance(_ seconds: Double) { now += seconds }

  @discardableResult
  mutating func register(_ worker: WorkerAdvert, active: [AttemptRef] = []) -> [CoordinatorAction] {
    core.register(
      peer: peer(worker), message: RegisterMessage(worker: worker, activeAttempts: active), now: now)
    return core.takeActions()
  }

  @discardableResult
  mutating func heartbeat(
    _ worker: WorkerAdvert, diskFree: Int64? = nil, active: [AttemptRef]? = nil
  ) -> [CoordinatorAction] {
    core.heartbeat(
      peer: peer(worker),
      message: HeartbeatMessage(workerID: worker.id, diskFree: diskFree, activeAttempts: active), now: now)
    return core.takeActions()
  }

  mutating func submit(
    _ name: String = "job", requirements: Requirements = Requirements(), priority: Int = 0, retries: Int = 0,
    timeout: Double? = nil, args: JSONValue = .object(JSONObject()), array: [Int]? = nil
  ) throws -> (ids: [Int64], actions: [CoordinatorAction]) {
    let request = SubmitRequest(
      requestID: "r-\(name)", name: name, entry: "run.json", args: args, requirements: requirements,
      priority: priority, retries: retries, timeoutSeconds: timeout, artifacts: [], arrayIndices: array)
    core.submit(peer: clientPeer, request: request, bundleHash: "hash", bundle: [1, 2, 3], now: now)
    let actions = core.takeActions()
    let replies = try actions.headers(.reply, as: Reply<SubmitReply>.self)
    #expect(replies.count == 1)
    #expect(replies.first?.requestID == "r-\(name)")
    #expect(replies.first?.result.id == replies.first?.result.ids.first)
    return ((replies.first?.result.ids ?? []).compactMap { Int64($0) }, actions)
  }

  @discardableResult
  mutating func schedule() -> [CoordinatorAction] {
    core.schedule(now: now)
    return core.takeActions()
  }

  @discardableResult
  mutating func tick() -> [CoordinatorAction] {
    core.tick(now: now)
    return core.takeActions()
  }

  @discardableResult
  mutating func progress(
    _ worker: WorkerAdvert, _ jobID: Int64, attempt: Int, state: JobState = .running, step: Int = 0,
    notification: String? = nil
  ) -> [CoordinatorAction] {
    core.progress(
      peer: peer(worker),
      message: ProgressMessage(
        workerID: worker.id, jobID: String(jobID), attempt: attempt, state: state, stepIndex: step,
        stepCount: 3,
        notification: notification), now: now)
    return core.takeActions()
  }

  @discardableResult
  mutating func finish(
    _ worker: WorkerAdvert, _ jobID: Int64, attempt: Int, state: JobState = .succeeded, exitCode: Int32? = 0,
    error: String? = nil, progress: WithheldProgress? = nil
  ) -> [CoordinatorAction] {
    core.finished(
      peer: peer(worker),
      message: FinishedMessage(
        workerID: worker.id, jobID: String(jobID), attempt: attempt, state: state, exitCode: exitCode,
        error: error, locals: nil, lastLogSeq: 0, progress: progress), now: now)
    return core.takeActions()
  }

  @discardableResult
  mutating func cleanup(_ worker: WorkerAdvert, _ jobID: Int64, attempt: Int, freed: Int64 = 1_000)
    -> [CoordinatorAction]
  {
    core.cleanup(
      peer: peer(worker),
      message: CleanupMessage(
        workerID: worker.id, jobID: String(jobID), attempt: attempt, state: .done, bytesFreed: freed,
        diskFreeAfter: worker.diskFree, reason: nil), now: now)
    return core.takeActions()
  }

  @discardableResult
  mutating func logs(_ worker: WorkerAdvert, _ jobID: Int64, attempt: Int, seqs: ClosedRange<Int>)
    -> [CoordinatorAction]
  {
    let chunk = LogChunk(seqs.map { (.stdout, now, "line \($0)") })
    core.logBatch(
      peer: peer(worker),
      message: LogBatchMessage(
        workerID: worker.id, jobID: String(jobID), attempt: attempt, firstSeq: seqs.lowerBound,
        count: seqs.count),
      chunk: chunk, now: now)
    return core.takeActions()
  }

  @discardableResult
  mutating func cancel(_ ids: [Int64]) -> [CoordinatorAction] {
    core.cancel(
      peer: clientPeer, request: CancelRequest(requestID: "c", jobIDs: ids.map(String.init)), now: now)
    return core.takeActions()
  }

  @discardableResult
  mutating func drain(_ name: String, _ drained: Bool = true) -> [CoordinatorAction] {
    core.setDrained(
      peer: clientPeer, request: DrainRequest(requestID: "d", worker: name), drained: drained, now: now)
    return core.takeActions()
  }
}

// MARK: - Tests

@Suite struct CoordinatorCoreTests {
  @Test func registerSubmitScheduleAssigns() throws {
    var h = Harness()
    let box = advert("gpu-box", gpus: [gpu(0, 80), gpu(1, 24)])
    let registration = h.register(box)
    #expect(registration.changes.upserts.map(\.advert.id) == [box.id])
    #expect(registration.changes.upserts.first?.state == .online)
    let registered = try registration.headers(.registered, as: RegisteredMessage.self)
    #expect(registered.count == 1)
    #expect(registration.sent(.registered).first?.peer == peer(box))
    #expect(registered.first?.heartbeatInterval == 5)
    #expect(registered.first?.liveness == 6)
    #expect(registered.first?.stopAttempts == [])

    let (ids, submitted) = try h.submit("render", requirements: Requirements(vram: 20 * GB))
    #expect(ids == [1])
    #expect(submitted.changes.inserted.map(\.id) == [1])
    #expect(submitted.sent(.reply).first?.peer == clientPeer)
    #expect(h.core.jobs[1]?.state == .queued)
    #expect(h.core.waitReason(jobID: 1) == "waiting for a free slot on gpu-box")

    let scheduled = h.schedule()
    #expect(scheduled.assigns.count == 1)
    #expect(scheduled.assigns.first?.peer == peer(box))
    #expect(scheduled.assigns.first?.jobID == 1)
    #expect(scheduled.assigns.first?.attempt == 1)
    #expect(scheduled.assigns.first?.gpus == [1])
    #expect(scheduled.changes.assigned.first?.workerID == box.id)
    #expect(scheduled.changes.assigned.first?.attempt == 1)
    #expect(h.core.jobs[1]?.state == .assigned)
    #expect(h.core.waitReason(jobID: 1) == nil)
    #expect(h.schedule().isEmpty)
  }

  @Test func nothingIsScheduledWithoutWorkers() throws {
    var h = Harness()
    _ = try h.submit()
    #expect(h.schedule().isEmpty)
    #expect(h.core.waitReason(jobID: 1) == "no worker is online")
  }

  @Test func progressFinishedCleanupFlow() throws {
    var h = Harness()
    let box = advert("box")
    h.register(box)
    _ = try h.submit()
    h.schedule()

    let running = h.progress(box, 1, attempt: 1, state: .running, step: 0, notification: "hello")
    #expect(running.changes.progress.first?.state == .running)
    #expect(running.changes.progress.first?.count == 3)
    #expect(
      running.changes.contains {
        if case .jobNotification(1, "hello") = $0 { true } else { false }
      })
    #expect(h.core.jobs[1]?.state == .running)
    #expect(h.core.jobs[1]?.startedAt == h.now)
    h.advance(1)
    let step = h.progress(box, 1, attempt: 1, state: .running, step: 2)
    #expect(step.changes.progress.count == 1)
    #expect(step.changes.progress.first?.state == nil)
    #expect(step.changes.progress.first?.step == 2)

    let done = h.finish(box, 1, attempt: 1, state: .succeeded, exitCode: 0)
    #expect(done.changes.finished.count == 1)
    #expect(done.changes.finished.first?.state == .succeeded)
    #expect(done.changes.finished.first?.exitCode == 0)
    let acks = try done.headers(.reportAck, as: ReportAckMessage.self)
    #expect(acks.map(\.kind) == [.finished])
    #expect(acks.first?.attempt == 1)
    // Still tracked: the worker owes the cleanup report.
    #expect(h.core.jobs[1]?.state == .succeeded)

    let cleaned = h.cleanup(box, 1, attempt: 1, freed: 4_096)
    #expect(cleaned.changes.cleanups.count == 1)
    #expect(cleaned.changes.cleanups.first?.state == .done)
    #expect(cleaned.changes.cleanups.first?.bytesFreed == 4_096)
    #expect(try cleaned.headers(.reportAck, as: ReportAckMessage.self).map(\.kind) == [.cleanup])
    #expect(h.core.jobs[1] == nil)
    #expect(h.core.logCursor(jobID: 1) == nil)
    #expect(h.core.workers[box.id]?.holdings.isEmpty == true)
  }

  @Test func aResultWithItsStepReportDatesTheStart() throws {
    var h = Harness()
    let box = advert("box", slots: 2)
    h.register(box)
    _ = try h.submit(array: [1, 2])
    h.schedule()
    // No report said it ran: it started `runningFor` before its result came.
    h.advance(2)
    let short = h.finish(
      box, 1, attempt: 1, progress: WithheldProgress(stepIndex: 0, stepCount: 1, runningFor: 0.5))
    let started = short.changes.compactMap {
      if case .jobFinished(1, _, .succeeded, _, _, _, _, let started) = $0 { started } else { nil }
    }
    #expect(started == [StartedRecord(startedAt: h.now - 0.5, stepIndex: 0, stepCount: 1)])
    #expect(h.core.jobs[1]?.startedAt == h.now - 0.5)
    // One that said so keeps its start; only where it stood is taken.
    h.progress(box, 2, attempt: 1, state: .running, step: 0)
    let reported = h.now
    h.advance(1)
    let long = h.finish(
      box, 2, attempt: 1, progress: WithheldProgress(stepIndex: 2, stepCount: 3, runningFor: nil))
    let kept = long.changes.compactMap {
      if case .jobFinished(2, _, .succeeded, _, _, _, _, let started) = $0 { started } else { nil }
    }
    #expect(kept == [StartedRecord(startedAt: nil, stepIndex: 2, stepCount: 3)])
    #expect(h.core.jobs[2]?.startedAt == reported)
  }

  @Test func slotIsHeldUntilCleanup() throws {
    var h = Harness()
    let box = advert("box", slots: 1)
    h.register(box)
    _ = try h.submit("a")
    h.schedule()
    h.finish(box, 1, attempt: 1)
    _ = try h.submit("b")
    #expect(h.schedule().assigns.isEmpty)
    #expect(h.core.workerViews().first?.running == 0)
    h.cleanup(box, 1, attempt: 1)
    #expect(h.schedule().assigns.map(\.jobID) == [2])
  }

  @Test func gpuIsHeldUntilCleanup() throws {
    var h = Harness()
    let box = advert("box", gpus: [gpu(0, 24)], slots: 3)
    h.register(box)
    _ = try h.submit("a", requirements: Requirements(gpus: 1))
    #expect(h.schedule().assigns.first?.gpus == [0])
    h.progress(box, 1, attempt: 1)
    h.finish(box, 1, attempt: 1)
    _ = try h.submit("b", requirements: Requirements(gpus: 1))
    _ = try h.submit("c")
    // The GPU may still hold memory until the workspace is gone; the CPU job fits.
    #expect(h.schedule().assigns.map(\.jobID) == [3])
    h.cleanup(box, 1, attempt: 1)
    let later = h.schedule()
    #expect(later.assigns.map(\.jobID) == [2])
    #expect(later.assigns.first?.gpus == [0])
  }

  @Test func cleanupReportsFreeDisk() throws {
    var h = Harness()
    var box = advert("box", disk: 100 * GB)
    h.register(box)
    _ = try h.submit("a", requirements: Requirements(disk: 60 * GB))
    h.schedule()
    #expect(h.core.workers[box.id]?.capacity.diskFree == 40 * GB)
    h.finish(box, 1, attempt: 1)
    box.diskFree = 90 * GB
    h.cleanup(box, 1, attempt: 1)
    #expect(h.core.workers[box.id]?.capacity.diskFree == 90 * GB)
  }

  @Test func logBatchesAreStoredOnceWithJobWideSeq() throws {
    var h = Harness()
    let box = advert("box", slots: 2)
    h.register(box)
    _ = try h.submit(retries: 1)
    h.schedule()

    let first = h.logs(box, 1, attempt: 1, seqs: 1...3)
    #expect(first.changes.logs.count == 1)
    #expect(first.changes.logs.first?.firstJobSeq == 1)
    #expect(first.changes.logs.first?.seqs == [1, 2, 3])
    #expect(try first.headers(.logAck, as: LogAckMessage.self).map(\.upTo) == [3])

    // After a reconnect the worker resends from its oldest unacknowledged line.
    let resent = h.logs(box, 1, attempt: 1, seqs: 1...5)
    #expect(resent.changes.logs.count == 1)
    #expect(resent.changes.logs.first?.firstJobSeq == 4)
    #expect(resent.changes.logs.first?.seqs == [4, 5])
    #expect(try resent.headers(.logAck, as: LogAckMessage.self).map(\.upTo) == [5])

    let duplicate = h.logs(box, 1, attempt: 1, seqs: 2...5)
    #expect(duplicate.changes.logs.isEmpty)
    #expect(try duplicate.headers(.logAck, as: LogAckMessage.self).map(\.upTo) == [5])
    #expect(h.core.logCursor(jobID: 1) == CoordinatorCore.LogCursor(attempt: 1, workerSeq: 5, jobSeq: 5))

    // The attempt fails and is retried: the new attempt numbers from 1 again, the
    // job-wide sequence carries on.
    h.finish(box, 1, attempt: 1, state: .failed, exitCode: 1, error: "exit 1")
    #expect(h.schedule().assigns.first?.attempt == 2)
    let second = h.logs(box, 1, attempt: 2, seqs: 1...2)
    #expect(second.changes.logs.first?.attempt == 2)
    #expect(second.changes.logs.first?.firstJobSeq == 6)
    #expect(second.changes.logs.first?.seqs == [1, 2])
    #expect(h.core.logCursor(jobID: 1) == CoordinatorCore.LogCursor(attempt: 2, workerSeq: 2, jobSeq: 7))

    // A late resend from attempt 1 is acknowledged but not stored, and attempt 1 is stopped.
    let late = h.logs(box, 1, attempt: 1, seqs: 1...6)
    #expect(late.changes.logs.isEmpty)
    #expect(try late.headers(.logAck, as: LogAckMessage.self).first?.attempt == 1)
    let stop = try late.headers(.stop, as: StopMessage.self)
    #expect(stop.count == 1)
    #expect(stop.first?.stale == true)
    #expect(stop.first?.attempt == 1)
  }

  @Test func logsOfAFinishedAndForgottenJobAreAcknowledged() throws {
    var h = Harness()
    let box = advert("box")
    h.register(box)
    let acts = h.logs(box, 42, attempt: 1, seqs: 1...4)
    #expect(acts.changes.isEmpty)
    #expect(try acts.headers(.logAck, as: LogAckMessage.self).map(\.upTo) == [4])
  }

  @Test func messagesFromAReplacedAttemptAreRefused() throws {
    var h = Harness()
    let a = advert("a-box")
    let b = advert("b-box")
    h.register(a)
    h.register(b)
    _ = try h.submit()
    #expect(h.schedule().assigns.first?.peer == peer(a))
    h.progress(a, 1, attempt: 1)

    // a-box goes silent; b-box keeps beating.
    h.advance(20)
    h.heartbeat(b)
    h.advance(11)
    h.heartbeat(b)
    let tick = h.tick()
    #expect(tick.changes.workerStates.map(\.id) == [a.id])
    #expect(tick.changes.attemptsEnded.first?.state == .lost)
    #expect(tick.changes.requeued.first?.lostCount == 1)
    let reassigned = h.schedule()
    #expect(reassigned.assigns.first?.peer == peer(b))
    #expect(reassigned.assigns.first?.attempt == 2)

    // a-box wakes up and speaks about attempt 1: as an offline worker it must register first.
    let early = h.progress(a, 1, attempt: 1)
    #expect(early.sent(.reregister).count == 1)
    #expect(early.changes.isEmpty)
    let back = h.register(a, active: [AttemptRef(jobID: "1", attempt: 1)])
    #expect(
      try back.headers(.registered, as: RegisteredMessage.self).first?.stopAttempts == [
        AttemptRef(jobID: "1", attempt: 1)
      ])
    #expect(back.changes.requeued.isEmpty)

    let stale = h.progress(a, 1, attempt: 1)
    #expect(stale.changes.isEmpty)
    let stop = try stale.headers(.stop, as: StopMessage.self)
    #expect(stop.first?.stale == true)
    #expect(stop.first?.attempt == 1)
    #expect(stale.sent(.stop).first?.peer == peer(a))

    let staleFinish = h.finish(a, 1, attempt: 1, state: .succeeded)
    #expect(staleFinish.changes.isEmpty)
    #expect(try staleFinish.headers(.stop, as: StopMessage.self).first?.stale == true)
    #expect(try staleFinish.headers(.reportAck, as: ReportAckMessage.self).count == 1)
    #expect(h.core.jobs[1]?.attempt == 2)
    #expect(h.core.jobs[1]?.state == .assigned)
    #expect(h.core.jobs[1]?.workerID == b.id)

    // The current attempt still reports normally.
    let good = h.finish(b, 1, attempt: 2, state: .succeeded)
    #expect(good.changes.finished.map(\.attempt) == [2])
  }

  @Test func silentWorkerGoesOfflineAfterTheLivenessWindow() throws {
    var h = Harness(settings: CoordinatorSettings(heartbeatInterval: 1, liveness: 3, maxLostRequeues: 3))
    #expect(h.core.settings.livenessWindow == 3)
    let box = advert("box")
    let start = h.now
    h.register(box)
    _ = try h.submit()
    h.schedule()

    h.now = start + 3
    #expect(h.tick().changes.isEmpty)
    #expect(h.core.workers[box.id]?.online == true)

    h.now = start + 3.01
    let tick = h.tick()
    #expect(tick.changes.workerStates.map(\.state) == [.offline])
    #expect(tick.changes.attemptsEnded.map(\.attempt) == [1])
    #expect(tick.changes.attemptsEnded.first?.state == .lost)
    #expect(tick.changes.requeued.map(\.id) == [1])
    #expect(tick.changes.requeued.first?.reason.contains("box") == true)
    #expect(h.core.jobs[1]?.state == .queued)
    #expect(h.core.workers[box.id]?.online == false)
    #expect(h.core.workerViews().first?.state == .offline)
    // An offline worker gets nothing.
    #expect(h.schedule().assigns.isEmpty)

    // Heartbeats from a worker that was declared dead: it must register again.
    #expect(h.heartbeat(box).sent(.reregister).count == 1)
    h.register(box)
    let again = h.schedule()
    #expect(again.assigns.map(\.attempt) == [2])
  }

  @Test func heartbeatsKeepAWorkerOnline() throws {
    var h = Harness(settings: CoordinatorSettings(heartbeatInterval: 1, liveness: 3, maxLostRequeues: 3))
    let box = advert("box")
    h.register(box)
    for _ in 0..<10 {
      h.advance(2)
      let beat = h.heartbeat(box, diskFree: 7 * GB)
      #expect(beat.sent(.heartbeat).count == 1)
      #expect(h.tick().changes.isEmpty)
    }
    #expect(h.core.workers[box.id]?.online == true)
    #expect(h.core.workers[box.id]?.advert.diskFree == 7 * GB)
  }

  @Test func heartbeatFromAnUnknownWorkerAsksForRegistration() throws {
    var h = Harness()
    let acts = h.heartbeat(advert("ghost"))
    #expect(try acts.headers(.reregister, as: ReregisterMessage.self).count == 1)
    #expect(acts.changes.isEmpty)
    let logs = h.logs(advert("ghost"), 1, attempt: 1, seqs: 1...2)
    #expect(logs.sent(.reregister).count == 1)
    #expect(logs.changes.isEmpty)
  }

  @Test func aJobLostTooOftenFails() throws {
    var h = Harness(settings: CoordinatorSettings(heartbeatInterval: 1, liveness: 3, maxLostRequeues: 2))
    let box = advert("box")
    _ = try h.submit()
    for attempt in 1...3 {
      h.register(box)
      let assigned = h.schedule()
      #expect(assigned.assigns.map(\.attempt) == [attempt])
      h.advance(4)
      let tick = h.tick()
      #expect(tick.changes.attemptsEnded.map(\.attempt) == [attempt])
      if attempt < 3 {
        #expect(tick.changes.requeued.map(\.lostCount) == [attempt])
        #expect(tick.changes.finished.isEmpty)
      } else {
        #expect(tick.changes.requeued.isEmpty)
        #expect(tick.changes.finished.map(\.state) == [.failed])
        #expect(tick.changes.finished.first?.error?.contains("lost 3 times") == true)
      }
    }
    #expect(h.core.jobs[1] == nil)
    h.register(box)
    #expect(h.schedule().isEmpty)
  }

  @Test func workerRestartedWithoutItsJob() throws {
    var h = Harness()
    let box = advert("box")
    h.register(box)
    _ = try h.submit()
    h.schedule()
    h.progress(box, 1, attempt: 1)
    // The worker process restarted and no longer runs attempt 1.
    let again = h.register(box)
    #expect(again.changes.attemptsEnded.map(\.state) == [.lost])
    #expect(again.changes.requeued.first?.reason.contains("restarted") == true)
    #expect(h.schedule().assigns.map(\.attempt) == [2])
  }

  @Test func reconnectWithTheCurrentAttemptKeepsIt() throws {
    var h = Harness()
    let box = advert("box", slots: 1)
    h.register(box)
    _ = try h.submit("a")
    h.schedule()
    let again = h.register(box, active: [AttemptRef(jobID: "1", attempt: 1)])
    #expect(again.changes.requeued.isEmpty)
    #expect(try again.headers(.registered, as: RegisteredMessage.self).first?.stopAttempts == [])
    #expect(h.core.jobs[1]?.state == .assigned)
    // Its slot is still held.
    _ = try h.submit("b")
    #expect(h.schedule().assigns.isEmpty)
    // An attempt the coordinator never gave it is stopped.
    let odd = h.register(
      box, active: [AttemptRef(jobID: "1", attempt: 1), AttemptRef(jobID: "99", attempt: 1)])
    #expect(
      try odd.headers(.registered, as: RegisteredMessage.self).first?.stopAttempts == [
        AttemptRef(jobID: "99", attempt: 1)
      ])
  }

  @Test func restartedCoordinatorResumesWithReturningWorker() throws {
    var h = Harness(settings: CoordinatorSettings(heartbeatInterval: 1, liveness: 3, maxLostRequeues: 3))
    let box = advert("box", gpus: [gpu(0, 24)], slots: 1)
    var running = LiveJob(
      id: 7, name: "r", priority: 0, requirements: Requirements(gpus: 1), attempt: 2, retries: 0, failures: 0,
      lostCount: 1, state: .running, workerID: box.id, submittedAt: 0)
    running.gpuIndices = [0]
    running.startedAt = 10
    h.core.restore(job: running, cursor: .init(attempt: 2, workerSeq: 4, jobSeq: 9))
    h.core.restore(worker: box, drained: false, now: h.now)
    #expect(h.core.nextJobID == 8)
    #expect(h.core.workers[box.id]?.holdings.count == 1)
    // Until the worker speaks there is no route to it.
    _ = try h.submit("queued")
    #expect(h.schedule().assigns.isEmpty)

    h.advance(1)
    let back = h.register(box, active: [AttemptRef(jobID: "7", attempt: 2)])
    #expect(back.changes.requeued.isEmpty)
    let logs = h.logs(box, 7, attempt: 2, seqs: 1...6)
    #expect(logs.changes.logs.first?.firstJobSeq == 10)
    #expect(logs.changes.logs.first?.seqs == [5, 6])
  }

  @Test func restoredWorkerThatNeverReturnsLosesItsJobs() throws {
    var h = Harness(settings: CoordinatorSettings(heartbeatInterval: 1, liveness: 3, maxLostRequeues: 3))
    let box = advert("box")
    let running = LiveJob(
      id: 3, name: "r", priority: 0, requirements: Requirements(), attempt: 1, retries: 0, failures: 0,
      lostCount: 0, state: .running, workerID: box.id, submittedAt: 0)
    h.core.restore(job: running, cursor: nil)
    h.core.restore(worker: box, drained: false, now: h.now)
    h.advance(2)
    #expect(h.tick().changes.isEmpty)
    h.advance(2)
    let tick = h.tick()
    #expect(tick.changes.requeued.map(\.id) == [3])
    #expect(h.core.jobs[3]?.state == .queued)
  }

  @Test func drainedWorkersGetNoJobs() throws {
    var h = Harness()
    let box = advert("edge-3", slots: 2)
    h.register(box)
    _ = try h.submit("a")
    h.schedule()
    let drained = h.drain("edge-3")
    #expect(drained.changes.workerStates.first?.drained == true)
    #expect(drained.changes.workerStates.first?.state == .draining)
    #expect(try drained.headers(.reply, as: Reply<WorkerView>.self).first?.result.state == .draining)

    _ = try h.submit("b")
    #expect(h.schedule().assigns.isEmpty)
    #expect(h.core.waitReason(jobID: 2) == "every online worker is drained")

    h.finish(box, 1, attempt: 1)
    h.cleanup(box, 1, attempt: 1)
    #expect(h.core.workerViews().first?.state == .drained)
    #expect(h.schedule().assigns.isEmpty)

    // By id as well as by name.
    h.drain(box.id, false)
    #expect(h.schedule().assigns.map(\.jobID) == [2])
  }

  @Test func aPassRunsWhenItsInputsChangeAndEverySecondAnyway() throws {
    var h = Harness()
    let box = advert("edge-1", disk: 50 * GB)
    h.register(box)
    _ = try h.submit("big", requirements: Requirements(disk: 100 * GB))
    #expect(h.schedule().assigns.isEmpty)
    let passes = h.core.schedulingPasses
    #expect(passes == 1)

    // A heartbeat that changes nothing the scheduler looks at, and the clock within the
    // second: no pass.
    h.advance(0.5)
    h.heartbeat(box, diskFree: 50 * GB)
    #expect(h.schedule().isEmpty)
    #expect(h.core.schedulingPasses == passes)

    // The periodic pass.
    h.advance(0.6)
    #expect(h.schedule().isEmpty)
    #expect(h.core.schedulingPasses == passes + 1)

    // A new job, even one that fits nowhere either.
    _ = try h.submit("bigger", requirements: Requirements(disk: 200 * GB))
    #expect(h.schedule().isEmpty)
    #expect(h.core.schedulingPasses == passes + 2)

    // More free disk makes the first job fit: the next pass places it at once.
    h.heartbeat(box, diskFree: 150 * GB)
    #expect(h.schedule().assigns.map(\.jobID) == [1])
    #expect(h.core.schedulingPasses == passes + 3)

    // Its slot coming free places the next one once the disk is there.
    h.finish(box, 1, attempt: 1)
    #expect(h.schedule().assigns.isEmpty)
    h.cleanup(box, 1, attempt: 1)
    h.heartbeat(box, diskFree: 300 * GB)
    #expect(h.schedule().assigns.map(\.jobID) == [2])
  }

  @Test func theSchedulersViewOfWorkersFollowsEveryChange() throws {
    var h = Harness(settings: CoordinatorSettings(heartbeatInterval: 1, liveness: 2, maxLostRequeues: 3))
    let a = advert("a", gpus: [gpu(0, 24)], slots: 2)
    let b = advert("b", slots: 1)
    func check(_ h: Harness, _ step: String) {
      let rebuilt = h.core.workers.workers.filter { $0.value.schedulable }.mapValues(\.capacity)
      #expect(h.core.workers.capacities == rebuilt, "after \(step)")
    }
    h.register(a)
    h.register(b)
    check(h, "registering")
    _ = try h.submit("gpu", requirements: Requirements(gpus: 1))
    _ = try h.submit("plain")
    h.schedule()
    check(h, "assigning")
    h.drain("b")
    check(h, "draining")
    h.finish(a, 1, attempt: 1)
    check(h, "a result")
    h.cleanup(a, 1, attempt: 1)
    check(h, "a cleanup")
    h.drain("b", false)
    check(h, "undraining")
    h.advance(1)
    h.heartbeat(a, diskFree: 7 * GB)
    check(h, "a heartbeat")
    h.advance(3)
    h.tick()
    check(h, "going offline")
    #expect(h.core.workers.capacities.isEmpty)
    h.register(b, active: [])
    check(h, "registering again")
    #expect(h.core.workers.capacities.keys.sorted() == [b.id])
  }

  @Test func drainingAnUnknownWorkerIsAnError() throws {
    var h = Harness()
    let acts = h.drain("nobody")
    let errors = try acts.headers(.error, as: ErrorReply.self)
    #expect(errors.first?.requestID == "d")
    #expect(errors.first?.message.contains("nobody") == true)
    #expect(acts.changes.isEmpty)
  }

  @Test func cancelAQueuedJob() throws {
    var h = Harness()
    _ = try h.submit()
    let cancelled = h.cancel([1])
    #expect(cancelled.changes.finished.map(\.state) == [.cancelled])
    let reply = try cancelled.headers(.reply, as: Reply<CancelReply>.self).first?.result
    #expect(reply?.cancelled == ["1"])
    #expect(reply?.alreadyFinal == [])
    #expect(h.core.jobs[1] == nil)
    #expect(h.core.queue.isEmpty)
    h.register(advert("box"))
    #expect(h.schedule().assigns.isEmpty)
    let again = try h.cancel([1]).headers(.reply, as: Reply<CancelReply>.self).first?.result
    #expect(again?.alreadyFinal == ["1"])
  }

  @Test func cancelARunningJob() throws {
    var h = Harness()
    let box = advert("box")
    h.register(box)
    _ = try h.submit(retries: 3)
    h.schedule()
    h.progress(box, 1, attempt: 1)
    let cancelled = h.cancel([1])
    #expect(cancelled.changes.finished.isEmpty)
    let stop = try cancelled.headers(.stop, as: StopMessage.self)
    #expect(stop.count == 1)
    #expect(stop.first?.stale == false)
    #expect(stop.first?.attempt == 1)
    #expect(cancelled.sent(.stop).first?.peer == peer(box))
    #expect(try cancelled.headers(.reply, as: Reply<CancelReply>.self).first?.result.cancelled == ["1"])

    // The killed script reports a failure; it is a cancellation, not a retry.
    let ended = h.finish(box, 1, attempt: 1, state: .failed, exitCode: 143, error: "killed")
    #expect(ended.changes.finished.map(\.state) == [.cancelled])
    #expect(ended.changes.requeued.isEmpty)
    h.cleanup(box, 1, attempt: 1)
    #expect(h.core.jobs[1] == nil)
  }

  @Test func cancelledJobWhoseWorkerVanishes() throws {
    var h = Harness(settings: CoordinatorSettings(heartbeatInterval: 1, liveness: 3, maxLostRequeues: 3))
    let box = advert("box")
    h.register(box)
    _ = try h.submit()
    h.schedule()
    h.cancel([1])
    h.advance(4)
    let tick = h.tick()
    #expect(tick.changes.finished.map(\.state) == [.cancelled])
    #expect(tick.changes.requeued.isEmpty)
    #expect(h.core.jobs[1] == nil)
  }

  @Test func jobArrayCreatesOneJobPerIndex() throws {
    var h = Harness()
    let (ids, acts) = try h.submit(
      "sweep", args: .object(JSONObject([("prompt", .string("cat"))])), array: [1, 5, 9])
    #expect(ids == [1, 2, 3])
    let rows = acts.changes.inserted
    #expect(rows.map(\.name) == ["sweep[1]", "sweep[5]", "sweep[9]"])
    #expect(rows.map { $0.args["index"] } == [.number(1), .number(5), .number(9)])
    #expect(rows.allSatisfy { $0.args["prompt"] == .string("cat") })
    // One insert (one commit) for the whole array.
    #expect(acts.changes.count == 1)
    #expect(h.core.queue.keys.map(\.id) == [1, 2, 3])

    h.register(advert("box", slots: 3))
    #expect(h.schedule().assigns.map(\.jobID) == [1, 2, 3])
  }

  @Test func priorityOrdersAssignments() throws {
    var h = Harness()
    _ = try h.submit("low")
    _ = try h.submit("high", priority: 5)
    h.register(advert("box"))
    #expect(h.schedule().assigns.map(\.jobID) == [2])
  }

  @Test func failedJobIsRetriedThenFails() throws {
    var h = Harness()
    let box = advert("box")
    h.register(box)
    _ = try h.submit(retries: 1)
    h.schedule()
    h.progress(box, 1, attempt: 1)
    let first = h.finish(box, 1, attempt: 1, state: .failed, exitCode: 2, error: "exit status 2")
    #expect(first.changes.finished.isEmpty)
    #expect(first.changes.attemptsEnded.map(\.state) == [.failed])
    #expect(first.changes.requeued.first?.failures == 1)
    #expect(first.changes.requeued.first?.lostCount == 0)
    #expect(try first.headers(.reportAck, as: ReportAckMessage.self).count == 1)
    #expect(h.core.jobs[1]?.state == .queued)
    // The slot is still taken by attempt 1's workspace.
    #expect(h.schedule().assigns.isEmpty)
    h.cleanup(box, 1, attempt: 1)
    #expect(h.core.jobs[1]?.state == .queued)
    #expect(h.schedule().assigns.map(\.attempt) == [2])

    let second = h.finish(box, 1, attempt: 2, state: .failed, exitCode: 3, error: "exit status 3")
    #expect(second.changes.finished.map(\.state) == [.failed])
    #expect(second.changes.finished.first?.exitCode == 3)
    #expect(second.changes.finished.first?.error == "exit status 3")
    #expect(second.changes.requeued.isEmpty)
  }

  @Test func timeoutStopsTheJobAndFailsIt() throws {
    var h = Harness()
    let box = advert("box")
    h.register(box)
    _ = try h.submit(timeout: 10)
    h.schedule()
    h.advance(100)  // time in `assigned` does not count
    h.heartbeat(box)
    h.progress(box, 1, attempt: 1)
    h.advance(10)
    #expect(h.tick().sent(.stop).isEmpty)
    h.advance(0.5)
    let tick = h.tick()
    let stop = try tick.headers(.stop, as: StopMessage.self)
    #expect(stop.count == 1)
    #expect(stop.first?.stale == false)
    #expect(stop.first?.reason == "timed out after 10 s")
    #expect(h.tick().sent(.stop).isEmpty)  // asked once

    let ended = h.finish(box, 1, attempt: 1, state: .failed, exitCode: 137, error: "killed")
    #expect(ended.changes.finished.map(\.state) == [.failed])
    #expect(ended.changes.finished.first?.error == "timed out after 10 s")
  }

  @Test func aJobThatSucceedsAsItTimesOutSucceeds() throws {
    var h = Harness()
    let box = advert("box")
    h.register(box)
    _ = try h.submit(timeout: 1)
    h.schedule()
    h.progress(box, 1, attempt: 1)
    h.advance(2)
    #expect(h.tick().sent(.stop).count == 1)
    #expect(h.finish(box, 1, attempt: 1, state: .succeeded).changes.finished.map(\.state) == [.succeeded])
  }

  // MARK: Suspected bugs

  @Test func finishedJobOfAVanishedWorkerIsForgotten() throws {
    var h = Harness(settings: CoordinatorSettings(heartbeatInterval: 1, liveness: 3, maxLostRequeues: 3))
    let box = advert("box")
    h.register(box)
    _ = try h.submit()
    h.schedule()
    h.finish(box, 1, attempt: 1)
    // The machine dies before it reports cleanup, and never comes back.
    h.advance(4)
    h.tick()
    #expect(h.core.workers[box.id]?.holdings.isEmpty == true)
    // While it stays, `logs` never reports the job complete, so `--follow` never ends.
    #expect(h.core.jobs[1] == nil)
  }

  @Test func cancelBeforeARestoredWorkerReconnectsReachesIt() throws {
    var h = Harness()
    let box = advert("box")
    let running = LiveJob(
      id: 5, name: "r", priority: 0, requirements: Requirements(), attempt: 1, retries: 0, failures: 0,
      lostCount: 0, state: .running, workerID: box.id, submittedAt: 0)
    h.core.restore(job: running, cursor: nil)
    h.core.restore(worker: box, drained: false, now: h.now)
    // After a coordinator restart the worker has no route yet, so the stop cannot go out now.
    let cancelled = h.cancel([5])
    #expect(try cancelled.headers(.reply, as: Reply<CancelReply>.self).first?.result.cancelled == ["5"])
    #expect(cancelled.sent(.stop).isEmpty)
    // The worker reconnects, still running attempt 1: it should now be told to stop.
    let back = h.register(box, active: [AttemptRef(jobID: "5", attempt: 1)])
    let stops = try back.headers(.stop, as: StopMessage.self)
    let stopAttempts = try back.headers(.registered, as: RegisteredMessage.self).first?.stopAttempts ?? []
    #expect(stops.map(\.attempt) == [1] || stopAttempts == [AttemptRef(jobID: "5", attempt: 1)])
  }

  @Test func attemptLostAtReRegisterIsStoppedWhenItSpeaks() throws {
    var h = Harness()
    let box = advert("box")
    h.register(box)
    _ = try h.submit()
    #expect(h.schedule().assigns.map(\.attempt) == [1])
    // The worker re-registers while the assign is in flight, so it does not list
    // attempt 1; the coordinator requeues the job (still attempt 1, now queued).
    let again = h.register(box)
    #expect(again.changes.requeued.count == 1)
    // The assign then arrives and the worker starts attempt 1 and reports on it.
    let stops = try h.progress(box, 1, attempt: 1).headers(.stop, as: StopMessage.self)
    #expect(stops.first?.stale == true)
  }

  @Test func restoredWorkerMustRegisterBeforeItsHeartbeatsCount() throws {
    // The coordinator committed an assignment and crashed before sending it: after the
    // restart the worker's heartbeats alone must not let the job sit `assigned` forever.
    var h = Harness(settings: CoordinatorSettings(heartbeatInterval: 1, liveness: 3, maxLostRequeues: 3))
    let box = advert("box", slots: 2)
    var neverSent = LiveJob(
      id: 4, name: "r", priority: 0, requirements: Requirements(), attempt: 1, retries: 0, failures: 0,
      lostCount: 0, state: .assigned, workerID: box.id, submittedAt: 0)
    neverSent.assignedAt = 0
    h.core.restore(job: neverSent, cursor: nil)
    h.core.restore(worker: box, drained: false, now: h.now)
    let beat = h.heartbeat(box, active: [])
    #expect(beat.sent(.reregister).count == 1)
    #expect(beat.sent(.heartbeat).isEmpty)
    // Nor is it given work before it has said what it runs.
    _ = try h.submit("queued")
    #expect(h.schedule().assigns.isEmpty)
    let back = h.register(box, active: [])
    #expect(back.changes.requeued.map(\.id) == [4])
    #expect(h.schedule().assigns.count == 2)
  }

  @Test func anAssignmentThatNeverArrivesIsLostAfterTheLivenessWindow() throws {
    var h = Harness(settings: CoordinatorSettings(heartbeatInterval: 1, liveness: 3, maxLostRequeues: 3))
    let box = advert("box")
    h.register(box)
    _ = try h.submit()
    #expect(h.schedule().assigns.map(\.attempt) == [1])
    // A heartbeat sent before the assignment arrived does not list it: not a loss yet.
    h.advance(1)
    #expect(h.heartbeat(box, active: []).changes.requeued.isEmpty)
    // Listed: all is well however long it runs.
    h.advance(5)
    #expect(h.heartbeat(box, active: [AttemptRef(jobID: "1", attempt: 1)]).changes.requeued.isEmpty)
    #expect(h.core.jobs[1]?.state == .assigned)
    // Not listed a liveness window after it was sent: it was dropped in transit.
    let beat = h.heartbeat(box, active: [])
    #expect(beat.changes.requeued.map(\.id) == [1])
    #expect(try beat.headers(.stop, as: StopMessage.self).map(\.stale) == [true])
    // Requeued as a new attempt on the same (still healthy) worker.
    #expect(h.schedule().assigns.map(\.attempt) == [2])
    // A heartbeat without the list (an older worker) changes nothing.
    h.advance(10)
    #expect(h.heartbeat(box).changes.requeued.isEmpty)
  }
}
