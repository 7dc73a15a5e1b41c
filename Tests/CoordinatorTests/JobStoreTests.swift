import Foundation
import GRDB
import GRDBSQLite
import Testing

@testable import Coordinator
@testable import Shared

private let GB: Int64 = 1_000_000_000

/// A store in a fresh temporary folder, removed when the test ends.
private final class TempStoreDirectory {
  let path: String

  init() throws {
    path =
      FileManager.default.temporaryDirectory
      .appendingPathComponent("pinpool-store-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
  }

  func open() throws -> JobStore { try JobStore(directory: path) }

  deinit { try? FileManager.default.removeItem(atPath: path) }
}

private func row(
  _ id: Int64, name: String = "job", priority: Int = 0, retries: Int = 0,
  args: JSONValue = .object(JSONObject()), requirements: Requirements = Requirements(),
  timeout: Double? = nil, at: Double = 1_000
) -> NewJobRow {
  NewJobRow(
    id: id, name: name, priority: priority, retries: retries, entry: "install.json", args: args,
    requirements: requirements, artifacts: ["out/*.mp4"], timeoutSeconds: timeout, submittedAt: at)
}

private func lines(_ seqs: ClosedRange<Int>, prefix: String = "line") -> [LogLine] {
  seqs.map { LogLine(seq: $0, stream: $0 % 2 == 0 ? .stderr : .stdout, time: 2_000, line: "\(prefix) \($0)") }
}

private func chunk(_ lines: [LogLine]) -> LogChunk { LogChunk(lines.map { ($0.stream, $0.time, $0.line) }) }

/// Lines continuing a job's log, numbered as the worker numbered them.
private func appendLogs(jobID: Int64, attempt: Int, firstJobSeq: Int, lines: [LogLine]) -> StoreChange {
  .appendLogChunk(
    jobID: jobID, attempt: attempt, firstJobSeq: firstJobSeq, firstWorkerSeq: lines.first?.seq ?? 1,
    chunk: chunk(lines))
}

private func advert(_ name: String) -> WorkerAdvert {
  WorkerAdvert(
    id: "w-\(name)", name: name,
    host: HostInfo(cpuCores: 4, memoryTotal: 32 * GB, platform: "linux", arch: "x64", hostname: name),
    gpus: [GPU(index: 0, vendor: .nvidia, model: "RTX 4090", vramTotal: 24 * GB, vramFree: 20 * GB)],
    diskFree: 100 * GB, slots: 2, labels: ["site": "studio"])
}

private func noReason(_: Int64) -> String? { nil }

@Suite struct JobStoreTests {
  /// SQLite expires every prepared statement when a flag pragma such as `query_only`
  /// changes; a read that toggled it had every cached statement compiled again.
  @Test func readsKeepCachedStatementsCompiled() throws {
    let dir = try TempStoreDirectory()
    let store = try dir.open()
    try store.apply([.insertJobs([row(1)], bundleHash: "h1", bundle: [1])])
    var reprepared: [Int32] = []
    for round in 0..<4 {
      try store.apply([.jobNotification(id: 1, text: "round \(round)")])
      reprepared.append(
        try store.read { db in
          let statement = try db.cachedStatement(sql: "SELECT COUNT(*) FROM jobs WHERE state = ?")
          #expect(try Int.fetchOne(statement, arguments: ["queued"]) == 1)
          return sqlite3_stmt_status(statement.sqliteStatement, SQLITE_STMTSTATUS_REPREPARE, 0)
        })
      #expect(try store.maxJobID() == 1)
    }
    #expect(reprepared == [0, 0, 0, 0])
  }

