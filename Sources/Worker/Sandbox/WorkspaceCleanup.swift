import Foundation

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#elseif canImport(Darwin)
  import Darwin
#endif

public struct CleanupReport: Sendable, Codable, Hashable {
  /// Apparent sizes (`st_size`) of the regular files and symlinks removed, plus the
  /// allocated size of the directories. Apparent size is what a person expects a file to
  /// weigh and stays meaningful on compressing filesystems, where allocated blocks of a
  /// file of zeros can be nearly nothing; the disk may therefore gain less than this.
  /// A file with other hard links outside the tree frees nothing and is not counted.
  public var bytesFreed: Int64
  public var diskFreeAfter: Int64

  public init(bytesFreed: Int64, diskFreeAfter: Int64) {
    self.bytesFreed = bytesFreed
    self.diskFreeAfter = diskFreeAfter
  }
}

public struct CleanupError: Error, Sendable, CustomStringConvertible {
  public let path: String
  /// What could not be removed, with the reason, up to a handful of entries.
  public let failures: [String]
  /// Bytes freed before giving up, so the caller can still report progress.
  public let bytesFreed: Int64

  public var description: String {
    let more = failures.count > 1 ? " (and \(failures.count - 1) more)" : ""
    return "could not fully remove '\(path)': \(failures.first ?? "unknown error")\(more)"
  }
}

/// Deletes a workspace without ever following a symbolic link: a job may leave a link to
/// `/` or to the user's data, and only the link may go. The walk works on directory file
/// descriptors (`openat`/`unlinkat` with `O_NOFOLLOW`), so a name that is a link is
/// unlinked, never opened. Directories the job made read-only are made `u+rwx` first so
/// their contents can go; nothing on another filesystem mounted inside is descended into.
///
/// It is meant to run after the job's processes are gone; a process still writing during
/// the walk can make it fail (reported), not escape it.
public enum WorkspaceCleanup {
  public static func remove(_ path: String, diskFreeAt: String) throws(CleanupError) -> CleanupReport {
    guard let entry = try locate(path) else {
      return CleanupReport(bytesFreed: 0, diskFreeAfter: HostProbe.diskFree(at: diskFreeAt))
    }
    defer { close(entry.parentFD) }
    var walker = Walker()
    walker.device = entry.info.st_dev
    walker.removeEntry(parentFD: entry.parentFD, name: entry.name, displayPath: entry.displayPath)
    if !walker.failures.isEmpty {
      throw CleanupError(path: path, failures: walker.failures, bytesFreed: walker.bytesFreed)
    }
    return CleanupReport(bytesFreed: walker.bytesFreed, diskFreeAfter: HostProbe.diskFree(at: diskFreeAt))
  }

  /// Removes everything inside the folder `path` but the folders named in `keeping`,
  /// which are emptied and left in place when they are real directories on the same
  /// filesystem (anything else of that name goes like the rest), and up to `spares.count`
  /// of its files that `spares.isSpare` accepts (given their `lstat` and the folder's
  /// device), left as they are. Returns the bytes freed and the folders kept; nothing is
  /// ever followed through a link.
  ///
  /// `unchanged`: change times of folders in `keeping` known to have been empty then; one
  /// whose change time is the same has had nothing added, and is kept without being read.
  static func empty(
    _ path: String, keeping: Set<String>, unchanged: [String: timespec] = [:],
    spares: (count: Int, isSpare: @Sendable (stat, dev_t) -> Bool) = (0, { _, _ in false })
  ) throws(CleanupError) -> (bytesFreed: Int64, kept: Set<String>) {
    guard let entry = try locate(path), (entry.info.st_mode & S_IFMT) == S_IFDIR else {
      throw CleanupError(path: path, failures: ["it is not a folder (any more)"], bytesFreed: 0)
    }
    defer { close(entry.parentFD) }
    var walker = Walker()
    walker.device = entry.info.st_dev
    walker.spares = spares.count
    walker.isSpare = spares.isSpare
    walker.unchanged = unchanged
    let kept = walker.removeContents(
      parentFD: entry.parentFD, name: entry.name, info: entry.info, displayPath: entry.displayPath,
      keeping: keeping)
    if !walker.failures.isEmpty {
      throw CleanupError(path: path, failures: walker.failures, bytesFreed: walker.bytesFreed)
    }
    return (walker.bytesFreed, kept ?? [])
  }

