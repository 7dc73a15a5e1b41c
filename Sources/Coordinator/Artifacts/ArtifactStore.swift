import Foundation
import Shared

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#elseif canImport(Darwin)
  import Darwin
#endif

/// Limits on stored artifacts: bytes and files per job (every attempt together), and
/// bytes for the whole pool.
public struct ArtifactLimits: Sendable, Hashable {
  public var perJob: Int64
  public var pool: Int64
  /// Files per job: a glob like `**` over a checked-out repository would otherwise
  /// upload (and `pinpool artifacts` list) tens of thousands of files.
  public var filesPerJob: Int
  public init(perJob: Int64 = 10_000_000_000, pool: Int64 = 100_000_000_000, filesPerJob: Int = 1000) {
    self.perJob = perJob
    self.pool = pool
    self.filesPerJob = filesPerJob
  }
}

/// What handling one `artifactBegin` or chunk produced: the acknowledgement to send
/// and, when a file was completed, the row to record (in the batch's transaction, before
/// the acknowledgement leaves).
struct ArtifactOutcome: Sendable {
  var ack: ArtifactAckMessage
  var stored: StoreChange?
}

/// The artifact files under the coordinator's data folder:
///
///     DATA/artifacts/JOB/ATTEMPT/files/NAME         stored, verified files
///     DATA/artifacts/JOB/ATTEMPT/partial/KEY        uploads in progress (KEY hashes the
///                                                   name, size and SHA-256)
///
/// A chunk is appended only where the partial file ends and made durable (fsync) before
/// its acknowledgement, so the partial file's length is exactly what the coordinator
/// holds, across crashes too. Used from the coordinator's loop thread only.
final class ArtifactStore {
  struct Key: Hashable {
    var job: Int64
    var attempt: Int
    var name: String
  }

  let root: String
  let limits: ArtifactLimits
  /// Sizes of stored files and of uploads begun (reserved), per file.
  private var sizes: [Key: Int64] = [:]
  /// SHA-256 of stored files.
  private var stored: [Key: String] = [:]
  private var jobTotals: [Int64: Int64] = [:]
  private(set) var poolTotal: Int64 = 0
  /// SHA-256 of the bytes appended so far, while they arrive in order in this process;
  /// after a restart the partial file is read again instead.
  private var running: [Key: (offset: Int64, stream: SHA256Stream)] = [:]

  init(
    root: String, limits: ArtifactLimits,
    stored rows: [(job: Int64, attempt: Int, name: String, size: Int64, sha256: String)]
  ) throws(ArtifactStoreError) {
    self.root = root
    self.limits = limits
    do {
      try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    } catch {
      throw ArtifactStoreError("cannot create the artifact folder '\(root)': \(error.localizedDescription)")
    }
    for row in rows {
      let key = Key(job: row.job, attempt: row.attempt, name: row.name)
      reserve(key, size: row.size)
      stored[key] = row.sha256
    }
  }

  func jobTotal(_ job: Int64) -> Int64 { jobTotals[job] ?? 0 }

  func attemptFolder(job: Int64, attempt: Int) -> String { root + "/\(job)/\(attempt)" }

  func finalPath(_ key: Key) -> String {
    attemptFolder(job: key.job, attempt: key.attempt) + "/files/" + key.name
  }

  func partialPath(_ key: Key, size: Int64, sha256: String) -> String {
    attemptFolder(job: key.job, attempt: key.attempt) + "/partial/"
      + Data("\(key.name)\n\(size)\n\(sha256)".utf8).sha256Hex
  }

  // MARK: Uploads

