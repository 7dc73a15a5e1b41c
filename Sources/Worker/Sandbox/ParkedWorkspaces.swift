import CSandbox
import Foundation
import Synchronization

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// Emptied workspaces kept for the next attempts, in `ROOT/jobs/.parked/`: the folder
/// with its empty HOME and TMPDIR, renamed into place for a new attempt instead of three
/// folders made, and at cleanup emptied and renamed back instead of removed.
///
/// Why: on ext4 without a journal every new inode first scans past the inodes freed in
/// the last half minute (and a `discard` mount trims each freed block at once), so a
/// trivial job's three folders, made and removed, were a fifth of a busy worker's CPU.
///
/// A parked workspace is only handed out once it is checked to be exactly what a new one
/// would be: the two folders real and empty, nothing else beside them, the modes a new
/// folder gets, and no extended attributes (an ACL a job set on its HOME would carry over
/// to the next job). This check runs when it is taken, so whatever a process that escaped
/// its job's group wrote there after cleanup is seen too; a workspace that fails it is
/// removed and a new one made. Parked workspaces do not outlive the worker: it removes
/// everything in `jobs/` it did not mark to keep when it starts.
enum ParkedWorkspaces {
  static let folderName = ".parked"
  static let keptFolders: Set<String> = [".home", ".tmp"]
  /// More than a worker's slots, in practice: beyond it workspaces are removed.
  static let limit = 64

  private struct Shelf {
    var next = 0
    var parked: [String] = []
  }
  /// Per jobs folder (one per worker root; tests run several in one process).
  private static let shelves = Mutex<[String: Shelf]>([:])

  /// What `mkdir(path, 0o755)` makes under this process's umask.
  static let folderMode: mode_t = 0o755 & ~processUmask()

  /// Renames a parked workspace to `path` (which must not exist) and checks it; false
  /// when none is parked or the one taken was not pristine (it is removed then).
  static func take(jobsFolder: String, into path: String) -> Bool {
    guard let parked = shelves.withLock({ $0[jobsFolder]?.parked.popLast() }) else { return false }
    guard rename(parked, path) == 0 else {
      // `path` exists (a leftover of a crash): the caller deals with it, and the parked
      // one waits for the next attempt. Otherwise it is gone (someone removed `jobs/`).
      if errno == EEXIST || errno == ENOTEMPTY { shelves.withLock { $0[jobsFolder]?.parked.append(parked) } }
      return false
    }
    if isPristine(path) { return true }
    _ = try? WorkspaceCleanup.remove(path, diskFreeAt: jobsFolder)
    return false
  }

  /// Empties a finished attempt's workspace and parks it; if it cannot be parked (full
  /// shelf, or HOME or TMPDIR is not a plain folder any more), it is removed instead.
  /// Returns the bytes freed.
  static func cleanUp(_ workspace: String, jobsFolder: String) throws(CleanupError) -> Int64 {
    let slot = shelves.withLock { shelves -> String? in
      var shelf = shelves[jobsFolder, default: Shelf()]
      guard shelf.parked.count < limit else { return nil }
      shelf.next += 1
      shelves[jobsFolder] = shelf
      return jobsFolder + "/" + folderName + "/\(shelf.next)"
    }
    guard let slot else { return try removed(workspace, jobsFolder) }
    let (freed, kept) = try WorkspaceCleanup.empty(workspace, keeping: keptFolders)
    guard kept == keptFolders else { return freed + (try removed(workspace, jobsFolder)) }
    if rename(workspace, slot) != 0 {
      guard errno == ENOENT, mkdir(jobsFolder + "/" + folderName, 0o700) == 0 || errno == EEXIST,
        rename(workspace, slot) == 0
      else { return freed + (try removed(workspace, jobsFolder)) }
    }
    shelves.withLock { $0[jobsFolder, default: Shelf()].parked.append(slot) }
    return freed
  }

  private static func removed(_ workspace: String, _ jobsFolder: String) throws(CleanupError) -> Int64 {
    try WorkspaceCleanup.remove(workspace, diskFreeAt: jobsFolder).bytesFreed
  }

  /// The workspace and its two folders are real folders of this process's user and
  /// group with a new folder's mode and no extended attributes, the folders hold
  /// nothing, and nothing else is beside them.
  static func isPristine(_ path: String) -> Bool {
    var root = stat()
    guard lstat(path, &root) == 0, isPlainFolder(root, device: root.st_dev, path: path),
      entries(of: path) == keptFolders
    else { return false }
    for name in keptFolders {
      var info = stat()
      let folder = path + "/" + name
      guard lstat(folder, &info) == 0, isPlainFolder(info, device: root.st_dev, path: folder),
        entries(of: folder)?.isEmpty == true
      else { return false }
    }
    return true
  }

  private static func isPlainFolder(_ info: stat, device: dev_t, path: String) -> Bool {
    guard (info.st_mode & S_IFMT) == S_IFDIR, info.st_dev == device, (info.st_mode & 0o7777) == folderMode,
      info.st_uid == geteuid(), info.st_gid == getegid()
    else { return false }
    // Any attribute at all (an ACL is one) disqualifies it; a filesystem without them
    // has none to carry over.
    let size = llistxattr(path, nil, 0)
    return size == 0 || (size < 0 && (errno == ENOTSUP || errno == EOPNOTSUPP))
  }

  private static func entries(of path: String) -> Set<String>? {
    (try? FileManager.default.contentsOfDirectory(atPath: path)).map(Set.init)
  }

  /// Read from `/proc` (setting and restoring it with umask(2) would race with other
  /// threads creating files); 022 where that is not available.
  private static func processUmask() -> mode_t {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
      let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Umask:") }),
      let value = mode_t(line.dropFirst(6).trimmingCharacters(in: .whitespaces), radix: 8)
    else { return 0o022 }
    return value
  }
}
