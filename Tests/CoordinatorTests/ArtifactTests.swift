import Foundation
import Testing

@testable import Coordinator
@testable import Shared

private func begin(_ name: String, _ data: Data, job: String = "1", attempt: Int = 1, worker: String = "w1")
  -> ArtifactBeginMessage
{
  ArtifactBeginMessage(
    workerID: worker, jobID: job, attempt: attempt, name: name, size: Int64(data.count),
    sha256: data.sha256Hex,
    index: 0, count: 1)
}

private func chunk(
  _ name: String, _ whole: Data, offset: Int, length: Int, job: String = "1", attempt: Int = 1,
  worker: String = "w1"
) -> (ArtifactChunkMessage, Data) {
  (
    ArtifactChunkMessage(
      workerID: worker, jobID: job, attempt: attempt, name: name, offset: Int64(offset),
      size: Int64(whole.count),
      sha256: whole.sha256Hex),
    whole.subdata(in: offset..<(offset + length))
  )
}

private func temporaryFolder() -> String {
  FileManager.default.temporaryDirectory.appendingPathComponent("pinpool-artstore-\(UUID().uuidString)").path
}

/// The coordinator's artifact files: durable appends, resumption, verification, limits.
struct ArtifactStoreTests {
  @Test func chunksAppendOnlyWhereThePartialEndsThenTheFileIsVerifiedAndStored() throws {
    let root = temporaryFolder()
    defer { try? FileManager.default.removeItem(atPath: root) }
    let store = try ArtifactStore(root: root, limits: ArtifactLimits(), stored: [])
    let data = Data((0..<1000).map { UInt8($0 % 251) })
    #expect(store.begin(jobID: 1, begin("out/clip.mp4", data), now: 1).ack.offset == 0)
    let (first, firstBytes) = chunk("out/clip.mp4", data, offset: 0, length: 400)
    #expect(store.chunk(jobID: 1, first, data: firstBytes, now: 1).ack.offset == 400)
    // A resend of the same chunk is not appended twice; a chunk past a gap is not taken.
    #expect(store.chunk(jobID: 1, first, data: firstBytes, now: 1).ack.offset == 400)
    let (late, lateBytes) = chunk("out/clip.mp4", data, offset: 800, length: 200)
    #expect(store.chunk(jobID: 1, late, data: lateBytes, now: 1).ack.offset == 400)

    // A restarted coordinator (a new store over the same folder) reports what it holds.
    let restarted = try ArtifactStore(root: root, limits: ArtifactLimits(), stored: [])
    #expect(restarted.begin(jobID: 1, begin("out/clip.mp4", data), now: 2).ack.offset == 400)
    let (rest, restBytes) = chunk("out/clip.mp4", data, offset: 400, length: 600)
    let outcome = restarted.chunk(jobID: 1, rest, data: restBytes, now: 2)
    #expect(outcome.ack.complete)
    #expect(outcome.ack.offset == 1000)
    guard case .artifactStored(1, 1, "out/clip.mp4", 1000, let sha, 2) = outcome.stored else {
      Issue.record("no row recorded: \(String(describing: outcome.stored))")
      return
    }
    #expect(sha == data.sha256Hex)
    let path = restarted.finalPath(.init(job: 1, attempt: 1, name: "out/clip.mp4"))
    #expect(FileManager.default.contents(atPath: path) == data)
    #expect(
      try restarted.read(job: 1, attempt: 1, name: "out/clip.mp4", offset: 990, length: 50) == data.suffix(10)
    )
    // Asking again (an acknowledgement lost) answers "complete" without a new upload.
    #expect(restarted.begin(jobID: 1, begin("out/clip.mp4", data), now: 3).ack.complete)
  }

  @Test func aChecksumMismatchDiscardsThePartialAndMayBeRetried() throws {
    let root = temporaryFolder()
    defer { try? FileManager.default.removeItem(atPath: root) }
    let store = try ArtifactStore(root: root, limits: ArtifactLimits(), stored: [])
    let data = Data("hello artifact".utf8)
    _ = store.begin(jobID: 1, begin("a.txt", data), now: 1)
    var (message, _) = chunk("a.txt", data, offset: 0, length: data.count)
    let outcome = store.chunk(jobID: 1, message, data: Data("HELLO ARTIFACT".utf8), now: 1)
    #expect(outcome.ack.complete == false)
    #expect(outcome.ack.retryable)
    #expect(outcome.ack.error?.contains("checksum mismatch for 'a.txt'") == true)
    #expect(outcome.stored == nil)
    #expect(store.begin(jobID: 1, begin("a.txt", data), now: 2).ack.offset == 0, "the partial file is gone")
    message.offset = 0
    #expect(store.chunk(jobID: 1, message, data: data, now: 2).ack.complete)
  }

  @Test func limitsPerJobAndForThePoolNameTheJobFileSizeAndLimit() throws {
    let root = temporaryFolder()
    defer { try? FileManager.default.removeItem(atPath: root) }
    let store = try ArtifactStore(
      root: root, limits: ArtifactLimits(perJob: 100, pool: 150),
      stored: [(job: 9, attempt: 1, name: "old.bin", size: 60, sha256: String(repeating: "0", count: 64))])
    let big = Data(count: 101)
    let refusal = try #require(store.begin(jobID: 1, begin("big.bin", big), now: 1).ack.error)
    #expect(refusal.contains("job 1") && refusal.contains("'big.bin'") && refusal.contains("per-job limit"))
    #expect(refusal.contains("--artifact-limit"))
    // 60 stored + 80 = 140 fits the pool; a further 20 for another job does not.
    #expect(store.begin(jobID: 1, begin("a.bin", Data(count: 80)), now: 1).ack.error == nil)
    let pool = try #require(
      store.begin(jobID: 2, begin("b.bin", Data(count: 20), job: "2"), now: 1).ack.error)
    #expect(pool.contains("job 2") && pool.contains("pool limit") && pool.contains("--artifact-pool-limit"))
    // Beginning the same file again does not count it twice.
    #expect(store.begin(jobID: 1, begin("a.bin", Data(count: 80)), now: 2).ack.error == nil)
    #expect(store.poolTotal == 140)
    store.removeJob(9)
    #expect(store.poolTotal == 80)
    // The attempt's cleanup came without the file completing: its reservation goes.
    store.settle(job: 1, attempt: 1)
    #expect(store.poolTotal == 0)
    #expect(store.jobTotal(1) == 0)
    #expect(store.begin(jobID: 2, begin("b.bin", Data(count: 20), job: "2"), now: 3).ack.error == nil)
  }

  @Test func filesPerJobAreLimited() throws {
    let root = temporaryFolder()
    defer { try? FileManager.default.removeItem(atPath: root) }
    let store = try ArtifactStore(root: root, limits: ArtifactLimits(filesPerJob: 2), stored: [])
    #expect(store.begin(jobID: 1, begin("a.txt", Data("a".utf8)), now: 1).ack.error == nil)
    #expect(store.begin(jobID: 1, begin("b.txt", Data("b".utf8)), now: 1).ack.error == nil)
    // The same file again is not a new one; a third is refused, naming the limit.
    #expect(store.begin(jobID: 1, begin("a.txt", Data("a".utf8)), now: 2).ack.error == nil)
    let refusal = try #require(store.begin(jobID: 1, begin("c.txt", Data("c".utf8)), now: 2).ack.error)
    #expect(refusal.contains("job 1") && refusal.contains("'c.txt'") && refusal.contains("--artifact-files"))
    // Other jobs have their own count.
    #expect(store.begin(jobID: 2, begin("c.txt", Data("c".utf8), job: "2"), now: 2).ack.error == nil)
  }

  @Test func badNamesAndDigestsAreRefused() throws {
    let root = temporaryFolder()
    defer { try? FileManager.default.removeItem(atPath: root) }
    let store = try ArtifactStore(root: root, limits: ArtifactLimits(), stored: [])
    for name in ["../escape", "/abs", "a//b", "a/./b", "", "tab\tname"] {
      let error = store.begin(jobID: 1, begin(name, Data("x".utf8)), now: 1).ack.error
      #expect(error?.contains("is refused") == true, "\(name)")
    }
    var message = begin("ok.bin", Data("x".utf8))
    message.sha256 = "not-hex"
    #expect(store.begin(jobID: 1, message, now: 1).ack.error?.contains("not 64 lowercase hex digits") == true)
    let (oversized, _) = chunk("ok.bin", Data("x".utf8), offset: 0, length: 1)
    _ = store.begin(jobID: 1, begin("ok.bin", Data("x".utf8)), now: 1)
    #expect(
      store.chunk(jobID: 1, oversized, data: Data("xyz".utf8), now: 1).ack.error?.contains("runs past")
        == true)
    #expect(throws: ArtifactStoreError.self) {
      try store.read(job: 1, attempt: 1, name: "../x", offset: 0, length: 1)
    }
  }

  @Test func anEmptyFileIsStoredAtBegin() throws {
    let root = temporaryFolder()
    defer { try? FileManager.default.removeItem(atPath: root) }
    let store = try ArtifactStore(root: root, limits: ArtifactLimits(), stored: [])
    let outcome = store.begin(jobID: 1, begin("empty.txt", Data()), now: 1)
    #expect(outcome.ack.complete)
    #expect(outcome.stored != nil)
    #expect(
      FileManager.default.fileExists(atPath: store.finalPath(.init(job: 1, attempt: 1, name: "empty.txt"))))
  }
}