  func begin(jobID: Int64, _ message: ArtifactBeginMessage, now: Double) -> ArtifactOutcome {
    let key = Key(job: jobID, attempt: message.attempt, name: message.name)
    func ack(_ offset: Int64, error: String? = nil) -> ArtifactOutcome {
      Self.ack(key, jobText: message.jobID, offset, error: error)
    }
    let partial: String
    switch admit(key, size: message.size, sha256: message.sha256, jobText: message.jobID, now: now) {
    case .answered(let outcome): return outcome
    case .partial(let path): partial = path
    }
    do {
      try FileManager.default.createDirectory(
        atPath: (partial as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
    } catch {
      return ack(0, error: "the coordinator cannot store artifacts: \(error.localizedDescription)")
    }
    var held = Self.length(partial) ?? 0
    if held > message.size {
      unlink(partial)
      running[key] = nil
      held = 0
    }
    if held == message.size {
      return finish(
        key, partial: partial, size: message.size, sha256: message.sha256, jobText: message.jobID, now: now)
    }
    return ack(held)
  }

  func chunk(jobID: Int64, _ message: ArtifactChunkMessage, data: Data, now: Double) -> ArtifactOutcome {
    let key = Key(job: jobID, attempt: message.attempt, name: message.name)
    func ack(_ offset: Int64, error: String? = nil) -> ArtifactOutcome {
      Self.ack(key, jobText: message.jobID, offset, error: error)
    }
    // A chunk with no `artifactBegin` in this process (sent across a restart) is admitted
    // (its size reserved) here too.
    let partial: String
    switch admit(key, size: message.size, sha256: message.sha256, jobText: message.jobID, now: now) {
    case .answered(let outcome): return outcome
    case .partial(let path): partial = path
    }
    let held = Self.length(partial) ?? 0
    // Only the chunk that continues the partial file exactly is taken; anything else
    // (a resend, or one that overtook a lost one) is answered with what is held.
    guard message.offset == held else { return ack(held) }
    guard held + Int64(data.count) <= message.size else {
      return ack(
        held,
        error:
          "chunk of '\(message.name)' at offset \(message.offset) (\(data.count) bytes) runs past the declared size of \(message.size) bytes"
      )
    }
    if !data.isEmpty {
      do {
        try Self.append(data, to: partial)
      } catch {
        return ack(held, error: "the coordinator cannot store artifacts: \(error.description)")
      }
      if var hashing = running[key], hashing.offset == held {
        hashing.stream.update(data)
        hashing.offset += Int64(data.count)
        running[key] = hashing
      } else if held == 0 {
        var stream = SHA256Stream()
        stream.update(data)
        running[key] = (Int64(data.count), stream)
      }
    }
    let heldAfter = held + Int64(data.count)
    if heldAfter == message.size {
      return finish(
        key, partial: partial, size: message.size, sha256: message.sha256, jobText: message.jobID, now: now)
    }
    return ack(heldAfter)
  }

  /// Verifies a complete partial file and moves it into place.
  private func finish(
    _ key: Key, partial: String, size: Int64, sha256: String, jobText: String, now: Double
  ) -> ArtifactOutcome {
    func ack(_ offset: Int64, error: String? = nil, retryable: Bool = false) -> ArtifactOutcome {
      Self.ack(key, jobText: jobText, offset, error: error, retryable: retryable)
    }
    if size == 0, Self.length(partial) == nil {
      // An empty file never gets a chunk: create it.
      let fd = open(partial, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
      if fd >= 0 { close(fd) }
    }
    let actual: String
    if let hashing = running[key], hashing.offset == size {
      actual = hashing.stream.hex()
    } else {
      do {
        actual = try FileDigest.sha256(path: partial).sha256
      } catch {
        return ack(0, error: "the coordinator cannot verify '\(key.name)': \(error.description)")
      }
    }
    running[key] = nil
    guard actual == sha256 else {
      unlink(partial)
      return ack(
        0,
        error:
          "checksum mismatch for '\(key.name)': received \(actual), expected \(sha256); the partial file was discarded",
        retryable: true)
    }
    let final = finalPath(key)
    do {
      try FileManager.default.createDirectory(
        atPath: (final as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
    } catch {
      return ack(size, error: "the coordinator cannot store '\(key.name)': \(error.localizedDescription)")
    }
    guard rename(partial, final) == 0 else {
      return ack(
        size, error: "the coordinator cannot store '\(key.name)': \(String(cString: strerror(errno)))")
    }
    try? WriteAll.syncDirectory((final as NSString).deletingLastPathComponent)
    stored[key] = sha256
    return Self.complete(key, jobText: jobText, size: size, sha256: sha256, now: now)
  }

  private enum Admission {
    /// Refused, or stored already: this is the answer.
    case answered(ArtifactOutcome)
    /// Go on with the upload in this partial file (its size is reserved).
    case partial(String)
  }

  /// What every `artifactBegin` and `artifactChunk` passes first.
  private func admit(_ key: Key, size: Int64, sha256: String, jobText: String, now: Double) -> Admission {
    if let refusal = check(key, size: size, sha256: sha256, jobText: jobText) {
      return .answered(Self.ack(key, jobText: jobText, 0, error: refusal))
    }
    if let done = alreadyStored(key, size: size, sha256: sha256, jobText: jobText, now: now) {
      return .answered(done)
    }
    reserve(key, size: size)
    return .partial(partialPath(key, size: size, sha256: sha256))
  }

  /// An acknowledgement of `offset` bytes held (with `error`, a refusal).
  private static func ack(
    _ key: Key, jobText: String, _ offset: Int64, error: String? = nil, retryable: Bool = false
  ) -> ArtifactOutcome {
    ArtifactOutcome(
      ack: ArtifactAckMessage(
        jobID: jobText, attempt: key.attempt, name: key.name, offset: offset, complete: false, error: error,
        retryable: retryable))
  }

  /// The file is stored: acknowledged complete, and recorded.
  private static func complete(_ key: Key, jobText: String, size: Int64, sha256: String, now: Double)
    -> ArtifactOutcome
  {
    ArtifactOutcome(
      ack: ArtifactAckMessage(
        jobID: jobText, attempt: key.attempt, name: key.name, offset: size, complete: true),
      stored: .artifactStored(
        jobID: key.job, attempt: key.attempt, name: key.name, size: size, sha256: sha256, at: now))
  }

  /// A file stored before (an acknowledgement lost with a connection, or a restart
  /// between storing and committing): complete again, recorded again.
  private func alreadyStored(_ key: Key, size: Int64, sha256: String, jobText: String, now: Double)
    -> ArtifactOutcome?
  {
    let final = finalPath(key)
    guard let length = Self.length(final) else { return nil }
    let known = stored[key]
    var matches = known == sha256 && length == size
    if known == nil, length == size {
      matches = (try? FileDigest.sha256(path: final).sha256) == sha256
    }
    guard matches else {
      // The same name with other content: the new upload replaces it.
      unlink(final)
      stored[key] = nil
      return nil
    }
    stored[key] = sha256
    reserve(key, size: size)
    return Self.complete(key, jobText: jobText, size: size, sha256: sha256, now: now)
  }

  /// Why an upload is refused: a bad name or checksum, or a limit.
  private func check(_ key: Key, size: Int64, sha256: String, jobText: String) -> String? {
    if let problem = ArtifactName.problem(key.name) {
      return "artifact name '\(key.name)' is refused: \(problem)"
    }
    guard size >= 0 else { return "artifact '\(key.name)' declares a negative size (\(size))" }
    guard sha256.utf8.count == 64,
      sha256.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) })
    else {
      return "artifact '\(key.name)' declares sha256 '\(sha256.prefix(80))', not 64 lowercase hex digits"
    }
    if sizes[key] == nil {
      let files = sizes.keys.lazy.filter { $0.job == key.job }.count
      if files >= limits.filesPerJob {
        return
          "job \(jobText): artifact '\(key.name)' would be the job's file number \(files + 1), over the limit of "
          + "\(limits.filesPerJob) files per job (pinpool coordinator --artifact-files)"
      }
    }
    let previous = sizes[key] ?? 0
    let job = jobTotal(key.job) - previous + size
    if job > limits.perJob {
      return
        "job \(jobText): artifact '\(key.name)' (\(ByteSize(bytes: size))) would bring the job's artifacts to "
        + "\(ByteSize(bytes: job)), over the per-job limit of \(ByteSize(bytes: limits.perJob)) "
        + "(pinpool coordinator --artifact-limit)"
    }
    let pool = poolTotal - previous + size
    if pool > limits.pool {
      return
        "job \(jobText): artifact '\(key.name)' (\(ByteSize(bytes: size))) would bring the pool's artifacts to "
        + "\(ByteSize(bytes: pool)), over the pool limit of \(ByteSize(bytes: limits.pool)) "
        + "(pinpool coordinator --artifact-pool-limit; finished jobs' artifacts go with them after --retention)"
    }
    return nil
  }

  private func reserve(_ key: Key, size: Int64) {
    let previous = sizes[key] ?? 0
    sizes[key] = size
    jobTotals[key.job, default: 0] += size - previous
    poolTotal += size - previous
  }

  // MARK: Reading and deleting

  /// Up to `length` bytes of a stored artifact from `offset`.
  func read(job: Int64, attempt: Int, name: String, offset: Int64, length: Int) throws(ArtifactStoreError)
    -> Data
  {
    if let problem = ArtifactName.problem(name) {
      throw ArtifactStoreError("artifact name '\(name)' is refused: \(problem)")
    }
    let path = finalPath(Key(job: job, attempt: attempt, name: name))
    let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
    guard fd >= 0 else {
      throw ArtifactStoreError(
        "cannot read artifact '\(name)' of job \(job): \(String(cString: strerror(errno)))")
    }
    defer { close(fd) }
    do throws(WriteAll.Failure) {
      return try WriteAll.read(fd, count: length, at: offset)
    } catch {
      throw ArtifactStoreError("cannot read artifact '\(name)' of job \(job): \(error.reason)")
    }
  }

  /// An attempt whose cleanup was reported uploads nothing more: its partial files go,
  /// and so does the space reserved for files it never completed.
  func settle(job: Int64, attempt: Int) {
    // Every job's cleanup comes here and most uploaded nothing: one lstat, not a
    // removal that fails with an error object built for nothing.
    let partial = attemptFolder(job: job, attempt: attempt) + "/partial"
    var info = stat()
    if lstat(partial, &info) == 0 { try? FileManager.default.removeItem(atPath: partial) }
    for key in sizes.keys where key.job == job && key.attempt == attempt && stored[key] == nil {
      let size = sizes.removeValue(forKey: key) ?? 0
      jobTotals[job, default: 0] -= size
      poolTotal -= size
      running[key] = nil
    }
  }

  /// Deletes every file of a job (retention pruned it).
  func removeJob(_ job: Int64) {
    try? FileManager.default.removeItem(atPath: root + "/\(job)")
    for key in sizes.keys where key.job == job {
      poolTotal -= sizes[key] ?? 0
      sizes[key] = nil
      stored[key] = nil
      running[key] = nil
    }
    jobTotals[job] = nil
  }

  // MARK: Files

  static func length(_ path: String) -> Int64? {
    var info = stat()
    guard lstat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { return nil }
    return Int64(info.st_size)
  }

  private static func append(_ data: Data, to path: String) throws(ArtifactStoreError) {
    let created = length(path) == nil
    let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0o644)
    guard fd >= 0 else {
      throw ArtifactStoreError("cannot open '\(path)': \(String(cString: strerror(errno)))")
    }
    defer { close(fd) }
    do throws(WriteAll.Failure) {
      try WriteAll.write(fd, data)
    } catch {
      // Leave the partial file as it was, so its length stays what was acknowledged.
      _ = ftruncate(fd, off_t(Int64(lseek(fd, 0, SEEK_END)) - Int64(error.written)))
      throw ArtifactStoreError("cannot write '\(path)': \(error.reason)")
    }
    guard fsync(fd) == 0 else {
      throw ArtifactStoreError("cannot sync '\(path)': \(String(cString: strerror(errno)))")
    }
    if created { try? WriteAll.syncDirectory((path as NSString).deletingLastPathComponent) }
  }
}

public struct ArtifactStoreError: Error, Sendable, CustomStringConvertible {
  public let description: String
  public init(_ description: String) { self.description = description }
}
