import Foundation
import Shared
import Synchronization

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#elseif canImport(Darwin)
  import Darwin
#endif

public struct WorkspaceError: Error, Sendable, CustomStringConvertible {
  public let description: String
  public init(_ description: String) { self.description = description }
}

/// One job attempt's private folder, `ROOT/jobs/JOB-ATTEMPT`. Each attempt gets a fresh
/// one (made, or an emptied one checked and reused: `ParkedWorkspaces`), so a requeued job
/// never sees half-finished files from the attempt it replaces.
public struct Workspace: Sendable {
  /// Absolute and canonical, so it can be compared with resolved paths.
  public let root: String
  public let confinement: Confinement
  /// Taken from `ParkedWorkspaces`: its HOME and TMPDIR were checked to be plain, empty
  /// folders, so nothing needs to make them.
  public let reused: Bool

  public init(existing root: String) {
    self.init(confinement: Confinement(root: root))
  }

  private init(confinement: Confinement, reused: Bool = false) {
    self.confinement = confinement
    self.root = confinement.root
    self.reused = reused
  }

  /// Makes the attempt's workspace and writes the bundle's `files` into it. A parked
  /// workspace may come with spare files (small top-level files of an earlier attempt):
  /// the bundle's top-level files are written over them, and those not needed are removed
  /// before this returns, so the workspace holds exactly the bundle either way. If the
  /// bundle cannot be written, the workspace is removed again.
  public static func create(
    workerRoot: String, jobID: String, attempt: Int, files: [(path: String, mode: UInt16, data: [UInt8])] = []
  ) throws -> Workspace {
    var spares: [String] = []
    let workspace = try make(workerRoot: workerRoot, jobID: jobID, attempt: attempt, spares: &spares)
    do {
      try workspace.write(files: files, reusing: spares)
    } catch {
      _ = try? WorkspaceCleanup.remove(workspace.root, diskFreeAt: workerRoot)
      throw error
    }
    return workspace
  }

  private static func make(workerRoot: String, jobID: String, attempt: Int, spares: inout [String]) throws
    -> Workspace
  {
    try validate(jobID: jobID)
    guard attempt >= 0 else { throw WorkspaceError("attempt \(attempt) is negative") }
    var jobs = try jobsFolder(workerRoot: workerRoot, resolvedBefore: true)
    var path = Self.path(jobsFolder: jobs, jobID: jobID, attempt: attempt)
    // The common case first: one mkdir(2). A jobs folder removed while the worker ran is
    // made again; only a name that exists already, left over from an earlier run of the
    // worker (a crash before cleanup), is removed (without following any link it holds)
    // to start clean.
    let parked = ParkedWorkspaces.take(jobsFolder: jobs, into: path)
    spares = parked ?? []
    var made = parked != nil || mkdir(path, 0o755) == 0
    if !made, errno == ENOENT {
      jobs = try jobsFolder(workerRoot: workerRoot, resolvedBefore: false)
      path = Self.path(jobsFolder: jobs, jobID: jobID, attempt: attempt)
      made = mkdir(path, 0o755) == 0
    }
    if !made {
      guard errno == EEXIST else {
        throw WorkspaceError("cannot create the workspace '\(path)': \(String(cString: strerror(errno)))")
      }
      _ = try WorkspaceCleanup.remove(path, diskFreeAt: jobs)
      guard mkdir(path, 0o755) == 0 else {
        throw WorkspaceError("cannot create the workspace '\(path)': \(String(cString: strerror(errno)))")
      }
    }
    // Canonical as built: a canonical folder and a name just made by mkdir(2).
    return Workspace(confinement: Confinement(canonicalRoot: path), reused: parked != nil)
  }

  /// `ROOT/jobs`, created if missing, canonical. Resolved once per worker root (unless
  /// `resolvedBefore` is false: it went away): finding it again for every job cost a
  /// `readlink` per component of the path.
  private static func jobsFolder(workerRoot: String, resolvedBefore: Bool) throws -> String {
    if resolvedBefore, let known = canonicalJobsFolders.withLock({ $0[workerRoot] }) { return known }
    let jobs = workerRoot + "/jobs"
    if mkdir(jobs, 0o755) != 0, errno != EEXIST {
      do {
        try FileManager.default.createDirectory(atPath: jobs, withIntermediateDirectories: true)
      } catch {
        throw WorkspaceError("cannot create the jobs folder '\(jobs)': \(error.localizedDescription)")
      }
    }
    let canonical = Confinement(root: jobs).root
    canonicalJobsFolders.withLock { $0[workerRoot] = canonical }
    return canonical
  }

  private static let canonicalJobsFolders = Mutex<[String: String]>([:])

  /// Where an attempt's workspace is (whether or not it exists).
  public static func path(workerRoot: String, jobID: String, attempt: Int) -> String {
    path(jobsFolder: Confinement(root: workerRoot + "/jobs").root, jobID: jobID, attempt: attempt)
  }

  private static func path(jobsFolder: String, jobID: String, attempt: Int) -> String {
    jobsFolder + "/\(jobID)-\(attempt)"
  }

