import Foundation
import GRDB
import Shared

/// Moves logs stored by earlier versions, one `logs` row per line, into log files and
/// `log_chunks` index rows (migration v6). Runs inside the migration's transaction, so
/// the rows go only if the index commits; the files are fsynced before it does.
enum LogMigration {
  /// Lines per chunk written: the size a worker sends at most.
  static let linesPerChunk = 8192

  static func moveRowsToFiles(_ db: Database, logFiles: LogFiles) throws {
    struct Pending {
      var jobID: Int64
      var attempt: Int
      var firstSeq: Int
      var firstWorkerSeq: Int
      var chunk = LogChunk()
      var nextSeq: Int { firstSeq + chunk.count }
    }
    var ends: [Int64: Int64] = [:]
    var pending: Pending?
    func write(_ chunk: Pending) throws {
      let end = ends[chunk.jobID, default: 0]
      let offset = try logFiles.place(jobID: chunk.jobID, end: end, chunk.chunk)
      if offset != nil { ends[chunk.jobID] = end + Int64(chunk.chunk.bytes.count) }
      try JobStore.indexLogChunk(
        .appendLogChunk(
          jobID: chunk.jobID, attempt: chunk.attempt, firstJobSeq: chunk.firstSeq,
          firstWorkerSeq: chunk.firstWorkerSeq, chunk: chunk.chunk),
        offset: offset, db)
    }
    let rows = try Row.fetchCursor(
      db, sql: "SELECT job_id, seq, attempt, wseq, stream, time, line FROM logs ORDER BY job_id, seq")
    while let row = try rows.next() {
      let jobID: Int64 = row["job_id"]
      let seq: Int = row["seq"]
      let attempt: Int = row["attempt"]
      let workerSeq: Int = row["wseq"]
      // A chunk holds lines numbered on without a gap, job-wide and in their attempt.
      if let current = pending,
        current.jobID != jobID || current.attempt != attempt || current.nextSeq != seq
          || current.firstWorkerSeq + current.chunk.count != workerSeq
          || current.chunk.count >= linesPerChunk
      {
        try write(current)
        pending = nil
      }
      if pending == nil {
        pending = Pending(jobID: jobID, attempt: attempt, firstSeq: seq, firstWorkerSeq: workerSeq)
      }
      let stream = LogStream(rawValue: row["stream"]) ?? .stdout
      pending!.chunk.append(stream: stream, time: row["time"], text: row["line"])
    }
    if let current = pending { try write(current) }
    try logFiles.sync()
  }
}
