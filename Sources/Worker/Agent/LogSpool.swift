import Foundation
import Shared

/// The worker's on-disk record of what the coordinator has not acknowledged yet, one
/// file per attempt in `ROOT/spool/`: the assignment, every log line, and the attempt's
/// result and cleanup reports. Lines are appended before they are sent, so a worker that
/// crashes after its job ended can still deliver the whole log and the result when it
/// starts again; the coordinator drops what it already stored by sequence number.
///
/// Records: a line with a tag and a body. `S` (the assign message as received), `F`
/// (finished) and `C` (cleanup) carry a JSON body, the bytes that went on the wire;
/// `K FIRSTSEQ COUNT LENGTH` is followed by LENGTH bytes of log lines as taken from the
/// job (a `LogChunk`) and a newline, written as they are, so spooling a line costs a
/// copy. (`A` with the assigned job alone, and `L` with a JSON line, are what earlier
/// versions wrote; both are still read.) Used from the worker agent only.
///
/// Files are reused, named for no attempt (`slot-N.spool`): the file says whose it is
/// (its first record), a forgotten attempt's file is emptied in place, and an empty one is
/// the next attempt's. A trivial job would otherwise make and delete an inode (on ext4
/// without a journal every new inode first scans past those freed in the last half
/// minute, once most of a busy worker's kernel time), and renaming a file to and from
/// its attempt's name cost two renames a job, each dearer than the write. An empty file
/// has no records, so recovery never takes it for an attempt's; files named
/// `JOB-ATTEMPT.spool` by earlier versions are still read, and deleted once forgotten.
final class LogSpool {
  let directory: String
  /// What waits to be written, per attempt, in order: small records gathered into one
  /// piece, a chunk of lines as a piece of its own (written from where it is, not copied).
  private var buffers: [AttemptRef: [Data]] = [:]
  /// Open for the life of the attempt: one write per flush, not an open per line.
  private var handles: [AttemptRef: Int32] = [:]
  /// Each attempt's file, from its first flush (or from recovery) until it is forgotten.
  private var files: [AttemptRef: String] = [:]
  private let encoder = WireCoding.encoder
  /// Empty slot files ready for the next attempts, and the number a new one gets.
  private var free: [String] = []
  private var nextSlot = 0
  /// Enough for every slot of a busy worker; files beyond it are deleted.
  static let maxFree = 64

  init(directory: String) {
    self.directory = directory
    let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
    for name in names {
      let path = directory + "/" + name
      if name.hasPrefix("free-") {
        // An earlier version's free file, with content if it crashed while emptying it.
        unlink(path)
        continue
      }
      guard name.hasPrefix("slot-"), name.hasSuffix(".spool"),
        let number = Int(name.dropFirst(5).dropLast(6))
      else { continue }
      nextSlot = max(nextSlot, number + 1)
      // One with content is an attempt's, for `recover` to take back.
      var info = stat()
      guard stat(path, &info) == 0, info.st_size == 0, (info.st_mode & S_IFMT) == S_IFREG else {
        continue
      }
      if free.count < Self.maxFree { free.append(path) } else { unlink(path) }
    }
  }

  deinit {
    for fd in handles.values { close(fd) }
  }

  /// The file an attempt's records are in, once it has one.
  func file(of ref: AttemptRef) -> String? { files[ref] }

  /// Every attempt an earlier run left in this folder, each keeping its file: its
  /// records go on being appended there, and forgetting it empties that file.
  func recover() -> [Recovered] {
    let recovered = Self.recover(directory: directory)
    for attempt in recovered where files[attempt.job.ref] == nil {
      files[attempt.job.ref] = attempt.file
    }
    return recovered
  }

  /// `header`: the assign message as the coordinator sent it (JSON of `AssignMessage`),
  /// kept as it is rather than encoded again.
  func assigned(_ job: AssignedJob, header: Data) {
    if !header.isEmpty, !header.contains(0x0A) {
      append(Data("S ".utf8) + header + Data([0x0A]), job.ref)
    } else {
      record("A", job, job.ref)
    }
  }
  func lines(_ ref: AttemptRef, firstSeq: Int, _ chunk: LogChunk) {
    append(Data("K \(firstSeq) \(chunk.count) \(chunk.bytes.count)\n".utf8), ref)
    append(chunk.bytes, ref)
    append(Data([0x0A]), ref)
  }

  private func append(_ data: Data, _ ref: AttemptRef) {
    // In place: copying the pieces out of the dictionary and back would copy them on
    // every record (quadratic with one buffer; it once was more than half the worker's
    // time on a chatty job).
    if data.count >= 16 * 1024 {
      buffers[ref, default: []].append(data)
    } else if let last = buffers[ref]?.last, last.count < 16 * 1024 {
      buffers[ref]![buffers[ref]!.count - 1].append(data)
    } else {
      buffers[ref, default: []].append(data)
    }
  }
  /// A `finished` or `cleanup` report, in the bytes it is sent in (our encoder writes no
  /// newline outside a string, where it is escaped).
  func report(_ envelope: WireEnvelope, _ ref: AttemptRef) {
    let tag: String
    switch envelope.type {
    case .finished: tag = "F"
    case .cleanup: tag = "C"
    default: return
    }
    append(Data((tag + " ").utf8) + envelope.header + Data([0x0A]), ref)
  }

  private func record<T: Encodable>(_ tag: String, _ value: T, _ ref: AttemptRef) {
    guard let body = try? encoder.encode(value) else { return }
    append(Data((tag + " ").utf8) + body + Data([0x0A]), ref)
  }

