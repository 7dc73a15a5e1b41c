import Foundation
import Testing

@testable import Shared
@testable import Worker

struct LogSpoolTests {
  private func job(_ id: String, _ attempt: Int) -> AssignedJob {
    AssignedJob(
      jobID: id, attempt: attempt, name: "n", entry: "a.json", args: .object(JSONObject()), gpuIndices: [],
      requirements: Requirements(), timeoutSeconds: nil, artifacts: [])
  }

  /// A worker core with a 1 s heartbeat and a 3 s window, at time 0.
  private func makeCore() -> WorkerCore {
    let advert = WorkerAdvert(
      id: "w-1", name: "w",
      host: HostInfo(cpuCores: 1, memoryTotal: 1, platform: "linux", arch: "x64", hostname: "h"),
      gpus: [], diskFree: 1, slots: 1, labels: [:])
    return WorkerCore(advert: advert, heartbeatInterval: 1, liveness: 3, now: 0)
  }

  @Test func recordsSurviveARestartAndATornLastRecordIsIgnored() throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("spool-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let spool = LogSpool(directory: dir)
    let finishedJob = job("7", 1)
    let runningJob = job("8", 2)
    spool.assigned(finishedJob, header: WireEnvelope(.assign, AssignMessage(job: finishedJob)).header)
    // Without the message's bytes (and with them unusable), the job is encoded itself.
    spool.assigned(runningJob, header: Data("{\n}".utf8))
    spool.lines(finishedJob.ref, firstSeq: 1, LogChunk([(.stdout, 1, "line 1"), (.stderr, 2, "line\n2")]))
    spool.lines(finishedJob.ref, firstSeq: 3, LogChunk([(.pinpool, 3, "line 3")]))
    spool.lines(runningJob.ref, firstSeq: 1, LogChunk([(.stdout, 1, "still running")]))
    spool.report(
      WireEnvelope(
        .finished,
        FinishedMessage(
          workerID: "w", jobID: "7", attempt: 1, state: .succeeded, exitCode: 0, error: nil, locals: nil,
          lastLogSeq: 3)), finishedJob.ref)
    spool.flush()
    // A crash in the middle of a write leaves half a record.
    let finishedFile = try #require(spool.file(of: finishedJob.ref))
    let handle = try #require(FileHandle(forWritingAtPath: finishedFile))
    handle.seekToEndOfFile()
    handle.write(Data("K 4 1 20\n".utf8) + LogChunk([(.stdout, 4, "line 4")]).bytes.prefix(15))
    try handle.close()

    let recovered = LogSpool.recover(directory: dir).sorted { $0.job.jobID < $1.job.jobID }
    #expect(recovered.count == 2)
    #expect(recovered[0].job.ref == finishedJob.ref)
    let lines = recovered[0].chunks.flatMap { $0.chunk.lines(firstSeq: $0.firstSeq) }
    #expect(lines.map(\.line) == ["line 1", "line\n2", "line 3"])
    #expect(lines.map(\.seq) == [1, 2, 3])
    #expect(lines.map(\.stream) == [.stdout, .stderr, .pinpool])
    #expect(recovered[0].finished?.state == .succeeded)
    #expect(recovered[0].cleanup == nil)
    #expect(recovered[1].finished == nil)

    spool.forget(finishedJob.ref)
    #expect(try Data(contentsOf: URL(fileURLWithPath: finishedFile)).isEmpty)
    #expect(LogSpool.recover(directory: dir).map(\.job.ref) == [runningJob.ref])
  }

  @Test func aForgottenAttemptsFileIsEmptiedAndReusedNeverRead() throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("spool-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    func inode(_ path: String) throws -> UInt64 {
      try #require(FileManager.default.attributesOfItem(atPath: path)[.systemFileNumber] as? UInt64)
    }
    func names() throws -> Set<String> { Set(try FileManager.default.contentsOfDirectory(atPath: dir)) }
    let spool = LogSpool(directory: dir)
    let first = job("1", 1)
    spool.assigned(first, header: WireEnvelope(.assign, AssignMessage(job: first)).header)
    spool.lines(first.ref, firstSeq: 1, LogChunk([(.stdout, 1, "first job")]))
    spool.flush()
    let file = try #require(spool.file(of: first.ref))
    let firstInode = try inode(file)
    spool.forget(first.ref)
    // Emptied where it is, not renamed: an empty file is no attempt's.
    #expect(try names() == ["slot-0.spool"])
    #expect(try Data(contentsOf: URL(fileURLWithPath: file)).isEmpty)
    #expect(LogSpool.recover(directory: dir).isEmpty)

