import Foundation
import GRDB
import Shared

/// The durable queue: jobs, bundles, workers and the index of their logs in one SQLite
/// file in WAL mode, the log lines themselves in `LogFiles`. Used from the coordinator's
/// loop thread only; every batch of changes is one transaction, fsynced (log bytes
/// first) before any reply about it leaves.
final class JobStore {
  let path: String
  private let db: DatabaseQueue
  let logFiles: LogFiles
  /// Bundles are shared by the jobs of an array: the last few are kept.
  private let bundleCache = BoundedCache<String, Data>(capacity: 17)
  /// Where the next chunk of a job's log goes in its file (the end of what is indexed),
  /// and the job-wide number its first line must have.
  private var logEnds: [Int64: (offset: Int64, nextSeq: Int)] = [:]
  /// Decoding is most of what an assignment costs; one decoder, and the jobs of an array
  /// share their requirements and artifact patterns word for word.
  private let decoder = JSONDecoder()
  private var lastRequirements: (text: String, value: Requirements)?
  private var lastArtifacts: (text: String, value: [String])?

  init(directory: String) throws(StoreError) {
    do {
      try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    } catch {
      throw .open(path: directory, detail: error.localizedDescription)
    }
    path = (directory as NSString).appendingPathComponent("pinpool.sqlite")
    logFiles = try LogFiles(directory: (directory as NSString).appendingPathComponent("logs"))
    var config = Configuration()
    config.prepareDatabase { db in
      try db.execute(sql: "PRAGMA journal_mode = WAL")
      try db.execute(sql: "PRAGMA synchronous = FULL")
    }
    config.busyMode = .timeout(5)
    do {
      db = try DatabaseQueue(path: path, configuration: config)
      try Self.migrator(logDirectory: logFiles.directory).migrate(db)
    } catch {
      throw .open(path: path, detail: "\(error)")
    }
    try removeUnindexedLogFiles()
  }

