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

  @Test func recordsSurviveARestartAndATornLastRecordIsIgnored() throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("spool-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let spool = LogSpool(directory: dir)
    let finishedJob = job("7", 1)
    let runningJob = job("8", 2)
    spool.assigned(finishedJob)
    spool.assigned(runningJob)
    for seq in 1...3 {
      spool.line(finishedJob.ref, LogLine(seq: seq, stream: .stdout, time: 1, line: "line \(seq)"))
    }
    spool.line(runningJob.ref, LogLine(seq: 1, stream: .stdout, time: 1, line: "still running"))
    spool.finished(
      FinishedMessage(
        workerID: "w", jobID: "7", attempt: 1, state: .succeeded, exitCode: 0, error: nil, locals: nil,
        lastLogSeq: 3))
    spool.flush()
    // A crash in the middle of a write leaves half a record.
    let handle = try #require(FileHandle(forWritingAtPath: dir + "/7-1.spool"))
    handle.seekToEndOfFile()
    handle.write(Data("L {\"seq\":4,\"str".utf8))
    try handle.close()

    let recovered = LogSpool.recover(directory: dir).sorted { $0.job.jobID < $1.job.jobID }
    #expect(recovered.count == 2)
    #expect(recovered[0].job.ref == finishedJob.ref)
    #expect(recovered[0].lines.map(\.line) == ["line 1", "line 2", "line 3"])
    #expect(recovered[0].finished?.state == .succeeded)
    #expect(recovered[0].cleanup == nil)
    #expect(recovered[1].finished == nil)

    spool.forget(finishedJob.ref)
    #expect(!FileManager.default.fileExists(atPath: dir + "/7-1.spool"))
  }

  @Test func aRestoredAttemptIsReportedAsActiveAndResentAfterRegistering() throws {
    let advert = WorkerAdvert(
      id: "w-1", name: "w",
      host: HostInfo(cpuCores: 1, memoryTotal: 1, platform: "linux", arch: "x64", hostname: "h"),
      gpus: [], diskFree: 1, slots: 1, labels: [:])
    var core = WorkerCore(advert: advert, heartbeatInterval: 1, liveness: 3, now: 0)
    let assigned = job("7", 1)
    let lines = (1...3).map { LogLine(seq: $0, stream: .stdout, time: 1, line: "line \($0)") }
    core.restore(
      job: assigned, lines: lines,
      finished: FinishedMessage(
        workerID: "w-1", jobID: "7", attempt: 1, state: .succeeded, exitCode: 0, error: nil, locals: nil,
        lastLogSeq: 3),
      cleanup: CleanupMessage(
        workerID: "w-1", jobID: "7", attempt: 1, state: .done, bytesFreed: 0, diskFreeAfter: 1, reason: nil))
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
    let types = core.takeActions().compactMap { action -> MessageType? in
      if case .send(let e) = action { return e.type }
      return nil
    }
    #expect(types == [.logBatch, .finished, .cleanup])
  }

  @Test func aFullDiskIsReportedNotATrap() throws {
    guard FileManager.default.isWritableFile(atPath: "/dev/full") else { return }
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("spool-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    // The attempt's spool file is a disk with no space left: every write fails with ENOSPC.
    try FileManager.default.createSymbolicLink(atPath: dir + "/7-1.spool", withDestinationPath: "/dev/full")
    let spool = LogSpool(directory: dir)
    spool.line(job("7", 1).ref, LogLine(seq: 1, stream: .stdout, time: 1, line: "nowhere to go"))
    let failures = spool.flush()
    #expect(failures.count == 1)
    #expect(failures.first?.contains("7-1.spool") == true)
    // The next flush has nothing left to write and nothing to complain about.
    #expect(spool.flush().isEmpty)
  }
}