  @Test func appliedChangesReadBackAsViews() throws {
    let dir = try TempStoreDirectory()
    let store = try dir.open()
    let requirements = Requirements(gpus: 1, vram: 20 * GB, labels: ["site": "studio"])
    try store.apply([
      .insertJobs(
        [
          row(1, name: "a", priority: 2, requirements: requirements),
          row(2, name: "b", requirements: requirements),
        ],
        bundleHash: "h1", bundle: [9, 8, 7])
    ])
    try store.apply([
      .jobAssigned(id: 1, attempt: 1, workerID: "w-box", workerName: "box", gpus: [0], at: 1_001),
      .jobProgress(
        id: 1, state: .running, stepIndex: 1, stepCount: 3, locals: .object(JSONObject([("x", .number(1))])),
        at: 1_002),
      .jobNotification(id: 1, text: "downloading"),
      .jobNotification(id: 1, text: "rendering"),
      appendLogs(jobID: 1, attempt: 1, firstJobSeq: 1, lines: lines(1...3)),
    ])

    let one = try #require(try store.job(1, waitReason: { _ in "never asked" }))
    #expect(one.id == "1")
    #expect(one.name == "a")
    #expect(one.state == .running)
    #expect(one.attempt == 1)
    #expect(one.worker == "box")
    #expect(one.gpus == [0])
    #expect(one.step == StepView(index: 1, count: 3))
    #expect(one.locals == .object(JSONObject([("x", .number(1))])))
    #expect(one.notifications == ["downloading", "rendering"])
    #expect(one.priority == 2)
    #expect(one.requirements == requirements)
    #expect(one.startedAt == Timestamp.iso(1_002))
    #expect(one.assignedAt == Timestamp.iso(1_001))
    #expect(one.submittedAt == Timestamp.iso(1_000))
    #expect(one.finishedAt == nil)
    #expect(one.cleanup.state == CleanupState.none)
    #expect(one.waitReason == nil)

    let two = try #require(try store.job(2, waitReason: { $0 == 2 ? "needs 1 GPU" : nil }))
    #expect(two.state == .queued)
    #expect(two.worker == nil)
    #expect(two.waitReason == "needs 1 GPU")
    #expect(two.assignedAt == nil)
    #expect(try store.job(3, waitReason: noReason) == nil)

    #expect(try store.jobs(state: .queued, worker: nil, limit: 100, waitReason: noReason).map(\.id) == ["2"])
    #expect(try store.jobs(state: nil, worker: "box", limit: 100, waitReason: noReason).map(\.id) == ["1"])
    #expect(try store.jobs(state: nil, worker: "w-box", limit: 100, waitReason: noReason).map(\.id) == ["1"])
    #expect(
      try store.jobs(state: nil, worker: nil, limit: 100, waitReason: noReason).map(\.id) == ["1", "2"])
    // The newest jobs, listed oldest first.
    #expect(try store.jobs(state: nil, worker: nil, limit: 1, waitReason: noReason).map(\.id) == ["2"])

    let log = try store.logs(jobID: 1, since: 0, limit: 100)
    #expect(log.map(\.seq) == [1, 2, 3])
    #expect(log.map(\.line) == ["line 1", "line 2", "line 3"])
    #expect(log.map(\.stream) == [.stdout, .stderr, .stdout])
    #expect(log.allSatisfy { $0.attempt == 1 && $0.time == Timestamp.iso(2_000) })
    #expect(try store.logs(jobID: 1, since: 2, limit: 100).map(\.seq) == [3])
    #expect(try store.logs(jobID: 1, since: 0, limit: 2).map(\.seq) == [1, 2])
    #expect(try store.logs(jobID: 2, since: 0, limit: 100).isEmpty)
    #expect(try store.jobExists(1))
    #expect(try !store.jobExists(99))
    #expect(try store.maxJobID() == 2)
  }

  @Test func aResultsStepReportIsStoredWithIt() throws {
    let dir = try TempStoreDirectory()
    let store = try dir.open()
    try store.apply([.insertJobs([row(1), row(2)], bundleHash: "h", bundle: [1])])
    try store.apply([
      .jobAssigned(id: 1, attempt: 1, workerID: "w-box", workerName: "box", gpus: [], at: 1_001),
      .jobAssigned(id: 2, attempt: 1, workerID: "w-box", workerName: "box", gpus: [], at: 1_001),
      .jobProgress(id: 2, state: .running, stepIndex: 0, stepCount: 3, locals: nil, at: 1_002),
      // No report said job 1 ran: the result dates its start.
      .jobFinished(
        id: 1, attempt: 1, state: .succeeded, exitCode: 0, error: nil, locals: nil, at: 1_010,
        started: StartedRecord(startedAt: 1_009.5, stepIndex: 0, stepCount: 1)),
      // Job 2 said so: a start in the record does not move the one stored.
      .jobFinished(
        id: 2, attempt: 1, state: .succeeded, exitCode: 0, error: nil, locals: nil, at: 1_010,
        started: StartedRecord(startedAt: 1_009, stepIndex: 2, stepCount: 3)),
    ])
    let short = try #require(try store.job(1, waitReason: noReason))
    #expect(short.startedAt == Timestamp.iso(1_009.5))
    #expect(short.step == StepView(index: 0, count: 1))
    #expect(short.state == .succeeded)
    let long = try #require(try store.job(2, waitReason: noReason))
    #expect(long.startedAt == Timestamp.iso(1_002))
    #expect(long.step == StepView(index: 2, count: 3))
  }