  /// Log files of jobs the store no longer has: retention deletes a job's rows, commits,
  /// then its file, and a crash in between leaves the file behind.
  private func removeUnindexedLogFiles() throws(StoreError) {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: logFiles.directory)) ?? []
    let jobIDs = names.compactMap { $0.hasSuffix(".log") ? Int64($0.dropLast(4)) : nil }
    guard !jobIDs.isEmpty else { return }
    let unindexed = try read { db in
      try jobIDs.filter { id in
        try Bool.fetchOne(
          db, sql: "SELECT EXISTS (SELECT 1 FROM log_chunks WHERE job_id = ? AND offset IS NOT NULL)",
          arguments: [id]) != true
      }
    }
    for id in unindexed { logFiles.remove(jobID: id) }
  }

  private static func migrator(logDirectory: String) -> DatabaseMigrator {
    var migrator = DatabaseMigrator()
    migrator.registerMigration("v1") { db in
      try db.execute(
        sql: """
          CREATE TABLE bundles (hash TEXT PRIMARY KEY, data BLOB NOT NULL);
          CREATE TABLE jobs (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            state TEXT NOT NULL,
            priority INTEGER NOT NULL,
            attempt INTEGER NOT NULL DEFAULT 0,
            retries INTEGER NOT NULL DEFAULT 0,
            failures INTEGER NOT NULL DEFAULT 0,
            lost_count INTEGER NOT NULL DEFAULT 0,
            entry TEXT NOT NULL,
            args TEXT NOT NULL,
            requirements TEXT NOT NULL,
            artifacts TEXT NOT NULL,
            timeout REAL,
            bundle_hash TEXT NOT NULL REFERENCES bundles(hash),
            worker_id TEXT,
            worker_name TEXT,
            gpus TEXT NOT NULL DEFAULT '[]',
            exit_code INTEGER,
            error TEXT,
            locals TEXT NOT NULL DEFAULT '{}',
            notifications TEXT NOT NULL DEFAULT '[]',
            step_index INTEGER NOT NULL DEFAULT 0,
            step_count INTEGER NOT NULL DEFAULT 0,
            cleanup_state TEXT NOT NULL DEFAULT 'none',
            bytes_freed INTEGER,
            disk_free_after INTEGER,
            cleanup_reason TEXT,
            submitted_at REAL NOT NULL,
            started_at REAL,
            finished_at REAL
          );
          CREATE INDEX jobs_by_state ON jobs(state);
          CREATE TABLE attempts (
            job_id INTEGER NOT NULL,
            attempt INTEGER NOT NULL,
            worker_id TEXT NOT NULL,
            worker_name TEXT NOT NULL,
            state TEXT NOT NULL,
            error TEXT,
            assigned_at REAL NOT NULL,
            ended_at REAL,
            PRIMARY KEY (job_id, attempt)
          ) WITHOUT ROWID;
          CREATE TABLE logs (
            job_id INTEGER NOT NULL,
            seq INTEGER NOT NULL,
            attempt INTEGER NOT NULL,
            wseq INTEGER NOT NULL,
            stream TEXT NOT NULL,
            time REAL NOT NULL,
            line TEXT NOT NULL,
            PRIMARY KEY (job_id, seq)
          ) WITHOUT ROWID;
          CREATE TABLE workers (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            advert TEXT NOT NULL,
            state TEXT NOT NULL,
            drained INTEGER NOT NULL DEFAULT 0,
            last_seen REAL NOT NULL
          );
          """)
    }
    migrator.registerMigration("v2-environment") { db in
      try db.execute(sql: "ALTER TABLE jobs ADD COLUMN environment TEXT")
    }
    migrator.registerMigration("v3-arrays-retention") { db in
      try db.execute(sql: "ALTER TABLE jobs ADD COLUMN array_id INTEGER")
      try db.execute(sql: "CREATE INDEX jobs_by_array ON jobs(array_id) WHERE array_id IS NOT NULL")
      try db.execute(sql: "CREATE INDEX jobs_by_finish ON jobs(finished_at) WHERE finished_at IS NOT NULL")
    }
    migrator.registerMigration("v4-owner") { db in
      // The client key a job was submitted with; NULL on a pool without keys.
      try db.execute(sql: "ALTER TABLE jobs ADD COLUMN owner TEXT")
    }
    migrator.registerMigration("v5-artifacts") { db in
      try db.execute(
        sql: """
          CREATE TABLE artifact_files (
            job_id INTEGER NOT NULL,
            attempt INTEGER NOT NULL,
            name TEXT NOT NULL,
            size INTEGER NOT NULL,
            sha256 TEXT NOT NULL,
            created REAL NOT NULL,
            PRIMARY KEY (job_id, attempt, name)
          ) WITHOUT ROWID
          """)
    }
    migrator.registerMigration("v6-log-files") { db in
      try db.execute(
        sql: """
          CREATE TABLE log_chunks (
            job_id INTEGER NOT NULL,
            first_seq INTEGER NOT NULL,
            last_seq INTEGER NOT NULL,
            attempt INTEGER NOT NULL,
            first_wseq INTEGER NOT NULL,
            -- The chunk's bytes: at `offset` in the job's log file, or (small ones) in `data`.
            offset INTEGER,
            length INTEGER NOT NULL,
            data BLOB,
            PRIMARY KEY (job_id, first_seq)
          );
          -- `logs --since` seeks here: the chunks that end after the line asked for.
          CREATE INDEX log_chunks_by_end ON log_chunks(job_id, last_seq);
          """)
      try LogMigration.moveRowsToFiles(db, logFiles: LogFiles(directory: logDirectory))
      try db.execute(sql: "DROP TABLE logs")
    }
    return migrator
  }

  // MARK: Writing

  func apply(_ changes: [StoreChange]) throws(StoreError) {
    guard !changes.isEmpty else { return }
    // Log bytes first, durable before the rows that index them commit.
    var placed: [Int: (offset: Int64?, change: StoreChange)] = [:]
    for (index, change) in changes.enumerated() {
      guard
        case .appendLogChunk(let jobID, let attempt, let firstJobSeq, let firstWorkerSeq, var chunk) = change
      else { continue }
      let end = try logEnd(jobID)
      // Lines the job's log already holds are stored once (the core sends none; this
      // keeps the index free of overlaps whatever it is given).
      let held = end.nextSeq - firstJobSeq
      if held > 0 { chunk = chunk.dropping(first: held) }
      guard chunk.count > 0 else { continue }
      let skipped = max(0, held)
      let offset = try logFiles.place(jobID: jobID, end: end.offset, chunk)
      logEnds[jobID] = (
        end.offset + Int64(offset == nil ? 0 : chunk.bytes.count), firstJobSeq + skipped + chunk.count
      )
      placed[index] = (
        offset,
        .appendLogChunk(
          jobID: jobID, attempt: attempt, firstJobSeq: firstJobSeq + skipped,
          firstWorkerSeq: firstWorkerSeq + skipped, chunk: chunk)
      )
    }
    do {
      if !placed.isEmpty { try logFiles.sync() }
      try db.inTransaction { db in
        for (index, change) in changes.enumerated() {
          if let (offset, trimmed) = placed[index] {
            try Self.indexLogChunk(trimmed, offset: offset, db)
          } else {
            try self.apply(change, db)
          }
        }
        return .commit
      }
    } catch {
      // Not indexed: the next append (should the caller carry on) overwrites those bytes.
      for case .appendLogChunk(let jobID, _, _, _, _) in changes { logEnds[jobID] = nil }
      throw .write(detail: "\(error)")
    }
    // A finished job's log is complete (its result is taken only once every line is
    // stored): its place in the file is not needed in memory any more.
    for case .jobFinished(let id, _, _, _, _, _, _, _) in changes { logEnds[id] = nil }
    // A first attempt has written nothing yet (only attempts write to a job's log, and
    // the assignment is stored before the worker hears of it): its log starts empty,
    // without a query when its first lines come.
    for case .jobAssigned(let id, 1, _, _, _, _) in changes where logEnds[id] == nil {
      logEnds[id] = (offset: 0, nextSeq: 1)
    }
  }

  private func logEnd(_ jobID: Int64) throws(StoreError) -> (offset: Int64, nextSeq: Int) {
    if let end = logEnds[jobID] { return end }
    let end = try read { db in
      let row = try Row.fetchOne(
        db.cachedStatement(
          sql: """
            SELECT COALESCE(MAX(offset + length), 0) AS end, COALESCE(MAX(last_seq), 0) AS last
            FROM log_chunks WHERE job_id = ?
            """), arguments: [jobID])
      let offset: Int64 = row?["end"] ?? 0
      let last: Int = row?["last"] ?? 0
      return (offset: offset, nextSeq: last + 1)
    }
    logEnds[jobID] = end
    return end
  }

  /// The index row of a chunk: its bytes at `offset` in the job's log file, or (nil) in
  /// the row itself.
  static func indexLogChunk(_ change: StoreChange, offset: Int64?, _ db: Database) throws {
    guard
      case .appendLogChunk(let jobID, let attempt, let firstJobSeq, let firstWorkerSeq, let chunk) = change
    else { return }
    try db.cachedStatement(
      sql: """
        INSERT INTO log_chunks (job_id, first_seq, last_seq, attempt, first_wseq, offset, length, data)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?)
        """
    ).execute(arguments: [
      jobID, firstJobSeq, firstJobSeq + chunk.count - 1, attempt, firstWorkerSeq, offset, chunk.bytes.count,
      offset == nil ? chunk.bytes : nil,
    ])
  }

  private func json<T: Encodable>(_ value: T) -> String {
    (try? String(decoding: WireCoding.encoder.encode(value), as: UTF8.self)) ?? "null"
  }

  private func apply(_ change: StoreChange, _ db: Database) throws {
    switch change {
    case .insertJobs(let rows, let hash, let bundle):
      try db.cachedStatement(sql: "INSERT OR IGNORE INTO bundles (hash, data) VALUES (?, ?)")
        .execute(arguments: [hash, Data(bundle)])
      let statement = try db.cachedStatement(
        sql: """
          INSERT INTO jobs (id, name, state, priority, retries, entry, args, requirements, artifacts,
            timeout, bundle_hash, submitted_at, array_id, owner)
          VALUES (?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
          """)
      let requirements = rows.first.map { json($0.requirements) } ?? "{}"
      let artifacts = rows.first.map { json($0.artifacts) } ?? "[]"
      for row in rows {
        try statement.execute(arguments: [
          row.id, row.name, row.priority, row.retries, row.entry, row.args.serialized(), requirements,
          artifacts, row.timeoutSeconds, hash, row.submittedAt, row.arrayID, row.owner,
        ])
      }
    case .jobAssigned(let id, let attempt, let workerID, let workerName, let gpus, let at):
      try db.cachedStatement(
        sql: """
          UPDATE jobs SET state = 'assigned', attempt = ?, worker_id = ?, worker_name = ?, gpus = ?,
            step_index = 0, step_count = 0, exit_code = NULL, error = NULL, started_at = NULL,
            cleanup_state = 'none', bytes_freed = NULL WHERE id = ?
          """
      ).execute(arguments: [attempt, workerID, workerName, json(gpus), id])
      try db.cachedStatement(
        sql: """
          INSERT OR REPLACE INTO attempts (job_id, attempt, worker_id, worker_name, state, assigned_at)
          VALUES (?, ?, ?, ?, 'assigned', ?)
          """
      ).execute(arguments: [id, attempt, workerID, workerName, at])
    case .jobProgress(let id, let state, let stepIndex, let stepCount, let locals, let at):
      if let state {
        try db.cachedStatement(
          sql: "UPDATE jobs SET state = ?, started_at = COALESCE(started_at, ?) WHERE id = ?"
        ).execute(arguments: [state.rawValue, at, id])
      }
      try db.cachedStatement(sql: "UPDATE jobs SET step_index = ?, step_count = ? WHERE id = ?")
        .execute(arguments: [stepIndex, stepCount, id])
      if let locals {
        try db.cachedStatement(sql: "UPDATE jobs SET locals = ? WHERE id = ?")
          .execute(arguments: [locals.serialized(), id])
      }
    case .jobEnvironment(let id, let environment):
      try db.cachedStatement(sql: "UPDATE jobs SET environment = ? WHERE id = ?")
        .execute(arguments: [environment.serialized(), id])
    case .jobNotification(let id, let text):
      let current = try String.fetchOne(
        db, sql: "SELECT notifications FROM jobs WHERE id = ?", arguments: [id])
      var list = (current.flatMap { try? JSONDecoder().decode([String].self, from: Data($0.utf8)) }) ?? []
      list.append(text)
      try db.execute(sql: "UPDATE jobs SET notifications = ? WHERE id = ?", arguments: [json(list), id])
    case .jobFinished(
      let id, let attempt, let state, let exitCode, let error, let locals, let at, let started):
      // One update with the step report, if the result brought one (NULLs keep the rest).
      try db.cachedStatement(
        sql: """
          UPDATE jobs SET state = ?, exit_code = ?, error = ?, finished_at = ?,
            cleanup_state = CASE WHEN worker_id IS NULL OR cleanup_state = 'done' THEN cleanup_state
              ELSE 'pending' END,
            started_at = COALESCE(started_at, ?), step_index = COALESCE(?, step_index),
            step_count = COALESCE(?, step_count)
          WHERE id = ?
          """
      ).execute(
        arguments: [
          state.rawValue, exitCode.map { Int64($0) }, error, at, started?.startedAt, started?.stepIndex,
          started?.stepCount, id,
        ])
      if let locals {
        try db.cachedStatement(sql: "UPDATE jobs SET locals = ? WHERE id = ?")
          .execute(arguments: [locals.serialized(), id])
      }
      try db.cachedStatement(
        sql: "UPDATE attempts SET state = ?, error = ?, ended_at = ? WHERE job_id = ? AND attempt = ?"
      ).execute(arguments: [state.rawValue, error, at, id, attempt])
    case .jobRequeued(let id, _, let failures, let lostCount, let reason, _):
      try db.cachedStatement(
        sql: """
          UPDATE jobs SET state = 'queued', failures = ?, lost_count = ?, worker_id = NULL, worker_name = NULL,
            gpus = '[]', error = ?, started_at = NULL WHERE id = ?
          """
      ).execute(arguments: [failures, lostCount, "requeued: \(reason)", id])
    case .attemptEnded(let id, let attempt, let state, let error, let at):
      try db.cachedStatement(
        sql: "UPDATE attempts SET state = ?, error = ?, ended_at = ? WHERE job_id = ? AND attempt = ?"
      ).execute(arguments: [state.rawValue, error, at, id, attempt])
    case .jobCleanup(let id, let attempt, let state, let bytesFreed, let diskFreeAfter, let reason):
      try db.cachedStatement(
        sql: """
          UPDATE jobs SET cleanup_state = ?, bytes_freed = ?, disk_free_after = ?, cleanup_reason = ?
          WHERE id = ? AND attempt = ?
          """
      ).execute(arguments: [state.rawValue, bytesFreed, diskFreeAfter, reason, id, attempt])
    case .appendLogChunk:
      // Indexed by `apply(_:)`, which writes the bytes first.
      break
    case .upsertWorker(let advert, let state, let drained, let lastSeen):
      try db.cachedStatement(
        sql: """
          INSERT INTO workers (id, name, advert, state, drained, last_seen) VALUES (?, ?, ?, ?, ?, ?)
          ON CONFLICT(id) DO UPDATE SET name = excluded.name, advert = excluded.advert, state = excluded.state,
            last_seen = excluded.last_seen
          """
      ).execute(arguments: [advert.id, advert.name, json(advert), state.rawValue, drained, lastSeen])
    case .workerState(let id, let state, let drained, let lastSeen):
      try db.cachedStatement(sql: "UPDATE workers SET state = ?, drained = ?, last_seen = ? WHERE id = ?")
        .execute(arguments: [state.rawValue, drained, lastSeen, id])
    case .artifactStored(let jobID, let attempt, let name, let size, let sha256, let at):
      try db.cachedStatement(
        sql: """
          INSERT OR REPLACE INTO artifact_files (job_id, attempt, name, size, sha256, created)
          VALUES (?, ?, ?, ?, ?, ?)
          """
      ).execute(arguments: [jobID, attempt, name, size, sha256, at])
    }
  }

  // MARK: Reading

  private static let jobColumns = """
    id, name, state, priority, attempt, retries, failures, lost_count, requirements, timeout, worker_id,
    worker_name, gpus, exit_code, error, locals, notifications, step_index, step_count, cleanup_state,
    bytes_freed, disk_free_after, cleanup_reason, submitted_at, started_at, finished_at, environment, array_id,
    owner
    """

  /// One read transaction on the store's connection. Not `DatabaseQueue.read`: that
  /// turns `PRAGMA query_only` on and off around every read, and SQLite expires every
  /// prepared statement when such a flag changes, so each cached statement was compiled
  /// again at its next use (a sixth of the coordinator's CPU in the dispatch benchmark).
  func read<T>(_ body: (Database) throws -> T) throws(StoreError) -> T {
    do {
      return try db.unsafeRead { db in
        var result: T?
        try db.inTransaction(.deferred) {
          result = try body(db)
          return .commit
        }
        guard let result else { throw StoreError.read(detail: "the read transaction did not run") }
        return result
      }
    } catch {
      throw .read(detail: "\(error)")
    }
  }

  func maxJobID() throws(StoreError) -> Int64 {
    try read { try Int64.fetchOne($0, sql: "SELECT MAX(id) FROM jobs") ?? 0 }
  }

  /// Jobs the core must act on after a restart: those not yet final. (A final job
  /// whose cleanup report is still owed is updated by the report whenever it comes.)
  func liveJobs() throws(StoreError) -> [(LiveJob, CoordinatorCore.LogCursor?)] {
    try read { db in
      let rows = try Row.fetchAll(
        db,
        sql: """
          SELECT \(Self.jobColumns) FROM jobs
          WHERE state IN ('queued', 'assigned', 'running', 'serving') ORDER BY id
          """)
      return try rows.map { row in
        let job = self.liveJob(row)
        let cursorRow = try Row.fetchOne(
          db,
          sql: """
            SELECT MAX(last_seq) AS jobSeq,
              (SELECT MAX(first_wseq + last_seq - first_seq) FROM log_chunks WHERE job_id = ? AND attempt = ?)
                AS workerSeq
            FROM log_chunks WHERE job_id = ?
            """, arguments: [job.id, job.attempt, job.id])
        let jobSeq: Int? = cursorRow?["jobSeq"]
        let workerSeq: Int? = cursorRow?["workerSeq"]
        let cursor = jobSeq.map {
          CoordinatorCore.LogCursor(attempt: job.attempt, workerSeq: workerSeq ?? 0, jobSeq: $0)
        }
        return (job, cursor)
      }
    }
  }

  /// Final attempts whose cleanup report is still owed: their worker may still be
  /// uploading artifacts.
  func owedCleanups() throws(StoreError) -> [(ref: AttemptRef, workerID: String)] {
    try read { db in
      try Row.fetchAll(
        db,
        sql: """
          SELECT id, attempt, worker_id FROM jobs
          WHERE state IN ('succeeded', 'failed', 'cancelled') AND cleanup_state = 'pending'
            AND worker_id IS NOT NULL
          """
      ).map { row in
        let id: Int64 = row["id"]
        return (ref: AttemptRef(jobID: String(id), attempt: row["attempt"]), workerID: row["worker_id"])
      }
    }
  }

  func workers() throws(StoreError) -> [(WorkerAdvert, Bool, Double, WorkerState)] {
    try read { db in
      try Row.fetchAll(db, sql: "SELECT advert, drained, last_seen, state FROM workers").compactMap { row in
        let text: String = row["advert"]
        guard let advert = try? JSONDecoder().decode(WorkerAdvert.self, from: Data(text.utf8)) else {
          return nil
        }
        let state = WorkerState(rawValue: row["state"]) ?? .offline
        return (advert, row["drained"], row["last_seen"], state)
      }
    }
  }

  private func decode<T: Decodable>(_ type: T.Type, _ text: String?) -> T? {
    guard let text else { return nil }
    return try? decoder.decode(T.self, from: Data(text.utf8))
  }

  private func requirements(_ text: String?) -> Requirements {
    decodeRepeated(text, &lastRequirements, otherwise: Requirements())
  }

  private func artifacts(_ text: String?) -> [String] {
    decodeRepeated(text, &lastArtifacts, otherwise: [])
  }

  /// `decode`, answered from `last` when the text is the one decoded last time.
  private func decodeRepeated<T: Decodable>(
    _ text: String?, _ last: inout (text: String, value: T)?, otherwise fallback: T
  ) -> T {
    guard let text else { return fallback }
    if let last, last.text == text { return last.value }
    let value = decode(T.self, text) ?? fallback
    last = (text, value)
    return value
  }

  private func liveJob(_ row: Row) -> LiveJob {
    LiveJob(
      id: row["id"], name: row["name"], priority: row["priority"],
      requirements: requirements(row["requirements"]),
      attempt: row["attempt"], retries: row["retries"], failures: row["failures"],
      lostCount: row["lost_count"],
      state: JobState(rawValue: row["state"]) ?? .queued, workerID: row["worker_id"],
      gpuIndices: decode([Int].self, row["gpus"]) ?? [], submittedAt: row["submitted_at"],
      startedAt: row["started_at"], timeoutSeconds: row["timeout"])
  }

  private func jobView(_ row: Row, waitReason: (Int64) -> String?) -> JobView {
    let id: Int64 = row["id"]
    let state = JobState(rawValue: row["state"]) ?? .queued
    let exitCode: Int64? = row["exit_code"]
    let submitted: Double = row["submitted_at"]
    let started: Double? = row["started_at"]
    let finished: Double? = row["finished_at"]
    var view = JobView(
      id: String(id), name: row["name"], state: state, attempt: row["attempt"], worker: row["worker_name"],
      exitCode: exitCode.map { Int32(truncatingIfNeeded: $0) }, error: row["error"],
      locals: decode(JSONValue.self, row["locals"]) ?? .object(JSONObject()),
      step: StepView(index: row["step_index"], count: row["step_count"]),
      cleanup: CleanupView(
        state: CleanupState(rawValue: row["cleanup_state"]) ?? .none, bytesFreed: row["bytes_freed"],
        diskFreeAfter: row["disk_free_after"], reason: row["cleanup_reason"]),
      submittedAt: Timestamp.iso(submitted), startedAt: started.map(Timestamp.iso),
      finishedAt: finished.map(Timestamp.iso), priority: row["priority"],
      requirements: decode(Requirements.self, row["requirements"]) ?? Requirements(),
      gpus: decode([Int].self, row["gpus"]) ?? [],
      waitReason: state == .queued ? waitReason(id) : nil,
      notifications: decode([String].self, row["notifications"]) ?? [],
      environment: decode(JSONValue.self, row["environment"]),
      array: (row["array_id"] as Int64?).map(String.init))
    view.owner = row["owner"]
    return view
  }

  func job(_ id: Int64, waitReason: (Int64) -> String?) throws(StoreError) -> JobView? {
    try read { db in
      try Row.fetchOne(
        db,
        sql: """
          SELECT \(Self.jobColumns),
            (SELECT assigned_at FROM attempts WHERE job_id = jobs.id AND attempt = jobs.attempt) AS assigned_at
          FROM jobs WHERE id = ?
          """, arguments: [id]
      ).map { row in
        var view = self.jobView(row, waitReason: waitReason)
        // Only for the attempt under way or done: a job queued again keeps its last
        // attempt's number until it is assigned anew.
        if view.startedAt != nil || view.state == .assigned {
          view.assignedAt = (row["assigned_at"] as Double?).map(Timestamp.iso)
        }
        return view
      }
    }
  }

  func jobs(
    state: JobState?, worker: String?, array: Int64? = nil, limit: Int, waitReason: (Int64) -> String?
  ) throws(StoreError) -> [JobView] {
    var conditions: [String] = []
    var arguments: StatementArguments = []
    if let array {
      conditions.append("array_id = ?")
      _ = arguments.append(contentsOf: [array])
    }
    if let state {
      conditions.append("state = ?")
      _ = arguments.append(contentsOf: [state.rawValue])
    }
    if let worker {
      conditions.append("(worker_name = ? OR worker_id = ?)")
      _ = arguments.append(contentsOf: [worker, worker])
    }
    let whereClause = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")
    _ = arguments.append(contentsOf: [limit])
    return try read { db in
      try Row.fetchAll(
        db,
        sql: """
          SELECT * FROM (SELECT \(Self.jobColumns) FROM jobs \(whereClause) ORDER BY id DESC LIMIT ?)
          ORDER BY id
          """,
        arguments: arguments
      ).map { self.jobView($0, waitReason: waitReason) }
    }
  }

  /// Up to `limit` lines after `since`, from the job's log file, chunk by chunk.
  func logs(jobID: Int64, since: Int, limit: Int) throws(StoreError) -> [LogLineView] {
    var result: [LogLineView] = []
    var after = since
    while result.count < limit {
      let rows = try read { db in
        try Row.fetchAll(
          db,
          sql: """
            SELECT first_seq, last_seq, attempt, offset, length, data FROM log_chunks
            WHERE job_id = ? AND last_seq > ? ORDER BY last_seq LIMIT 16
            """,
          arguments: [jobID, after])
      }
      guard !rows.isEmpty else { break }
      for row in rows where result.count < limit {
        let firstSeq: Int = row["first_seq"]
        let lastSeq: Int = row["last_seq"]
        let attempt: Int = row["attempt"]
        let offset: Int64? = row["offset"]
        let inline: Data? = row["data"]
        guard offset != nil || inline != nil else {
          throw .read(detail: "job \(jobID)'s log at line \(firstSeq): the index row names no bytes")
        }
        let bytes: Data
        if let offset {
          bytes = try logFiles.read(jobID: jobID, offset: offset, length: row["length"])
        } else {
          bytes = inline!
        }
        let chunk: LogChunk
        do {
          // Exactly the lines the row says, or the reader would ask for this row again.
          chunk = try LogChunk(validating: bytes, expectedCount: lastSeq - firstSeq + 1)
        } catch {
          throw .read(detail: "job \(jobID)'s log at line \(firstSeq): \(error)")
        }
        var seq = firstSeq
        chunk.forEach { stream, time, text in
          defer { seq += 1 }
          guard seq > after, result.count < limit else { return }
          result.append(
            LogLineView(
              seq: seq, stream: stream, time: Timestamp.iso(time),
              line: String(decoding: text, as: UTF8.self),
              attempt: attempt))
        }
        after = max(after, seq - 1)
      }
    }
    return result
  }

  /// The jobs' scripts and bundles for `assign` messages, in order (nil for a job that is
  /// gone), read in one transaction: a batch assigns dozens of jobs, and a read
  /// transaction each (begin, the WAL's read lock, commit) cost as much as the reads.
  /// Bundles are shared by the jobs of an array, so the last few are kept in memory.
  func assignments(_ requests: [(jobID: Int64, attempt: Int, gpuIndices: [Int])]) throws(StoreError)
    -> [(AssignedJob, Data)?]
  {
    try read { db in
      try requests.map { try assignment(db, jobID: $0.jobID, attempt: $0.attempt, gpuIndices: $0.gpuIndices) }
    }
  }

  private func assignment(_ db: Database, jobID: Int64, attempt: Int, gpuIndices: [Int]) throws
    -> (AssignedJob, Data)?
  {
    guard
      let row = try Row.fetchOne(
        db.cachedStatement(
          sql:
            "SELECT name, entry, args, requirements, artifacts, timeout, bundle_hash FROM jobs WHERE id = ?"),
        arguments: [jobID])
    else { return nil }
    let hash: String = row["bundle_hash"]
    let bundle: Data
    if let cached = bundleCache[hash] {
      bundle = cached
    } else {
      bundle =
        try Data.fetchOne(db, sql: "SELECT data FROM bundles WHERE hash = ?", arguments: [hash]) ?? Data()
      bundleCache.keep(bundle, for: hash)
    }
    let job = AssignedJob(
      jobID: String(jobID), attempt: attempt, name: row["name"], entry: row["entry"],
      args: (row["args"] as String?).flatMap { try? ScriptSource.parseJSONValue($0).get() }
        ?? .object(JSONObject()), gpuIndices: gpuIndices,
      requirements: requirements(row["requirements"]),
      timeoutSeconds: row["timeout"], artifacts: artifacts(row["artifacts"]))
    return (job, bundle)
  }

  /// Which bundle a job runs and its entry script.
  func entryScript(jobID: Int64) throws(StoreError) -> (bundleHash: String, entry: String)? {
    try read { db in
      try Row.fetchOne(db, sql: "SELECT bundle_hash, entry FROM jobs WHERE id = ?", arguments: [jobID])
        .map { (bundleHash: $0["bundle_hash"], entry: $0["entry"]) }
    }
  }

  /// A stored bundle, read without touching the cache that assignments use.
  func bundle(hash: String) throws(StoreError) -> Data? {
    if let cached = bundleCache[hash] { return cached }
    return try read {
      try Data.fetchOne($0, sql: "SELECT data FROM bundles WHERE hash = ?", arguments: [hash])
    }
  }

  /// The jobs of an array with their owners, in one read (an array holds up to 10,000).
  func arrayJobOwners(_ array: Int64) throws(StoreError) -> [(id: Int64, owner: String?)] {
    try read { db in
      try Row.fetchAll(
        db, sql: "SELECT id, owner FROM jobs WHERE array_id = ? ORDER BY id", arguments: [array]
      )
      .map { (id: $0["id"], owner: $0["owner"]) }
    }
  }

  /// Deletes final jobs that finished before `cutoff`, with their logs and attempts, and
  /// bundles no job uses any more; at most 10,000 a call, so one sweep never stalls the
  /// loop for long. Returns the ids of the jobs deleted (their artifact files go too).
  func pruneJobs(finishedBefore cutoff: Double, keep: Set<Int64>) throws(StoreError) -> [Int64] {
    let ids: [Int64]
    do {
      ids = try db.write { db in
        let ids = try Int64.fetchAll(
          db,
          sql: """
            SELECT id FROM jobs WHERE state IN ('succeeded', 'failed', 'cancelled') AND finished_at < ?
            ORDER BY id LIMIT 10000
            """, arguments: [cutoff]
        ).filter { !keep.contains($0) }
        for id in ids {
          try db.execute(sql: "DELETE FROM log_chunks WHERE job_id = ?", arguments: [id])
          try db.execute(sql: "DELETE FROM attempts WHERE job_id = ?", arguments: [id])
          try db.execute(sql: "DELETE FROM artifact_files WHERE job_id = ?", arguments: [id])
          try db.execute(sql: "DELETE FROM jobs WHERE id = ?", arguments: [id])
        }
        if !ids.isEmpty {
          try db.execute(sql: "DELETE FROM bundles WHERE hash NOT IN (SELECT DISTINCT bundle_hash FROM jobs)")
        }
        return ids
      }
    } catch {
      throw .write(detail: "\(error)")
    }
    // After the commit: a crash before this leaves files nothing indexes, never an index
    // without its file.
    for id in ids {
      logFiles.remove(jobID: id)
      logEnds[id] = nil
    }
    return ids
  }

  /// The stored artifacts of a job, every attempt, by attempt then name.
  func artifacts(jobID: Int64) throws(StoreError) -> [ArtifactView] {
    try read { db in
      try Row.fetchAll(
        db,
        sql: """
          SELECT attempt, name, size, sha256, created FROM artifact_files WHERE job_id = ?
          ORDER BY attempt, name
          """, arguments: [jobID]
      ).map { row in
        ArtifactView(
          name: row["name"], size: row["size"], sha256: row["sha256"], attempt: row["attempt"],
          created: Timestamp.iso(row["created"]))
      }
    }
  }

  /// Every stored artifact, for the artifact store's accounting at start.
  func allArtifacts() throws(StoreError) -> [(
    job: Int64, attempt: Int, name: String, size: Int64, sha256: String
  )] {
    try read { db in
      try Row.fetchAll(db, sql: "SELECT job_id, attempt, name, size, sha256 FROM artifact_files").map { row in
        (
          job: row["job_id"], attempt: row["attempt"], name: row["name"], size: row["size"],
          sha256: row["sha256"]
        )
      }
    }
  }

  func jobExists(_ id: Int64) throws(StoreError) -> Bool {
    try read { try Bool.fetchOne($0, sql: "SELECT 1 FROM jobs WHERE id = ?", arguments: [id]) ?? false }
  }

  /// The job's owner: nil when there is no such job, `.some(nil)` for a job submitted
  /// without keys.
  func jobOwner(_ id: Int64) throws(StoreError) -> String?? {
    try read { db -> String?? in
      guard let row = try Row.fetchOne(db, sql: "SELECT owner FROM jobs WHERE id = ?", arguments: [id]) else {
        return nil
      }
      return .some(row["owner"] as String?)
    }
  }
}

public enum StoreError: Error, CustomStringConvertible, Sendable {
  case open(path: String, detail: String)
  case write(detail: String)
  case read(detail: String)

  public var description: String {
    switch self {
    case .open(let path, let detail): "cannot open the job store at \(path): \(detail)"
    case .write(let detail): "writing to the job store failed: \(detail)"
    case .read(let detail): "reading the job store failed: \(detail)"
    }
  }
}
