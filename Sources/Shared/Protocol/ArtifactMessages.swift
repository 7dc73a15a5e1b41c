import Foundation

/// Artifacts: the files a job declares as its outputs. When the steps end, the worker
/// uploads each matching file in chunks, one file at a time:
///
///     worker → artifactBegin {name, size, sha256}      coordinator → artifactAck {offset held}
///     worker → artifactChunk {name, offset} + bytes    coordinator → artifactAck {offset held}
///     ...                                              coordinator → artifactAck {complete}
///
/// The coordinator appends a chunk only when it starts exactly where its partial file
/// ends, makes it durable, then acknowledges the length it holds; after a reconnect or a
/// coordinator restart the worker sends `artifactBegin` again and resumes from the
/// offset in the answer, so nothing is sent twice and nothing is lost. The last chunk is
/// verified against the file's SHA-256 before the file is recorded.

/// Starts (or, after a reconnect, resumes) the upload of one file.
public struct ArtifactBeginMessage: Sendable, Codable, Hashable {
  public var workerID: String
  public var jobID: String
  public var attempt: Int
  /// The path relative to the workspace, e.g. `app/outputs/clip.mp4`.
  public var name: String
  public var size: Int64
  /// Lowercase hex SHA-256 of the whole file.
  public var sha256: String
  /// Which of `count` files of the attempt this is (from 0), for the status line.
  public var index: Int
  public var count: Int
  public init(
    workerID: String, jobID: String, attempt: Int, name: String, size: Int64, sha256: String, index: Int,
    count: Int
  ) {
    self.workerID = workerID
    self.jobID = jobID
    self.attempt = attempt
    self.name = name
    self.size = size
    self.sha256 = sha256
    self.index = index
    self.count = count
  }
  public var ref: AttemptRef { AttemptRef(jobID: jobID, attempt: attempt) }
}

/// One chunk of a file; its bytes are the one payload frame.
public struct ArtifactChunkMessage: Sendable, Codable, Hashable {
  public var workerID: String
  public var jobID: String
  public var attempt: Int
  public var name: String
  /// Where the payload starts in the file.
  public var offset: Int64
  /// The whole file's size and SHA-256, as in `artifactBegin`.
  public var size: Int64
  public var sha256: String
  public init(
    workerID: String, jobID: String, attempt: Int, name: String, offset: Int64, size: Int64, sha256: String
  ) {
    self.workerID = workerID
    self.jobID = jobID
    self.attempt = attempt
    self.name = name
    self.offset = offset
    self.size = size
    self.sha256 = sha256
  }
  public var ref: AttemptRef { AttemptRef(jobID: jobID, attempt: attempt) }
}

/// The coordinator's answer to `artifactBegin` and to every chunk: how many bytes of
/// the file it durably holds, whether the file is stored and verified, or why not.
public struct ArtifactAckMessage: Sendable, Codable, Hashable {
  public var jobID: String
  public var attempt: Int
  public var name: String
  /// Bytes of the file the coordinator holds; the next chunk must start here.
  public var offset: Int64
  /// The file is stored, its SHA-256 verified.
  public var complete: Bool
  /// The upload was refused (over a limit, a bad name, a checksum mismatch).
  public var error: String?
  /// The refusal may go away by sending the file again from offset 0 (a checksum
  /// mismatch: the partial file was discarded).
  public var retryable: Bool
  public init(
    jobID: String, attempt: Int, name: String, offset: Int64, complete: Bool, error: String? = nil,
    retryable: Bool = false
  ) {
    self.jobID = jobID
    self.attempt = attempt
    self.name = name
    self.offset = offset
    self.complete = complete
    self.error = error
    self.retryable = retryable
  }
  public var ref: AttemptRef { AttemptRef(jobID: jobID, attempt: attempt) }
}

// MARK: Client

/// `pinpool artifacts JOB`: the stored artifacts of every attempt of a job.
public struct ArtifactsRequest: Sendable, Codable {
  public var requestID: String
  public var jobID: String
  public init(requestID: String, jobID: String) {
    self.requestID = requestID
    self.jobID = jobID
  }
}