  @Test func finishAndCleanup() throws {
    let dir = try TempStoreDirectory()
    let store = try dir.open()
    try store.apply([.insertJobs([row(1), row(2)], bundleHash: "h", bundle: [1])])
    try store.apply([
      .jobAssigned(id: 1, attempt: 1, workerID: "w-box", workerName: "box", gpus: [], at: 1_001),
      .jobProgress(id: 1, state: .running, stepIndex: 0, stepCount: 1, locals: nil, at: 1_002),
      .jobFinished(
        id: 1, attempt: 1, state: .succeeded, exitCode: 0, error: nil,
        locals: .object(JSONObject([("url", .string("http://x"))])), at: 1_010),
      // Never reached a worker: nothing to clean.
      .jobFinished(
        id: 2, attempt: 0, state: .cancelled, exitCode: nil, error: "cancelled before it started",
        locals: nil,
        at: 1_011),
    ])
    let done = try #require(try store.job(1, waitReason: noReason))
    #expect(done.state == .succeeded)
    #expect(done.exitCode == 0)
    #expect(done.finishedAt == Timestamp.iso(1_010))
    #expect(done.cleanup.state == .pending)
    #expect(done.locals["url"] == .string("http://x"))
    let cancelled = try #require(try store.job(2, waitReason: noReason))
    #expect(cancelled.state == .cancelled)
    #expect(cancelled.error == "cancelled before it started")
    #expect(cancelled.cleanup.state == CleanupState.none)

    // A cleanup report for another attempt does not touch the job.
    try store.apply([
      .jobCleanup(id: 1, attempt: 7, state: .kept, bytesFreed: nil, diskFreeAfter: nil, reason: "x")
    ])
    #expect(try store.job(1, waitReason: noReason)?.cleanup.state == .pending)
    try store.apply([
      .jobCleanup(id: 1, attempt: 1, state: .done, bytesFreed: 4_096, diskFreeAfter: 50 * GB, reason: nil)
    ])
    let cleaned = try #require(try store.job(1, waitReason: noReason))
    #expect(
      cleaned.cleanup == CleanupView(state: .done, bytesFreed: 4_096, diskFreeAfter: 50 * GB, reason: nil))
    #expect(try store.liveJobs().isEmpty)
  }

  @Test func requeueResetsTheJobRow() throws {
    let dir = try TempStoreDirectory()
    let store = try dir.open()
    try store.apply([
      .insertJobs([row(1, retries: 2)], bundleHash: "h", bundle: [1]),
      .jobAssigned(id: 1, attempt: 1, workerID: "w-box", workerName: "box", gpus: [1], at: 1_001),
      .jobProgress(id: 1, state: .running, stepIndex: 2, stepCount: 3, locals: nil, at: 1_002),
      .attemptEnded(id: 1, attempt: 1, state: .failed, error: "exit 1", at: 1_003),
      .jobRequeued(id: 1, attempt: 1, failures: 1, lostCount: 0, reason: "exit 1", at: 1_003),
    ])
    let view = try #require(try store.job(1, waitReason: { _ in "waiting" }))
    #expect(view.state == .queued)
    #expect(view.worker == nil)
    #expect(view.gpus == [])
    #expect(view.error == "requeued: exit 1")
    #expect(view.startedAt == nil)
    #expect(view.waitReason == "waiting")
    let live = try store.liveJobs()
    #expect(live.count == 1)
    #expect(live.first?.0.failures == 1)
    #expect(live.first?.0.state == .queued)
    #expect(live.first?.0.workerID == nil)

    // The next assignment clears what the failed attempt left.
    try store.apply([.jobAssigned(id: 1, attempt: 2, workerID: "w-b", workerName: "b", gpus: [0], at: 1_004)])
    let again = try #require(try store.job(1, waitReason: noReason))
    #expect(again.attempt == 2)
    #expect(again.error == nil)
    #expect(again.step == StepView(index: 0, count: 0))
    #expect(again.worker == "b")
  }

  @Test func chattyLogsLiveInAFilePerJobAndBytesNothingIndexesAreOverwritten() throws {
    let dir = try TempStoreDirectory()
    // Lines of 6,000 bytes: three make a chunk over the inline limit, so it goes to a file.
    let long = String(repeating: "x", count: 6_000)
    do {
      let store = try dir.open()
      try store.apply([
        .insertJobs([row(1), row(2)], bundleHash: "h", bundle: [1]),
        appendLogs(jobID: 1, attempt: 1, firstJobSeq: 1, lines: lines(1...3, prefix: long)),
        appendLogs(jobID: 2, attempt: 1, firstJobSeq: 1, lines: lines(1...1, prefix: "other")),
      ])
      #expect(FileManager.default.fileExists(atPath: store.logFiles.path(1)))
      // A job that prints little keeps its lines in the store: no file of its own.
      #expect(!FileManager.default.fileExists(atPath: store.logFiles.path(2)))
    }
    // A crash after the bytes were written and before their index rows committed: the
    // file is longer than the index says.
    let file = dir.path + "/logs/1.log"
    let handle = try #require(FileHandle(forWritingAtPath: file))
    try handle.seekToEnd()
    try handle.write(contentsOf: Data(repeating: 0xEE, count: 100))
    try handle.close()

    let store = try dir.open()
    try store.apply([
      appendLogs(jobID: 1, attempt: 1, firstJobSeq: 4, lines: lines(4...5, prefix: long)),
      appendLogs(jobID: 1, attempt: 1, firstJobSeq: 6, lines: lines(6...6, prefix: "short")),
    ])
    let log = try store.logs(jobID: 1, since: 0, limit: 100)
    #expect(log.map(\.seq) == [1, 2, 3, 4, 5, 6])
    #expect(log.map(\.line) == (1...5).map { "\(long) \($0)" } + ["short 6"])
    #expect(log.map(\.stream) == [.stdout, .stderr, .stdout, .stderr, .stdout, .stderr])
    #expect(try store.logs(jobID: 1, since: 2, limit: 2).map(\.seq) == [3, 4])
    #expect(try store.logs(jobID: 2, since: 0, limit: 100).map(\.line) == ["other 1"])
    // A file that lost data is an error that says so, not lines made up.
    try FileHandle(forWritingAtPath: file)?.truncate(atOffset: 20)
    #expect(throws: StoreError.self) { try store.logs(jobID: 1, since: 0, limit: 100) }
  }

  @Test func aFirstAttemptsLogStartsEmptyAndALaterAttemptContinuesIt() throws {
    let dir = try TempStoreDirectory()
    let long = String(repeating: "y", count: 6_000)
    do {
      let store = try dir.open()
      try store.apply([.insertJobs([row(1)], bundleHash: "h", bundle: [1])])
      try store.apply([.jobAssigned(id: 1, attempt: 1, workerID: "w", workerName: "w", gpus: [], at: 1)])
      try store.apply([appendLogs(jobID: 1, attempt: 1, firstJobSeq: 1, lines: lines(1...3, prefix: long))])
      // The same assignment applied again (a repeated batch) does not forget the lines.
      try store.apply([.jobAssigned(id: 1, attempt: 1, workerID: "w", workerName: "w", gpus: [], at: 1)])
      try store.apply([.jobAssigned(id: 1, attempt: 2, workerID: "w", workerName: "w", gpus: [], at: 2)])
      try store.apply([appendLogs(jobID: 1, attempt: 2, firstJobSeq: 4, lines: lines(4...5, prefix: long))])
      #expect(try store.logs(jobID: 1, since: 0, limit: 100).map(\.seq) == [1, 2, 3, 4, 5])
    }
    let reopened = try dir.open()
    let log = try reopened.logs(jobID: 1, since: 0, limit: 100)
    #expect(log.map(\.seq) == [1, 2, 3, 4, 5])
    #expect(log.map(\.line) == (1...5).map { "\(long) \($0)" })
  }

  @Test func anIndexThatDisagreesWithItsBytesIsAnErrorNotALoop() throws {
    let dir = try TempStoreDirectory()
    let long = String(repeating: "y", count: 9_000)
    let store = try dir.open()
    try store.apply([
      .insertJobs([row(1), row(2), row(3)], bundleHash: "h", bundle: [1]),
      appendLogs(jobID: 1, attempt: 1, firstJobSeq: 1, lines: lines(1...2)),
      appendLogs(jobID: 2, attempt: 1, firstJobSeq: 1, lines: lines(1...2, prefix: long)),
      appendLogs(jobID: 3, attempt: 1, firstJobSeq: 1, lines: lines(1...1)),
    ])
    let queue = try DatabaseQueue(path: dir.path + "/pinpool.sqlite")
    try queue.write { db in
      // Job 1's row claims more lines than its bytes hold; job 2's a negative length;
      // job 3's names no bytes at all.
      try db.execute(sql: "UPDATE log_chunks SET last_seq = last_seq + 5 WHERE job_id = 1")
      try db.execute(sql: "UPDATE log_chunks SET length = -5 WHERE job_id = 2")
      try db.execute(sql: "UPDATE log_chunks SET data = NULL WHERE job_id = 3")
    }
    for job: Int64 in [1, 2, 3] {
      #expect(throws: StoreError.self) { try store.logs(jobID: job, since: 0, limit: 100) }
    }
  }

  @Test func logRowsOfAnEarlierVersionMoveToFiles() throws {
    let dir = try TempStoreDirectory()
    do {
      _ = try dir.open()
    }
    // Turn the store back into one an earlier version (v5) wrote: a row per line.
    let queue = try DatabaseQueue(path: dir.path + "/pinpool.sqlite")
    try queue.write { db in
      try db.execute(sql: "DROP TABLE log_chunks")
      try db.execute(sql: "DELETE FROM grdb_migrations WHERE identifier = 'v6-log-files'")
      try db.execute(
        sql: """
          CREATE TABLE logs (
            job_id INTEGER NOT NULL, seq INTEGER NOT NULL, attempt INTEGER NOT NULL, wseq INTEGER NOT NULL,
            stream TEXT NOT NULL, time REAL NOT NULL, line TEXT NOT NULL, PRIMARY KEY (job_id, seq)
          ) WITHOUT ROWID
          """)
      // Job 1: attempt 1 printed two lines, attempt 2 three; job 2 one line.
      let rows: [(Int64, Int, Int, Int, String, String)] = [
        (1, 1, 1, 1, "stdout", "a1"), (1, 2, 1, 2, "stderr", "a2"),
        (1, 3, 2, 1, "pinpool", "b1"), (1, 4, 2, 2, "stdout", "b2"), (1, 5, 2, 3, "stdout", "b3 ✓"),
        (2, 1, 1, 1, "stdout", "c1"),
      ]
      for (job, seq, attempt, wseq, stream, line) in rows {
        try db.execute(
          sql: "INSERT INTO logs VALUES (?, ?, ?, ?, ?, ?, ?)",
          arguments: [job, seq, attempt, wseq, stream, 1_000 + Double(seq), line])
      }
    }
    try FileManager.default.removeItem(atPath: dir.path + "/logs")

    let store = try dir.open()
    let log = try store.logs(jobID: 1, since: 0, limit: 100)
    #expect(log.map(\.seq) == [1, 2, 3, 4, 5])
    #expect(log.map(\.line) == ["a1", "a2", "b1", "b2", "b3 ✓"])
    #expect(log.map(\.attempt) == [1, 1, 2, 2, 2])
    #expect(log.map(\.stream) == [.stdout, .stderr, .pinpool, .stdout, .stdout])
    #expect(log.first?.time == Timestamp.iso(1_001))
    #expect(try store.logs(jobID: 2, since: 0, limit: 100).map(\.line) == ["c1"])
    let tables = try queue.read {
      try String.fetchAll($0, sql: "SELECT name FROM sqlite_master WHERE type = 'table'")
    }
    #expect(!tables.contains("logs"))
    // Appending goes on where the moved log ends.
    try store.apply([appendLogs(jobID: 1, attempt: 2, firstJobSeq: 6, lines: lines(4...4))])
    #expect(try store.logs(jobID: 1, since: 5, limit: 100).map(\.line) == ["line 4"])
  }

  @Test func duplicateLogSequenceNumbersAreStoredOnce() throws {
    let dir = try TempStoreDirectory()
    let store = try dir.open()
    try store.apply([
      .insertJobs([row(1)], bundleHash: "h", bundle: [1]),
      appendLogs(jobID: 1, attempt: 1, firstJobSeq: 1, lines: lines(1...3)),
    ])
    try store.apply([appendLogs(jobID: 1, attempt: 1, firstJobSeq: 2, lines: lines(2...3, prefix: "again"))])
    let log = try store.logs(jobID: 1, since: 0, limit: 10)
    #expect(log.map(\.seq) == [1, 2, 3])
    #expect(log.map(\.line) == ["line 1", "line 2", "line 3"])
  }

  @Test func assignmentCarriesTheScriptAndBundle() throws {
    let dir = try TempStoreDirectory()
    let store = try dir.open()
    let args = JSONValue.object(
      JSONObject([
        ("index", .number(4)), ("prompt", .string("a \"cat\" in\nthe rain — 雨")), ("scale", .number(-0.125)),
        ("flags", .array([.bool(true), .null, .object(JSONObject([("deep", .array([]))]))])),
      ]))
    try store.apply([
      .insertJobs(
        [row(1, name: "sweep[4]", args: args, requirements: Requirements(disk: 10 * GB), timeout: 60)],
        bundleHash: "h", bundle: [0x50, 0x50, 0x42, 0x31])
    ])
    let (job, bundle) = try #require(try store.assignments([(1, 3, [2])])[0])
    #expect(job.jobID == "1")
    #expect(job.attempt == 3)
    #expect(job.name == "sweep[4]")
    #expect(job.entry == "install.json")
    #expect(job.args == args)
    #expect(job.gpuIndices == [2])
    #expect(job.requirements == Requirements(disk: 10 * GB))
    #expect(job.timeoutSeconds == 60)
    #expect(job.artifacts == ["out/*.mp4"])
    #expect(bundle == Data([0x50, 0x50, 0x42, 0x31]))
    // Cached the second time, same answer.
    #expect(try store.assignments([(1, 3, [2])])[0]?.1 == bundle)
    #expect(try store.assignments([(2, 1, [])])[0] == nil)
    // Several at once, in order, a missing one as nil in its place.
    let batch = try store.assignments([(1, 3, [2]), (2, 1, []), (1, 4, [0])])
    #expect(batch.map { $0?.0.attempt } == [3, nil, 4])
    #expect(batch.map { $0?.0.gpuIndices } == [[2], nil, [0]])
    #expect(batch.compactMap { $0?.1 } == [bundle, bundle])
  }

  @Test func reopenedStoreRestoresLiveJobsWithLogCursors() throws {
    let dir = try TempStoreDirectory()
    let requirements = Requirements(gpus: 1, gpuVendor: .nvidia, vram: 24 * GB, disk: 5 * GB)
    do {
      let store = try dir.open()
      try store.apply([
        .insertJobs(
          [
            row(
              1, name: "render", priority: 3, retries: 2, requirements: requirements, timeout: 600, at: 1_000),
            row(2, name: "queued", at: 1_000),
            row(3, name: "done", at: 1_000),
          ], bundleHash: "h", bundle: [1, 2]),
        .upsertWorker(advert("box"), state: .online, drained: false, lastSeen: 1_000),
      ])
      // Job 1: attempt 1 logged three lines, was lost, attempt 2 logged two so far.
      try store.apply([
        .jobAssigned(id: 1, attempt: 1, workerID: "w-box", workerName: "box", gpus: [0], at: 1_001),
        appendLogs(jobID: 1, attempt: 1, firstJobSeq: 1, lines: lines(1...3)),
        .attemptEnded(id: 1, attempt: 1, state: .lost, error: "gone", at: 1_050),
        .jobRequeued(id: 1, attempt: 1, failures: 0, lostCount: 1, reason: "gone", at: 1_050),
        .jobAssigned(id: 1, attempt: 2, workerID: "w-box", workerName: "box", gpus: [0], at: 1_060),
        .jobProgress(id: 1, state: .running, stepIndex: 0, stepCount: 2, locals: nil, at: 1_061),
        appendLogs(jobID: 1, attempt: 2, firstJobSeq: 4, lines: lines(1...2)),
        .jobAssigned(id: 3, attempt: 1, workerID: "w-box", workerName: "box", gpus: [], at: 1_002),
        .jobFinished(id: 3, attempt: 1, state: .succeeded, exitCode: 0, error: nil, locals: nil, at: 1_003),
        .workerState(id: "w-box", state: .draining, drained: true, lastSeen: 1_070),
      ])
    }

    let reopened = try dir.open()
    #expect(try reopened.maxJobID() == 3)
    let live = try reopened.liveJobs()
    #expect(live.map(\.0.id) == [1, 2])
    // Job 3 is final but still owes its cleanup report: its worker may be uploading artifacts.
    #expect(try reopened.owedCleanups().map(\.ref) == [AttemptRef(jobID: "3", attempt: 1)])
    #expect(try reopened.owedCleanups().map(\.workerID) == ["w-box"])

    let (job, cursor) = try #require(live.first)
    #expect(job.name == "render")
    #expect(job.priority == 3)
    #expect(job.retries == 2)
    #expect(job.lostCount == 1)
    #expect(job.failures == 0)
    #expect(job.attempt == 2)
    #expect(job.state == .running)
    #expect(job.workerID == "w-box")
    #expect(job.gpuIndices == [0])
    #expect(job.requirements == requirements)
    #expect(job.timeoutSeconds == 600)
    #expect(job.submittedAt == 1_000)
    #expect(job.startedAt == 1_061)
    #expect(cursor == CoordinatorCore.LogCursor(attempt: 2, workerSeq: 2, jobSeq: 5))

    let queued = live[1]
    #expect(queued.0.state == .queued)
    #expect(queued.0.attempt == 0)
    #expect(queued.1 == nil)

    // The logs survived too, job-wide numbered across attempts.
    let log = try reopened.logs(jobID: 1, since: 0, limit: 100)
    #expect(log.map(\.seq) == [1, 2, 3, 4, 5])
    #expect(log.map(\.attempt) == [1, 1, 1, 2, 2])

    let workers = try reopened.workers()
    #expect(workers.count == 1)
    #expect(workers.first?.0 == advert("box"))
    #expect(workers.first?.1 == true)
    #expect(workers.first?.2 == 1_070)
    #expect(workers.first?.3 == .draining)

    // A core restored from the reopened store carries on where the old one stopped.
    let nextID = try reopened.maxJobID() + 1
    var core = CoordinatorCore(settings: CoordinatorSettings(), nextJobID: nextID)
    for (job, cursor) in live { core.restore(job: job, cursor: cursor) }
    #expect(core.queue.keys.map(\.id) == [2])
    core.register(
      peer: [1],
      message: RegisterMessage(worker: advert("box"), activeAttempts: [AttemptRef(jobID: "1", attempt: 2)]),
      now: 2_000)
    _ = core.takeActions()
    core.logBatch(
      peer: [1], message: LogBatchMessage(workerID: "w-box", jobID: "1", attempt: 2, firstSeq: 1, count: 4),
      chunk: chunk(lines(1...4)), now: 2_001)
    let changes = core.takeActions().compactMap { action -> (Int, [Int])? in
      if case .store(.appendLogChunk(_, _, let first, let firstWorkerSeq, let chunk)) = action {
        (first, [Int](firstWorkerSeq..<firstWorkerSeq + chunk.count))
      } else {
        nil
      }
    }
    #expect(changes.count == 1)
    #expect(changes.first?.0 == 6)
    #expect(changes.first?.1 == [3, 4])
  }

  @Test func upsertKeepsTheDrainFlag() throws {
    let dir = try TempStoreDirectory()
    let store = try dir.open()
    try store.apply([
      .upsertWorker(advert("box"), state: .online, drained: false, lastSeen: 1),
      .workerState(id: "w-box", state: .drained, drained: true, lastSeen: 2),
    ])
    var renamed = advert("box")
    renamed.name = "box-2"
    // Re-registering does not undo a drain an operator asked for.
    try store.apply([.upsertWorker(renamed, state: .online, drained: false, lastSeen: 3)])
    let workers = try store.workers()
    #expect(workers.count == 1)
    #expect(workers.first?.0.name == "box-2")
    #expect(workers.first?.1 == true)
    #expect(workers.first?.2 == 3)
  }

  @Test func emptyBatchIsANoOp() throws {
    let dir = try TempStoreDirectory()
    let store = try dir.open()
    try store.apply([])
    #expect(try store.maxJobID() == 0)
    #expect(try store.liveJobs().isEmpty)
    #expect(try store.workers().isEmpty)
  }
}