    // The next attempt's file is the same inode, holding only its own records.
    let second = job("2", 1)
    spool.assigned(second, header: WireEnvelope(.assign, AssignMessage(job: second)).header)
    spool.lines(second.ref, firstSeq: 1, LogChunk([(.stdout, 1, "second job")]))
    spool.flush()
    #expect(spool.file(of: second.ref) == file)
    #expect(try inode(file) == firstInode)
    let recovered = try #require(LogSpool.recover(directory: dir).first)
    #expect(recovered.job.ref == second.ref)
    #expect(recovered.file == file)
    #expect(recovered.chunks.flatMap { $0.chunk.lines(firstSeq: $0.firstSeq) }.map(\.line) == ["second job"])

    // A restart: an earlier version's free file goes, an empty slot file is free again,
    // and the attempt an earlier run left keeps its file.
    try Data("S leftover\n".utf8).write(to: URL(fileURLWithPath: dir + "/free-7"))
    try Data().write(to: URL(fileURLWithPath: dir + "/slot-4.spool"))
    let restarted = LogSpool(directory: dir)
    #expect(try names() == ["slot-0.spool", "slot-4.spool"])
    #expect(restarted.recover().map(\.job.ref) == [second.ref])
    restarted.report(
      WireEnvelope(
        .cleanup,
        CleanupMessage(
          workerID: "w", jobID: "2", attempt: 1, state: .done, bytesFreed: 0, diskFreeAfter: 1, reason: nil)),
      second.ref)
    restarted.flush()
    #expect(restarted.file(of: second.ref) == file)
    let again = try #require(LogSpool.recover(directory: dir).first)
    #expect(again.chunks.flatMap { $0.chunk.lines(firstSeq: $0.firstSeq) }.map(\.line) == ["second job"])
    #expect(again.cleanup?.state == .done)
    // A new attempt takes the free one; past both, a new one is numbered after them.
    let third = job("3", 1)
    let fourth = job("4", 1)
    restarted.assigned(third, header: WireEnvelope(.assign, AssignMessage(job: third)).header)
    restarted.assigned(fourth, header: WireEnvelope(.assign, AssignMessage(job: fourth)).header)
    restarted.flush()
    #expect(
      Set([restarted.file(of: third.ref), restarted.file(of: fourth.ref)])
        == [dir + "/slot-4.spool", dir + "/slot-5.spool"])
    // Forgotten, it is emptied and kept for the next.
    restarted.forget(second.ref)
    #expect(try names() == ["slot-0.spool", "slot-4.spool", "slot-5.spool"])
    #expect(Set(LogSpool.recover(directory: dir).map(\.job.ref)) == [third.ref, fourth.ref])
  }

  @Test func anEarlierVersionsFileIsDeletedOnceForgotten() throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("spool-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let old = job("6", 2)
    let header = WireEnvelope(.assign, AssignMessage(job: old)).header
    try (Data("S ".utf8) + header + Data("\n".utf8)).write(to: URL(fileURLWithPath: dir + "/6-2.spool"))
    let spool = LogSpool(directory: dir)
    #expect(spool.recover().map(\.job.ref) == [old.ref])
    spool.lines(old.ref, firstSeq: 1, LogChunk([(.stdout, 1, "appended")]))
    spool.flush()
    #expect(spool.file(of: old.ref) == dir + "/6-2.spool")
    let read = try #require(LogSpool.recover(directory: dir).first)
    #expect(read.chunks.flatMap { $0.chunk.lines(firstSeq: $0.firstSeq) }.map(\.line) == ["appended"])
    spool.forget(old.ref)
    #expect(try FileManager.default.contentsOfDirectory(atPath: dir).isEmpty)
  }

  @Test func aSpoolAnEarlierVersionWroteIsReadBack() throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("spool-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let assignment = try String(decoding: WireCoding.encoder.encode(job("9", 1)), as: UTF8.self)
    let text = """
      A \(assignment)
      L {"seq":1,"stream":"stdout","time":5,"line":"old one"}
      L {"seq":2,"stream":"stderr","time":6,"line":"old two"}

      """
    try text.write(toFile: dir + "/9-1.spool", atomically: true, encoding: .utf8)
    let recovered = try #require(LogSpool.recover(directory: dir).first)
    let lines = recovered.chunks.flatMap { $0.chunk.lines(firstSeq: $0.firstSeq) }
    #expect(
      lines == [
        LogLine(seq: 1, stream: .stdout, time: 5, line: "old one"),
        LogLine(seq: 2, stream: .stderr, time: 6, line: "old two"),
      ])
  }

  @Test func aRestoredAttemptIsReportedAsActiveAndResentAfterRegistering() throws {
    var core = makeCore()
    let assigned = job("7", 1)
    let chunks = [
      WorkerCore.NumberedChunk(
        firstSeq: 1, chunk: LogChunk([(.stdout, 1, "line 1"), (.stdout, 1, "line 2")])),
      WorkerCore.NumberedChunk(firstSeq: 3, chunk: LogChunk([(.stdout, 1, "line 3")])),
    ]
    core.restore(
      job: assigned, chunks: chunks,
      // As spooled: the header names a tail whose lines are in the spool as lines.
      finished: FinishedMessage(
        workerID: "w-1", jobID: "7", attempt: 1, state: .succeeded, exitCode: 0, error: nil, locals: nil,
        lastLogSeq: 3, tail: LogTail(firstSeq: 3, count: 1)),
      cleanup: CleanupMessage(
        workerID: "w-1", jobID: "7", attempt: 1, state: .done, bytesFreed: 0, diskFreeAfter: 1, reason: nil),
      now: 1)
    core.start(now: 0)
    let register = core.takeActions()
    guard case .send(let envelope) = register.first else {
      Issue.record("no register")
      return
    }
    #expect(try envelope.decode(RegisterMessage.self).activeAttempts == [assigned.ref])
    core.received(
      WireEnvelope(.registered, RegisteredMessage(heartbeatInterval: 1, liveness: 3, stopAttempts: [])),
      now: 0)
    let sent = core.takeActions().compactMap { action -> WireEnvelope? in
      if case .send(let e) = action { return e }
      return nil
    }
    #expect(sent.map(\.type) == [.logBatch, .finished, .cleanup])
    // The result goes bare (its lines went as the batch), and decodes as one.
    let (finished, tail) = try sent[1].decodeFinished()
    #expect(finished.tail == nil)
    #expect(tail == nil)
  }

  @Test func aResultWaitsBehindARestoredLogLargerThanTheWindow() throws {
    var core = makeCore()
    core.maxInFlightLines = 2
    core.maxBatchLines = 2
    let assigned = job("7", 1)
    core.restore(
      job: assigned,
      chunks: (1...5).map {
        WorkerCore.NumberedChunk(firstSeq: $0, chunk: LogChunk([(.stdout, 1, "line \($0)")]))
      },
      finished: FinishedMessage(
        workerID: "w-1", jobID: "7", attempt: 1, state: .succeeded, exitCode: 0, error: nil, locals: nil,
        lastLogSeq: 5),
      cleanup: nil, now: 1)
    core.start(now: 0)
    _ = core.takeActions()
    func sent(_ actions: [WorkerCore.Action]) -> [MessageType] {
      actions.compactMap { if case .send(let e) = $0 { e.type } else { nil } }
    }
    core.received(
      WireEnvelope(.registered, RegisteredMessage(heartbeatInterval: 1, liveness: 3, stopAttempts: [])),
      now: 0)
    // Two lines fit the window; the result waits behind the other three.
    #expect(sent(core.takeActions()) == [.logBatch])
    core.received(WireEnvelope(.logAck, LogAckMessage(jobID: "7", attempt: 1, upTo: 2)), now: 0.1)
    #expect(sent(core.takeActions()) == [.logBatch])
    core.received(WireEnvelope(.logAck, LogAckMessage(jobID: "7", attempt: 1, upTo: 4)), now: 0.2)
    #expect(sent(core.takeActions()) == [.logBatch])
    core.received(WireEnvelope(.logAck, LogAckMessage(jobID: "7", attempt: 1, upTo: 5)), now: 0.3)
    #expect(sent(core.takeActions()) == [.finished])
  }

  @Test func linesMissingFromTheSpoolAreDeliveredAsLostSoTheResultStillGoes() throws {
    var core = makeCore()
    func finished(_ last: Int) -> FinishedMessage {
      FinishedMessage(
        workerID: "w-1", jobID: "7", attempt: 1, state: .succeeded, exitCode: 0, error: nil, locals: nil,
        lastLogSeq: last)
    }
    // Lines 3-4 and 7-8 never reached the spool (a full disk); lines 1-2 and 5-6 did.
    let chunks = [
      WorkerCore.NumberedChunk(firstSeq: 5, chunk: LogChunk([(.stdout, 1, "five"), (.stdout, 1, "six")])),
      WorkerCore.NumberedChunk(firstSeq: 1, chunk: LogChunk([(.stdout, 1, "one"), (.stdout, 1, "two")])),
    ]
    #expect(core.restore(job: job("7", 1), chunks: chunks, finished: finished(8), cleanup: nil, now: 5) == 4)
    let lines = try #require(core.attempts[AttemptRef(jobID: "7", attempt: 1)]).unacked.flatMap {
      $0.chunk.lines(firstSeq: $0.firstSeq)
    }
    #expect(lines.map(\.seq) == Array(1...8))
    #expect(lines.map(\.line)[0...1] == ["one", "two"])
    #expect(lines[2].line.hasPrefix("pinpool: 2 log lines were lost") && lines[2].stream == .pinpool)
    #expect(lines[3].line.isEmpty && lines[3].stream == .pinpool)
    #expect(lines.map(\.line)[4...5] == ["five", "six"])
    #expect(lines[6].line.hasPrefix("pinpool: 2 log lines were lost"))
    // A result that claims far more lines than any job printed is a corrupt spool.
    var other = makeCore()
    #expect(
      other.restore(job: job("7", 1), chunks: chunks, finished: finished(1 << 40), cleanup: nil, now: 5)
        == nil)
    #expect(other.attempts.isEmpty)
  }

  @Test func aCorruptSpoolIsReadAsFarAsItGoesAndNeverTraps() throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("spool-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let assignment = try String(decoding: WireCoding.encoder.encode(job("9", 1)), as: UTF8.self)
    let good = LogChunk([(.stdout, 1, "kept")])
    for (index, bad) in [
      "K 9223372036854775807 1 18\n", "K 1 -4 18\n", "K 1 1 999999\n", "K x y z\n",
      "L {\"seq\":-3,\"stream\":\"stdout\",\"time\":1,\"line\":\"x\"}\n",
      "L {\"seq\":2,\"stream\":\"stdout\",\"time\":1e300,\"line\":\"x\"}\n",
    ].enumerated() {
      var data = Data("A \(assignment)\nK 1 1 \(good.bytes.count)\n".utf8) + good.bytes + Data("\n".utf8)
      data += Data(bad.utf8) + LogChunk([(.stdout, 1, "bad")]).bytes + Data("\n".utf8)
      try data.write(to: URL(fileURLWithPath: dir + "/9-\(index).spool"))
    }
    let recovered = LogSpool.recover(directory: dir)
    #expect(recovered.count == 6)
    for spool in recovered {
      #expect(spool.chunks.flatMap { $0.chunk.lines(firstSeq: $0.firstSeq) }.map(\.line) == ["kept"])
    }
  }

  @Test func aFullDiskIsReportedNotATrap() throws {
    guard FileManager.default.isWritableFile(atPath: "/dev/full") else { return }
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("spool-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let spool = LogSpool(directory: dir)
    // The attempt's spool file (the first new one) is a disk with no space left: every
    // write fails with ENOSPC.
    try FileManager.default.createSymbolicLink(
      atPath: dir + "/slot-0.spool", withDestinationPath: "/dev/full")
    spool.lines(job("7", 1).ref, firstSeq: 1, LogChunk([(.stdout, 1, "nowhere to go")]))
    let failures = spool.flush()
    #expect(failures.count == 1)
    #expect(failures.first?.contains("slot-0.spool") == true)
    // The next flush has nothing left to write and nothing to complain about.
    #expect(spool.flush().isEmpty)
  }
}
