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
/// would be: the two folders real and empty, nothing beside them but a few small spare
/// files linked nowhere else (`Workspace.create` writes the next bundle's files of the
/// same names over them and removes the rest before the job starts), the modes a new
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
  /// Top-level files of a finished attempt kept for the next bundle's files of the same
  /// names to be written over (`Workspace.create`): most bundles are a script or two, and
  /// an array's jobs share theirs. Larger files are removed, so the disk is freed.
  static let spareLimit = 4
  static let spareBytes: Int64 = 64 << 10

  private struct Shelf {
    var next = 0
    var parked: [String] = []
    /// By the path it was taken to: the change times of a workspace's HOME and TMPDIR
    /// when the take found them empty. At cleanup a folder whose change time is still the
    /// same had nothing added since, and is not read again. (Only a shortcut: whatever a
    /// change in the same clock tick hid is seen by the check of the next take, which
    /// trusts no time.)
    var untouched: [String: [String: timespec]] = [:]
  }
  /// Per jobs folder (one per worker root; tests run several in one process).
  private static let shelves = Mutex<[String: Shelf]>([:])

  /// What `mkdir(path, 0o755)` makes under this process's umask.
  static let folderMode: mode_t = 0o755 & ~processUmask()

  /// Renames a parked workspace to `path` (which must not exist) and checks it; returns
  /// the names of its spare files, or nil when none is parked or the one taken was not
  /// pristine (it is removed then).
  static func take(jobsFolder: String, into path: String) -> [String]? {
    guard let parked = shelves.withLock({ $0[jobsFolder]?.parked.popLast() }) else { return nil }
    guard rename(parked, path) == 0 else {
      // `path` exists (a leftover of a crash): the caller deals with it, and the parked
      // one waits for the next attempt. Otherwise it is gone (someone removed `jobs/`).
      if errno == EEXIST || errno == ENOTEMPTY { shelves.withLock { $0[jobsFolder]?.parked.append(parked) } }
      return nil
    }
    if let (spares, changed) = pristine(path) {
      shelves.withLock { shelves in
        // Bounded: an attempt kept for inspection (`--keep-failed`) is never cleaned up here.
        if shelves[jobsFolder, default: Shelf()].untouched.count >= 4 * limit {
          shelves[jobsFolder]!.untouched.removeAll()
        }
        shelves[jobsFolder]!.untouched[path] = changed
      }
      return spares
    }
    _ = try? WorkspaceCleanup.remove(path, diskFreeAt: jobsFolder)
    return nil
  }

  /// Empties a finished attempt's workspace and parks it; if it cannot be parked (full
  /// shelf, or HOME or TMPDIR is not a plain folder any more), it is removed instead.
  /// Returns the bytes freed.
  static func cleanUp(_ workspace: String, jobsFolder: String) throws(CleanupError) -> Int64 {
    let (slot, untouched) = shelves.withLock { shelves -> (String?, [String: timespec]) in
      var shelf = shelves[jobsFolder, default: Shelf()]
      let untouched = shelf.untouched.removeValue(forKey: workspace) ?? [:]
      guard shelf.parked.count < limit else {
        shelves[jobsFolder] = shelf
        return (nil, untouched)
      }
      shelf.next += 1
      shelves[jobsFolder] = shelf
      return (jobsFolder + "/" + folderName + "/\(shelf.next)", untouched)
    }
    guard let slot else { return try removed(workspace, jobsFolder) }
    let (freed, kept) = try WorkspaceCleanup.empty(
      workspace, keeping: keptFolders, unchanged: untouched, spares: (spareLimit, isSpare))
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

  /// The names of the workspace's spare files, and the change times of its two folders,
  /// when it is pristine: it and its two folders are real folders of this process's user
  /// and group with a new folder's mode, the folders hold nothing, and beside them there
  /// are only spares, each a small, writable regular file of this user with no other link
  /// (its content is written over before any job runs); and nothing carries extended
  /// attributes. Nil when it is not.
  static func pristine(_ path: String) -> (spares: [String], changed: [String: timespec])? {
    var root = stat()
    guard lstat(path, &root) == 0, isPlainFolder(root, device: root.st_dev, path: path),
      let names = entries(of: path), keptFolders.isSubset(of: names)
    else { return nil }
    var changed: [String: timespec] = [:]
    for name in keptFolders {
      var info = stat()
      let folder = path + "/" + name
      guard lstat(folder, &info) == 0, isPlainFolder(info, device: root.st_dev, path: folder),
        entries(of: folder)?.isEmpty == true
      else { return nil }
      changed[name] = info.st_ctim
    }
    let spares = names.subtracting(keptFolders).sorted()
    guard spares.count <= spareLimit else { return nil }
    for name in spares {
      var info = stat()
      let file = path + "/" + name
      guard lstat(file, &info) == 0, isSpare(info, device: root.st_dev), hasNoAttributes(file) else {
        return nil
      }
    }
    return (spares, changed)
  }

  /// A file that may stay in a parked workspace, for the next bundle's file of its name
  /// to be written over: the one test for keeping it at cleanup and for taking it. A
  /// regular file on the workspace's filesystem, small, writable and this user's, with no
  /// other link (a file a job linked in from elsewhere must never be written over).
  static func isSpare(_ info: stat, device: dev_t) -> Bool {
    (info.st_mode & S_IFMT) == S_IFREG && info.st_dev == device && info.st_nlink == 1
      && Int64(info.st_size) <= spareBytes && (info.st_mode & 0o200) != 0 && isOurs(info)
  }

  private static func isPlainFolder(_ info: stat, device: dev_t, path: String) -> Bool {
    (info.st_mode & S_IFMT) == S_IFDIR && info.st_dev == device && (info.st_mode & 0o7777) == folderMode
      && isOurs(info) && hasNoAttributes(path)
  }

  private static let user = (uid: geteuid(), gid: getegid())

  private static func isOurs(_ info: stat) -> Bool { info.st_uid == user.uid && info.st_gid == user.gid }

  /// Any attribute at all (an ACL is one) disqualifies an entry; a filesystem without
  /// them has none to carry over.
  private static func hasNoAttributes(_ path: String) -> Bool {
    let size = llistxattr(path, nil, 0)
    return size == 0 || (size < 0 && (errno == ENOTSUP || errno == EOPNOTSUPP))
  }

  /// With readdir(3): FileManager's listing was 2.6% of a busy worker, three per job.
  /// A name that is not UTF-8 makes it nil, so the workspace is not reused.
  private static func entries(of path: String) -> Set<String>? {
    guard let directory = opendir(path) else { return nil }
    defer { closedir(directory) }
    var names = Set<String>()
    errno = 0
    while let entry = readdir(directory) {
      let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
        String(validating: raw.prefix { $0 != 0 }, as: UTF8.self)
      }
      guard let name else { return nil }
      if name != "." && name != ".." { names.insert(name) }
    }
    return errno == 0 ? names : nil
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