/// One stored artifact (`pinpool artifacts JOB --json` prints an array of these).
public struct ArtifactView: Sendable, Hashable, Codable {
  public var name: String
  public var size: Int64
  public var sha256: String
  public var attempt: Int
  /// When it was stored, ISO 8601.
  public var created: String?
  public init(name: String, size: Int64, sha256: String, attempt: Int, created: String? = nil) {
    self.name = name
    self.size = size
    self.sha256 = sha256
    self.attempt = attempt
    self.created = created
  }
}

/// Reads `length` bytes of a stored artifact from `offset`; the reply is an
/// `ArtifactFetchReply` with the bytes as its one payload frame.
public struct ArtifactFetchRequest: Sendable, Codable {
  public var requestID: String
  public var jobID: String
  public var attempt: Int
  public var name: String
  public var offset: Int64
  public var length: Int
  public init(requestID: String, jobID: String, attempt: Int, name: String, offset: Int64, length: Int) {
    self.requestID = requestID
    self.jobID = jobID
    self.attempt = attempt
    self.name = name
    self.offset = offset
    self.length = length
  }
}

public struct ArtifactFetchReply: Sendable, Codable {
  public var name: String
  public var offset: Int64
  /// Bytes in the payload frame.
  public var length: Int
  /// The whole file's size and SHA-256.
  public var size: Int64
  public var sha256: String
  public init(name: String, offset: Int64, length: Int, size: Int64, sha256: String) {
    self.name = name
    self.offset = offset
    self.length = length
    self.size = size
    self.sha256 = sha256
  }
}

// MARK: Names and globs

/// The rules for an artifact's name, a path relative to the workspace that becomes a
/// path under the coordinator's data folder and under a client's download folder: it
/// must stay below both, so anything that could climb out or confuse a file system is
/// refused with the reason.
public enum ArtifactName {
  public static let maxBytes = 1024

  public static func problem(_ name: String) -> String? {
    if name.isEmpty { return "it is empty" }
    if name.utf8.count > maxBytes { return "it is longer than \(maxBytes) bytes" }
    if name.hasPrefix("/") { return "it is an absolute path" }
    if name.utf8.contains(where: { $0 < 0x20 || $0 == 0x7f }) { return "it contains a control character" }
    if name.contains("\\") { return "it contains a backslash" }
    for component in name.split(separator: "/", omittingEmptySubsequences: false) {
      if component.isEmpty { return "it has an empty path component ('//' or a trailing '/')" }
      if component == "." || component == ".." { return "it has a '\(component)' component" }
      if component.utf8.count > 255 { return "a component is longer than 255 bytes" }
    }
    return nil
  }

  public static func validate(_ name: String) throws(ArtifactError) {
    if let problem = problem(name) { throw .badName(name, problem) }
  }
}

/// `artifacts` globs: relative to the workspace, `*` and `?` and `[...]` within one path
/// component, `**` for any number of folders.
public enum ArtifactGlob {
  public static func problem(_ glob: String) -> String? {
    if glob.isEmpty { return "it is empty" }
    if glob.hasPrefix("/") { return "it is an absolute path; artifact globs are relative to the workspace" }
    if glob.utf8.contains(0) { return "it contains a NUL byte" }
    for component in glob.split(separator: "/") where component == ".." {
      _ = component
      return "it has a '..' component; artifacts must lie inside the workspace"
    }
    return nil
  }

  public static func validate(_ globs: [String]) throws(ArtifactError) {
    for glob in globs {
      if let problem = problem(glob) { throw .badGlob(glob, problem) }
    }
  }
}

public enum ArtifactError: Error, Sendable, Hashable, CustomStringConvertible {
  case badName(String, String)
  case badGlob(String, String)

  public var description: String {
    switch self {
    case .badName(let name, let why): "artifact name '\(name)' is refused: \(why)"
    case .badGlob(let glob, let why): "artifact glob '\(glob)' is refused: \(why)"
    }
  }
}