  /// The folder holding `path`, open (the caller closes it), with `path`'s name in it and
  /// its `lstat`; nil when either does not exist.
  private static func locate(_ path: String) throws(CleanupError) -> (
    parentFD: Int32, name: [CChar], displayPath: String, info: stat
  )? {
    let trimmed = path.count > 1 && path.hasSuffix("/") ? String(path.dropLast()) : path
    let parent = (trimmed as NSString).deletingLastPathComponent
    let name = (trimmed as NSString).lastPathComponent
    guard !name.isEmpty, name != ".", name != "..", name != "/" else {
      throw CleanupError(
        path: path, failures: ["refusing to remove a path that names no entry"], bytesFreed: 0)
    }
    let parentFD = open(parent.isEmpty ? "." : parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    if parentFD < 0 {
      if errno == ENOENT { return nil }
      throw CleanupError(
        path: path, failures: ["cannot open '\(parent)': \(String(cString: strerror(errno)))"], bytesFreed: 0)
    }
    var info = stat()
    if fstatat(parentFD, name, &info, AT_SYMLINK_NOFOLLOW) != 0 {
      let error = errno
      close(parentFD)
      if error == ENOENT { return nil }
      throw CleanupError(
        path: path, failures: ["cannot examine it: \(String(cString: strerror(error)))"], bytesFreed: 0)
    }
    return (parentFD, Array(name.utf8CString), trimmed, info)
  }

  private struct Walker {
    var bytesFreed: Int64 = 0
    var failures: [String] = []
    var device: dev_t = 0
    /// How many more files of the folder being emptied may be kept as spares, and which.
    var spares = 0
    var isSpare: (stat, dev_t) -> Bool = { _, _ in false }
    /// Of the folder being emptied only, like `spares` (see `empty`).
    var unchanged: [String: timespec] = [:]

    /// The entries of an open directory but `.` and `..`, NUL-terminated; nil (and a
    /// failure noted) when it cannot be read. `fd` stays open and owned by the caller (it
    /// is read through a duplicate).
    mutating func names(inDirectory fd: Int32, displayPath: String) -> [[CChar]]? {
      let copy = dup(fd)
      // fdopendir takes ownership of the copy; closedir closes it.
      guard copy >= 0, let directory = fdopendir(copy) else {
        fail(displayPath, "cannot read directory")
        if copy >= 0 { close(copy) }
        return nil
      }
      defer { closedir(directory) }
      var names: [[CChar]] = []
      while let entry = readdir(directory) {
        let child: [CChar] = withUnsafeBytes(of: entry.pointee.d_name) { raw in
          raw.prefix { $0 != 0 }.map { CChar(bitPattern: $0) }
        }
        if child != [46] && child != [46, 46] { names.append(child + [0]) }
      }
      return names
    }

    /// Removes what the directory `name` in `parentFD` holds (`info` is its `lstat`),
    /// made u+rwx first: reading a directory needs r-x and removing its entries -wx, and
    /// a job may have taken either away. Directories named in `keeping` (real ones on
    /// this filesystem) are emptied the same way and left in place. Returns the names
    /// kept, or nil (noted as a failure) when the directory could not be opened or read.
    mutating func removeContents(
      parentFD: Int32, name: [CChar], info: stat, displayPath: String, keeping: Set<String> = []
    ) -> Set<String>? {
      if (info.st_mode & 0o700) != 0o700 {
        _ = fchmodat(parentFD, name, (info.st_mode & 0o7777) | 0o700, 0)
      }
      let fd = openat(parentFD, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
      guard fd >= 0 else {
        fail(displayPath, "cannot open directory")
        return nil
      }
      defer { close(fd) }
      guard let children = names(inDirectory: fd, displayPath: displayPath) else { return nil }
      // Only the folder being emptied keeps spares, not those inside it.
      var spares = self.spares
      self.spares = 0
      let unchanged = self.unchanged
      self.unchanged = [:]
      var kept: Set<String> = []
      for child in children {
        let childName = String(decoding: child.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let childPath = displayPath + "/" + childName
        var childInfo = stat()
        if keeping.contains(childName), fstatat(fd, child, &childInfo, AT_SYMLINK_NOFOLLOW) == 0,
          (childInfo.st_mode & S_IFMT) == S_IFDIR, childInfo.st_dev == device,
          unchanged[childName].map({ Self.same($0, childInfo.st_ctim) }) == true
            || removeContents(parentFD: fd, name: child, info: childInfo, displayPath: childPath) != nil
        {
          kept.insert(childName)
          continue
        }
        if spares > 0, fstatat(fd, child, &childInfo, AT_SYMLINK_NOFOLLOW) == 0, isSpare(childInfo, device) {
          spares -= 1
          continue
        }
        removeEntry(parentFD: fd, name: child, displayPath: childPath)
      }
      return kept
    }

    static func same(_ a: timespec, _ b: timespec) -> Bool { a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec }

    mutating func fail(_ path: String, _ what: String) {
      if failures.count < 20 { failures.append("\(path): \(what): \(String(cString: strerror(errno)))") }
    }

    /// `name` is kept as the raw bytes readdir gave, NUL-terminated: a file name that is
    /// not valid UTF-8 must still be removable.
    mutating func removeEntry(parentFD: Int32, name: [CChar], displayPath: String) {
      var info = stat()
      guard fstatat(parentFD, name, &info, AT_SYMLINK_NOFOLLOW) == 0 else {
        if errno != ENOENT { fail(displayPath, "cannot examine") }
        return
      }
      if (info.st_mode & S_IFMT) != S_IFDIR {
        guard unlinkat(parentFD, name, 0) == 0 else {
          if errno != ENOENT { fail(displayPath, "cannot remove") }
          return
        }
        // Only the last link frees the data.
        if info.st_nlink <= 1 { bytesFreed += Int64(info.st_size) }
        return
      }
      guard info.st_dev == device else {
        errno = EXDEV
        fail(displayPath, "another filesystem is mounted here; left in place")
        return
      }
      guard removeContents(parentFD: parentFD, name: name, info: info, displayPath: displayPath) != nil else {
        return
      }
      guard unlinkat(parentFD, name, AT_REMOVEDIR) == 0 else {
        if errno != ENOENT { fail(displayPath, "cannot remove directory") }
        return
      }
      bytesFreed += Int64(info.st_blocks) * 512
    }
  }
}