/// The core's part: which attempt may upload, and what a replaced one is told.
struct ArtifactCoreTests {
  /// Job 1 assigned to w1 as attempt 1, then finished (its cleanup still owed).
  static func finishedJob() -> CoordinatorCore {
    var fixture = CoreFixture()
    fixture.submit()
    var core = fixture.core
    core.schedule(now: 0)
    core.finished(
      peer: [1],
      message: FinishedMessage(
        workerID: "w1", jobID: "1", attempt: 1, state: .succeeded, exitCode: 0, error: nil, locals: nil,
        lastLogSeq: 0), now: 1)
    _ = core.takeActions()
    return core
  }

  static func sent(_ actions: [CoordinatorAction]) -> [WireEnvelope] {
    actions.compactMap { if case .send(_, let envelope) = $0 { envelope } else { nil } }
  }

  @Test func theFinishedAttemptUploadsAndItsCleanupShowsProgress() throws {
    var core = Self.finishedJob()
    core.artifactBegin(peer: [1], message: begin("clip.mp4", Data(count: 10)), now: 2)
    let actions = core.takeActions()
    #expect(
      actions.contains {
        if case .artifact(.begin(_, 1, let message)) = $0 { return message.name == "clip.mp4" }
        return false
      })
    #expect(
      actions.contains {
        if case .store(.jobCleanup(1, 1, .pending, _, _, let reason)) = $0 {
          return reason?.contains("uploading artifacts: clip.mp4 (1 of 1") == true
        }
        return false
      })
    let (message, data) = chunk("clip.mp4", Data(count: 10), offset: 0, length: 10)
    core.artifactChunk(peer: [1], message: message, data: data, now: 3)
    #expect(
      core.takeActions().contains {
        if case .artifact(.chunk(_, 1, _, let bytes)) = $0 { return bytes.count == 10 }
        return false
      })
  }

  @Test func aRepeatedResultOfTheFinishedAttemptIsAcknowledgedWithoutStop() throws {
    var core = Self.finishedJob()
    core.finished(
      peer: [1],
      message: FinishedMessage(
        workerID: "w1", jobID: "1", attempt: 1, state: .succeeded, exitCode: 0, error: nil, locals: nil,
        lastLogSeq: 0), now: 2)
    let types = Self.sent(core.takeActions()).map(\.type)
    #expect(types == [.reportAck], "a stop would abandon the attempt's upload")
  }

  @Test func aReplacedAttemptIsToldToStopAndAnUnknownOneIsRefused() throws {
    var core = Self.finishedJob()
    // Another worker's word about attempt 1, and a later attempt that does not exist.
    core.register(
      peer: [3],
      message: RegisterMessage(
        worker: WorkerAdvert(
          id: "w2", name: "w2",
          host: HostInfo(cpuCores: 2, memoryTotal: 1 << 34, platform: "linux", arch: "x64", hostname: "h"),
          gpus: [], diskFree: 1 << 40, slots: 1, labels: [:]), activeAttempts: []), now: 2)
    _ = core.takeActions()
    core.artifactBegin(peer: [3], message: begin("a", Data(count: 1), worker: "w2"), now: 3)
    var sent = Self.sent(core.takeActions())
    #expect(sent.map(\.type) == [.stop])
    #expect(try sent.first?.decode(StopMessage.self).stale == true)

    core.artifactBegin(peer: [1], message: begin("a", Data(count: 1), attempt: 2), now: 3)
    sent = Self.sent(core.takeActions())
    #expect(sent.map(\.type) == [.artifactAck])
    #expect(try sent.first?.decode(ArtifactAckMessage.self).error?.contains("takes no artifacts") == true)

    core.artifactBegin(peer: [1], message: begin("a", Data(count: 1), job: "99"), now: 3)
    #expect(Self.sent(core.takeActions()).map(\.type) == [.artifactAck])
  }

  @Test func afterTheCleanupReportNothingMoreIsTaken() throws {
    var core = Self.finishedJob()
    core.cleanup(
      peer: [1],
      message: CleanupMessage(
        workerID: "w1", jobID: "1", attempt: 1, state: .done, bytesFreed: 1, diskFreeAfter: 1, reason: nil),
      now: 2)
    #expect(
      core.takeActions().contains { if case .artifact(.settle(1, 1)) = $0 { true } else { false } },
      "its partial files and reservations go")
    let (message, data) = chunk("a", Data(count: 1), offset: 0, length: 1)
    core.artifactChunk(peer: [1], message: message, data: data, now: 3)
    let actions = core.takeActions()
    #expect(!actions.contains { if case .artifact(.chunk) = $0 { true } else { false } })
    #expect(Self.sent(actions).map(\.type) == [.artifactAck])
  }

  @Test func aWorkerThatWasOfflineOrACoordinatorRestartStillMayFinishTheUpload() throws {
    // The worker goes silent after the result: the job is let go, its upload is not.
    var core = Self.finishedJob()
    core.tick(now: 1000)
    _ = core.takeActions()
    #expect(core.jobs[1] == nil)
    core.register(
      peer: [1],
      message: RegisterMessage(
        worker: try #require(core.workers["w1"]).advert, activeAttempts: [AttemptRef(jobID: "1", attempt: 1)]),
      now: 1001)
    let registered = core.takeActions()
    let sent = Self.sent(registered)
    #expect(sent.map(\.type) == [.logAck, .registered, .stop], "the log is complete: no need to resend it")
    // The worker reads that ack through the same range checks as any other.
    let ack = try #require(sent.first { $0.type == .logAck }).decode(LogAckMessage.self)
    #expect(ack.upTo == WireRange.logSeq.upperBound)
    #expect(try sent.first { $0.type == .registered }?.decode(RegisteredMessage.self).stopAttempts == [])
    #expect(try sent.first { $0.type == .stop }?.decode(StopMessage.self).stale == false)
    core.artifactBegin(peer: [1], message: begin("a", Data(count: 1)), now: 1002)
    #expect(core.takeActions().contains { if case .artifact = $0 { true } else { false } })

    // A restarted core learns the owed cleanup from the store.
    var restarted = CoordinatorCore(settings: CoordinatorSettings())
    restarted.restoreOwedCleanup(AttemptRef(jobID: "1", attempt: 1), workerID: "w1", now: 0)
    restarted.register(
      peer: [1],
      message: RegisterMessage(worker: try #require(core.workers["w1"]).advert, activeAttempts: []), now: 1)
    _ = restarted.takeActions()
    restarted.artifactBegin(peer: [1], message: begin("a", Data(count: 1)), now: 2)
    #expect(restarted.takeActions().contains { if case .artifact = $0 { true } else { false } })
    // Another worker may not.
    restarted.artifactBegin(peer: [1], message: begin("a", Data(count: 1), worker: "w9"), now: 2)
    #expect(!restarted.takeActions().contains { if case .artifact = $0 { true } else { false } })
    // Once the cleanup is reported, nothing more is taken.
    restarted.cleanup(
      peer: [1],
      message: CleanupMessage(
        workerID: "w1", jobID: "1", attempt: 1, state: .done, bytesFreed: 0, diskFreeAfter: 0, reason: nil),
      now: 3)
    _ = restarted.takeActions()
    restarted.artifactBegin(peer: [1], message: begin("a", Data(count: 1)), now: 4)
    #expect(!restarted.takeActions().contains { if case .artifact = $0 { true } else { false } })
  }
}

/// Artifact rows in the job store: recorded, listed, and pruned with their job.
struct ArtifactRowTests {
  @Test func rowsAreListedAndGoWithTheirJob() throws {
    let dir = temporaryFolder()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let store = try JobStore(directory: dir)
    let row = NewJobRow(
      id: 1, name: "j", priority: 0, retries: 0, entry: "a.json", args: .object(JSONObject()),
      requirements: Requirements(), artifacts: ["out/*.mp4"], timeoutSeconds: nil, submittedAt: 0)
    try store.apply([.insertJobs([row], bundleHash: "h", bundle: [1])])
    let sha = String(repeating: "b", count: 64)
    try store.apply([
      .artifactStored(jobID: 1, attempt: 2, name: "out/b.mp4", size: 5, sha256: sha, at: 10),
      .artifactStored(jobID: 1, attempt: 1, name: "out/a.mp4", size: 3, sha256: sha, at: 10),
      // Recorded again (a lost acknowledgement): still one row.
      .artifactStored(jobID: 1, attempt: 1, name: "out/a.mp4", size: 3, sha256: sha, at: 11),
    ])
    #expect(
      try store.artifacts(jobID: 1).map { "\($0.attempt):\($0.name):\($0.size)" } == [
        "1:out/a.mp4:3", "2:out/b.mp4:5",
      ])
    #expect(try store.allArtifacts().count == 2)
    try store.apply([
      .jobFinished(id: 1, attempt: 2, state: .succeeded, exitCode: 0, error: nil, locals: nil, at: 20)
    ])
    #expect(try store.pruneJobs(finishedBefore: 100, keep: []) == [1])
    #expect(try store.artifacts(jobID: 1).isEmpty)
  }
}
