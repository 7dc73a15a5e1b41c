import ArgumentParser
import Foundation
import Shared

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#elseif canImport(Darwin)
  import Darwin
#endif

struct ArtifactsCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "artifacts", abstract: "List a job's stored artifacts, or download them.",
    discussion: manual(
      """
      A job declares its artifacts with "artifacts": ["outputs/**/*.mp4"] in its script or
      `submit --artifact GLOB`; the worker uploads them when the steps end, before cleanup.
      The list shows each file's name, size and SHA-256. --download takes the latest attempt's
      file of each name and verifies it against its SHA-256.
      """,
      examples: [
        "pinpool artifacts 42", "pinpool artifacts 42 --download ./out", "pinpool artifacts 42 --json",
      ]))
  @Argument(help: "The job id.") var job: String
  @Option(help: ArgumentHelp("Download every artifact into this folder.", valueName: "dir")) var download:
    String?
  @OptionGroup var client: ClientOptions

  static let fetchBytes = 4 * 1024 * 1024

  func run() throws {
    let connection = try client.client()
    let request = ArtifactsRequest(requestID: newRequestID(), jobID: job)
    let views = try client.request(
      connection, .artifacts, request, requestID: request.requestID, expecting: [ArtifactView].self)
    guard let download else {
      if client.json { return printJSON(views) }
      if views.isEmpty {
        print("job \(job) has no stored artifacts" + (try pendingNote(connection)))
        return
      }
      let multipleAttempts = Set(views.map(\.attempt)).count > 1
      var table = Table(
        header: multipleAttempts ? ["NAME", "ATTEMPT", "SIZE", "SHA256"] : ["NAME", "SIZE", "SHA256"])
      for view in views {
        table.append(
          ([view.name] + (multipleAttempts ? [String(view.attempt)] : [])
            + [ByteSize(bytes: view.size).description, view.sha256]).map { Table.Cell($0) })
      }
      print(table.render(style: .detect(fd: 1)))
      return
    }
    // The latest attempt's file of each name.
    var latest: [String: ArtifactView] = [:]
    for view in views where (latest[view.name]?.attempt ?? Int.min) < view.attempt {
      latest[view.name] = view
    }
    let chosen = latest.values.sorted { $0.name < $1.name }
    if chosen.isEmpty {
      let note = try pendingNote(connection)
      if client.json { return printJSON([DownloadedArtifact]()) }
      print("job \(job) has no stored artifacts; nothing downloaded" + note)
      return
    }
    let folder = try prepareFolder(download)
    var done: [DownloadedArtifact] = []
    for view in chosen {
      let path = try fetch(view, into: folder, connection: connection)
      done.append(
        DownloadedArtifact(
          name: view.name, size: view.size, sha256: view.sha256, attempt: view.attempt, path: path))
      if !client.json {
        print("\(view.name)  \(ByteSize(bytes: view.size))  sha256 \(view.sha256)  → \(path)")
      }
    }
    if client.json { printJSON(done) }
  }

  /// ", still uploading (...)" when the job's cleanup, and so its upload, is pending.
  private func pendingNote(_ connection: RequestClient) throws -> String {
    let request = JobRequest(requestID: newRequestID(), jobID: job)
    guard
      let view = try? client.request(
        connection, .status, request, requestID: request.requestID, expecting: JobView.self)
    else { return "" }
    if !view.state.isFinal { return " yet (the job is \(view.state.rawValue))" }
    if view.cleanup.state == .pending {
      return " yet (" + (view.cleanup.reason ?? "its worker has not reported its cleanup") + ")"
    }
    if view.cleanup.state == .kept, let reason = view.cleanup.reason { return " (\(reason))" }
    return ""
  }

  /// Creates the folder if needed and returns its canonical path.
  private func prepareFolder(_ path: String) throws -> String {
    do {
      try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    } catch {
      throw CLIError("--download: cannot create '\(path)': \(error.localizedDescription)")
    }
    guard let real = realpath(path, nil) else {
      throw CLIError("--download: cannot use '\(path)': \(String(cString: strerror(errno)))")
    }
    defer { free(real) }
    return String(cString: real)
  }

  /// Downloads one artifact to `folder/name` through a temporary file, verifying its
  /// SHA-256 before it takes the name. Returns the path.
  private func fetch(_ view: ArtifactView, into folder: String, connection: RequestClient) throws -> String {
    if let problem = ArtifactName.problem(view.name) {
      throw CLIError("refusing artifact '\(view.name)': \(problem); it could land outside '\(folder)'")
    }
    // Every folder on the way is created here or must be a real folder: a symbolic link
    // planted in the download folder must not carry a file elsewhere.
    let components = view.name.split(separator: "/").map(String.init)
    var parent = folder
    for component in components.dropLast() {
      parent += "/" + component
      var info = stat()
      if lstat(parent, &info) != 0 {
        guard mkdir(parent, 0o755) == 0 || errno == EEXIST else {
          throw CLIError("cannot create '\(parent)': \(String(cString: strerror(errno)))")
        }
      } else if (info.st_mode & S_IFMT) != S_IFDIR {
        throw CLIError(
          "refusing to download '\(view.name)': '\(parent)' is not a folder (a symbolic link or a file)")
      }
    }
    let target = parent + "/" + components.last!
    var info = stat()
    if lstat(target, &info) == 0, (info.st_mode & S_IFMT) != S_IFREG {
      throw CLIError("refusing to download '\(view.name)': '\(target)' exists and is not a regular file")
    }
    // Short, so a name at the file system's length limit still has room for it.
    let temporary = parent + "/.pinpool-download-\(UUID().uuidString.prefix(8).lowercased())"
    let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
    guard fd >= 0 else { throw CLIError("cannot create '\(temporary)': \(String(cString: strerror(errno)))") }
    var closed = false
    defer {
      if !closed { close(fd) }
      unlink(temporary)
    }
    var stream = SHA256Stream()
    var offset: Int64 = 0
    while offset < view.size {
      let request = ArtifactFetchRequest(
        requestID: newRequestID(), jobID: job, attempt: view.attempt, name: view.name, offset: offset,
        length: Self.fetchBytes)
      let (reply, payload): (ArtifactFetchReply, [Data])
      do {
        (reply, payload) = try connection.requestWithPayload(
          .artifactFetch, request, requestID: request.requestID, expecting: ArtifactFetchReply.self)
      } catch {
        throw CLIError("downloading '\(view.name)': \(error.description)")
      }
      guard let data = payload.first, data.count == reply.length, reply.offset == offset, !data.isEmpty else {
        throw CLIError(
          "downloading '\(view.name)': the coordinator sent a malformed chunk at offset \(offset)")
      }
      guard reply.size == view.size, reply.sha256 == view.sha256 else {
        throw CLIError(
          "downloading '\(view.name)': the stored file changed while it was downloaded; try again")
      }
      do throws(WriteAll.Failure) { try WriteAll.write(fd, data) } catch {
        throw CLIError("cannot write '\(temporary)': \(error.reason)")
      }
      stream.update(data)
      offset += Int64(data.count)
    }
    let actual = stream.hex()
    guard actual == view.sha256 else {
      throw CLIError(
        "checksum mismatch for '\(view.name)': downloaded \(actual), expected \(view.sha256); nothing was written"
      )
    }
    guard fsync(fd) == 0 else {
      throw CLIError("cannot sync '\(temporary)': \(String(cString: strerror(errno)))")
    }
    close(fd)
    closed = true
    guard rename(temporary, target) == 0 else {
      throw CLIError("cannot move the download into '\(target)': \(String(cString: strerror(errno)))")
    }
    return target
  }
}

/// `pinpool artifacts JOB --download DIR --json`: each file downloaded, where it went.
struct DownloadedArtifact: Codable {
  var name: String
  var size: Int64
  var sha256: String
  var attempt: Int
  var path: String
}