  /// Writes what was recorded since the last flush; called before anything is sent.
  /// Returns what could not be written (a full disk): the worker carries on, the lines are
  /// still in memory and go to the coordinator, but a crash now could lose them.
  @discardableResult
  func flush() -> [String] {
    var failures: [String] = []
    for (ref, pieces) in buffers where !pieces.isEmpty {
      do throws(WriteAll.Failure) {
        let fd: Int32
        if let known = handles[ref] {
          fd = known
        } else {
          // The attempt's own file (one an earlier run left, being delivered now), or an
          // empty one (should it have gone, removed by hand, the open makes it again).
          let path = files[ref] ?? free.popLast() ?? newSlot()
          files[ref] = path
          fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
          guard fd >= 0 else {
            failures.append("\(path): cannot open the spool file: \(String(cString: strerror(errno)))")
            continue
          }
          handles[ref] = fd
        }
        for piece in pieces { try WriteAll.write(fd, piece) }
      } catch {
        failures.append("\(files[ref] ?? directory): \(error.reason)")
      }
    }
    buffers.removeAll(keepingCapacity: true)
    return failures
  }

  private func newSlot() -> String {
    defer { nextSlot += 1 }
    return directory + "/slot-\(nextSlot).spool"
  }

  /// The coordinator has everything of this attempt: its file is emptied for reuse. A
  /// crash part way leaves it whole, and its records are delivered again and dropped by
  /// the coordinator as duplicates.
  func forget(_ ref: AttemptRef) {
    buffers[ref] = nil
    let fd = handles.removeValue(forKey: ref)
    defer { if let fd { close(fd) } }
    guard let path = files.removeValue(forKey: ref) else { return }
    // An earlier version's file is named for its attempt, so it is not reused.
    if path.hasPrefix(directory + "/slot-"), free.count < Self.maxFree,
      fd.map({ ftruncate($0, 0) == 0 }) ?? (truncate(path, 0) == 0)
    {
      free.append(path)
    } else {
      unlink(path)
    }
  }

  struct Recovered {
    var job: AssignedJob
    /// The spool file it was read from.
    var file: String
    var chunks: [WorkerCore.NumberedChunk]
    var finished: FinishedMessage?
    var cleanup: CleanupMessage?
  }

  /// Reads every spool an earlier run of the worker left. A torn last record (the
  /// crash came mid-write) is ignored, and so is anything after a record that does not
  /// read back.
  static func recover(directory: String) -> [Recovered] {
    var result: [Recovered] = []
    let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
    for name in names.sorted() where name.hasSuffix(".spool") {
      let file = directory + "/" + name
      guard let data = FileManager.default.contents(atPath: file), !data.isEmpty else { continue }
      let records = SpoolRecords(data: data)
      if let job = records.job { result.append(records.recovered(job, file: file)) }
    }
    return result
  }
}

/// One spool file's records, read back.
private struct SpoolRecords {
  var job: AssignedJob?
  var chunks: [WorkerCore.NumberedChunk] = []
  var finished: FinishedMessage?
  var cleanup: CleanupMessage?

  init(data: Data) {
    let decoder = WireCoding.decoder
    var at = data.startIndex
    while at < data.endIndex {
      guard let newline = data[at...].firstIndex(of: 0x0A) else { break }
      let record = data[at..<newline]
      at = newline + 1
      guard record.count > 2 else { continue }
      let tag = record[record.startIndex]
      let body = Data(record.dropFirst(2))
      switch tag {
      case UInt8(ascii: "S"): job = (try? decoder.decode(AssignMessage.self, from: body))?.job
      case UInt8(ascii: "A"): job = try? decoder.decode(AssignedJob.self, from: body)
      case UInt8(ascii: "K"):
        let fields = String(decoding: body, as: UTF8.self).split(separator: " ").compactMap { Int($0) }
        // Numbers a worker could have written (a corrupt file must not crash every start).
        guard fields.count == 3, (1...WireRange.logSeq.upperBound).contains(fields[0]),
          WireRange.logBatchLines.contains(fields[1]),
          fields[0] + fields[1] - 1 <= WireRange.logSeq.upperBound,
          fields[2] >= 0, data.endIndex - at > fields[2],
          data[at + fields[2]] == 0x0A,
          let chunk = try? LogChunk(
            validating: data.subdata(in: at..<at + fields[2]), expectedCount: fields[1])
        else { return }
        chunks.append(WorkerCore.NumberedChunk(firstSeq: fields[0], chunk: chunk))
        at += fields[2] + 1
      case UInt8(ascii: "L"):
        if let line = try? decoder.decode(LogLine.self, from: body),
          (1...WireRange.logSeq.upperBound).contains(line.seq),
          Timestamp.isPlausible(line.time)
        {
          chunks.append(
            WorkerCore.NumberedChunk(
              firstSeq: line.seq, chunk: LogChunk([(line.stream, line.time, line.line)])))
        }
      case UInt8(ascii: "F"): finished = try? decoder.decode(FinishedMessage.self, from: body)
      case UInt8(ascii: "C"): cleanup = try? decoder.decode(CleanupMessage.self, from: body)
      default: continue
      }
    }
  }

  func recovered(_ job: AssignedJob, file: String) -> LogSpool.Recovered {
    LogSpool.Recovered(job: job, file: file, chunks: chunks, finished: finished, cleanup: cleanup)
  }
}
