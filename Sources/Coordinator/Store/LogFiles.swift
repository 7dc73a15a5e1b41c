import Foundation
import Shared

/// Where the coordinator keeps the log lines of chatty jobs: one append-only file per job
/// in `DATA/logs/`, holding the `LogChunk`s as they arrived, back to back (chunks under
/// `inlineLimit` stay in SQLite, in their index row). The `log_chunks` table in
/// SQLite indexes them (job, sequence numbers, offset, length) and is the truth: the
/// store writes and fsyncs the bytes first and commits their index rows after, so a
/// crash in between leaves only bytes past the indexed end, which nothing reads and the
/// next append overwrites.
///
/// Why not rows in SQLite: a log is most of what a coordinator writes. A row per line
/// held the whole path to about 20 MB/s; blobs in SQLite's write-ahead log are written
/// twice (log, then checkpoint). A file is written once.
/// Used from the coordinator's loop thread only, like the store.
final class LogFiles {
  /// Chunks smaller than this stay in their index row (`log_chunks.data`): a job that
  /// prints a few lines must not cost a file and its fsyncs.
  static let inlineLimit = 16 * 1024

  let directory: String
  /// Files written since the last `sync`, open.
  private var dirty: [Int64: Int32] = [:]
  /// A file was created since the last `sync`: the directory entry must be made durable too.
  private var created = false

  init(directory: String) throws(StoreError) {
    self.directory = directory
    do {
      try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    } catch {
      throw .open(path: directory, detail: error.localizedDescription)
    }
  }

  deinit {
    for fd in dirty.values { close(fd) }
  }

  func path(_ jobID: Int64) -> String { directory + "/\(jobID).log" }

  /// Where a chunk goes when the job's file ends at `end`: written there (returning the
  /// offset) when it is big, kept for its index row (nil) when it is small. A file per job
  /// for a job that prints a line would cost a file creation and two fsyncs (file and
  /// folder) per job.
  func place(jobID: Int64, end: Int64, _ chunk: LogChunk) throws(StoreError) -> Int64? {
    guard chunk.bytes.count >= Self.inlineLimit else { return nil }
    try write(jobID: jobID, offset: end, bytes: chunk.bytes)
    return end
  }

  /// Writes `bytes` at `offset` of the job's file. Durable only after `sync`.
  func write(jobID: Int64, offset: Int64, bytes: Data) throws(StoreError) {
    let fd = try descriptor(jobID)
    do throws(WriteAll.Failure) {
      try WriteAll.write(fd, bytes, at: offset)
    } catch {
      throw .write(detail: "\(path(jobID)): \(error.reason)")
    }
  }

  /// Makes every write since the last call durable (and closes the files).
  func sync() throws(StoreError) {
    defer {
      for fd in dirty.values { close(fd) }
      dirty.removeAll(keepingCapacity: true)
    }
    for (jobID, fd) in dirty where fdatasync(fd) != 0 {
      throw .write(detail: "\(path(jobID)): fdatasync: \(String(cString: strerror(errno)))")
    }
    if created {
      created = false
      do throws(WriteAll.Failure) {
        try WriteAll.syncDirectory(directory)
      } catch {
        throw .write(detail: "\(directory): fsync: \(error.reason)")
      }
    }
  }

  /// `length` bytes at `offset` of the job's file; fewer is an error (the index points
  /// past the file's end: the data directory was tampered with or lost data).
  func read(jobID: Int64, offset: Int64, length: Int) throws(StoreError) -> Data {
    let fd = open(path(jobID), O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else {
      throw .read(detail: "\(path(jobID)): \(String(cString: strerror(errno)))")
    }
    defer { close(fd) }
    var status = stat()
    guard offset >= 0, length >= 0, fstat(fd, &status) == 0, offset + Int64(length) <= Int64(status.st_size)
    else {
      throw .read(
        detail: "\(path(jobID)): the log index names bytes \(offset)..<\(offset + Int64(length)), "
          + "the file holds fewer")
    }
    let data: Data
    do throws(WriteAll.Failure) {
      data = try WriteAll.read(fd, count: length, at: offset)
    } catch {
      throw .read(detail: "\(path(jobID)): \(error.reason)")
    }
    guard data.count == length else {
      throw .read(
        detail: "\(path(jobID)): the log index names bytes \(offset)..<\(offset + Int64(length)), "
          + "the file holds fewer")
    }
    return data
  }

  /// Deletes a job's file (retention): after the rows that index it are gone.
  func remove(jobID: Int64) {
    if let fd = dirty.removeValue(forKey: jobID) { close(fd) }
    unlink(path(jobID))
  }

  private func descriptor(_ jobID: Int64) throws(StoreError) -> Int32 {
    if let fd = dirty[jobID] { return fd }
    var fd = open(path(jobID), O_WRONLY | O_CLOEXEC)
    if fd < 0, errno == ENOENT {
      fd = open(path(jobID), O_WRONLY | O_CREAT | O_CLOEXEC, 0o640)
      if fd >= 0 { created = true }
    }
    guard fd >= 0 else {
      throw .write(detail: "\(path(jobID)): \(String(cString: strerror(errno)))")
    }
    dirty[jobID] = fd
    return fd
  }
}