  /// Opens a spare file for writing over, if it still passes `ParkedWorkspaces.isSpare`
  /// (`device`: the workspace's); otherwise removes it and returns -1, for a new file to be
  /// made in its place. (Checked again on the open file: the check when it was taken is
  /// not the last word.)
  private static func openSpare(_ path: String, device: dev_t) -> (fd: Int32, info: stat)? {
    let fd = open(path, O_WRONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
    var info = stat()
    if fd >= 0, fstat(fd, &info) == 0, ParkedWorkspaces.isSpare(info, device: device) { return (fd, info) }
    if fd >= 0 { close(fd) }
    _ = unlink(path)
    return nil
  }

  /// Job ids become one path component; anything that could name another folder is refused.
  static func validate(jobID: String) throws {
    let problem: String? =
      if jobID.isEmpty { "it is empty" } else if jobID.contains("/") {
        "it contains '/'"
      } else if jobID.contains("..") { "it contains '..'" } else if jobID.hasPrefix(".") {
        "it starts with '.'"
      } else if jobID.utf8.contains(where: { $0 < 0x20 || $0 == 0x7f }) {
        "it contains a control character"
      } else if jobID.utf8.count > 200 { "it is longer than 200 bytes" } else { nil }
    if let problem { throw WorkspaceError("refusing job id '\(jobID)' as a folder name: \(problem)") }
  }

  /// Writes a bundle's files. Each path is confined to the workspace and written without
  /// following a link at its final component; the mode is applied as given (permission
  /// bits only), so scripts shipped executable stay executable. Mode 0 means "unknown" and
  /// becomes 0644.
  public func write(files: [(path: String, mode: UInt16, data: [UInt8])]) throws {
    try write(files: files, reusing: [])
  }

  /// `spares`: names of small regular files in the root, checked by `ParkedWorkspaces`.
  /// A bundle file of the same name is written over its spare instead of a new file; the
  /// other spares are removed first, so none stands where the bundle needs a folder. On
  /// this disk a new inode scans past every one freed in the last half minute, and the
  /// bundle's file was the last inode a trivial job made and freed; an array's jobs all
  /// have the same bundle.
  private func write(files: [(path: String, mode: UInt16, data: [UInt8])], reusing spares: [String]) throws {
    let confinement = self.confinement
    let wanted = Set(files.map(\.path))
    var spares = Set(spares)
    var rootInfo = stat()
    if !spares.isEmpty, stat(root, &rootInfo) != 0 {
      throw WorkspaceError("cannot examine the workspace '\(root)': \(String(cString: strerror(errno)))")
    }
    for name in spares where !wanted.contains(name) {
      _ = unlink(root + "/" + name)
      spares.remove(name)
    }
    for file in files {
      let target: String
      do {
        target = try confinement.resolveWithoutFollowingFinalSymlink(file.path)
      } catch {
        throw WorkspaceError("bundle file \(error.description)")
      }
      guard target != root else {
        throw WorkspaceError("bundle file path '\(file.path)' names the workspace itself")
      }
      let parent = (target as NSString).deletingLastPathComponent
      // Most bundles are flat: their files go straight into the workspace, which exists
      // (and `createDirectory` would try a mkdir(2) for every folder above it).
      do {
        if parent != root {
          try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
        }
      } catch {
        throw WorkspaceError(
          "cannot create folder for bundle file '\(file.path)': \(error.localizedDescription)")
      }
      let mode = file.mode == 0 ? mode_t(0o644) : mode_t(file.mode & 0o777)
      var fd: Int32 = -1
      var spare: stat?
      if parent == root, spares.remove((target as NSString).lastPathComponent) != nil,
        let opened = Self.openSpare(target, device: rootInfo.st_dev)
      {
        (fd, spare) = (opened.fd, opened.info)
      }
      if fd < 0 { fd = open(target, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, mode) }
      guard fd >= 0 else {
        throw WorkspaceError("cannot write bundle file '\(file.path)': \(String(cString: strerror(errno)))")
      }
      defer { close(fd) }
      do throws(WriteAll.Failure) { try WriteAll.write(fd, file.data) } catch {
        throw WorkspaceError("cannot write bundle file '\(file.path)': \(error.reason)")
      }
      // A spare is written over, then cut to the new length if it was longer: the same
      // file again (an array's next job) frees and allocates no block, and nothing of the
      // old one stays. A spare that already has the file's mode keeps it without a call.
      if let spare, Int(spare.st_size) > file.data.count, ftruncate(fd, off_t(file.data.count)) != 0 {
        throw WorkspaceError("cannot write bundle file '\(file.path)': \(String(cString: strerror(errno)))")
      }
      // open() applies the umask; the bundle's mode is what the author meant.
      guard spare.map({ $0.st_mode & 0o7777 == mode }) == true || fchmod(fd, mode) == 0 else {
        throw WorkspaceError(
          "cannot set mode of bundle file '\(file.path)': \(String(cString: strerror(errno)))")
      }
    }
  }
}
