import Foundation

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#elseif canImport(Darwin)
  import Darwin
#endif

/// Why a path a script named was refused. The description is written for the script's
/// author: it quotes what they wrote and where it would have landed.
public struct ConfinementError: Error, Sendable, Hashable, CustomStringConvertible {
  public enum Reason: Sendable, Hashable {
    case outside(resolved: String)
    case symlinkLoop
    case invalid(String)
  }
  public let path: String
  public let root: String
  public let reason: Reason

  public var description: String {
    switch reason {
    case .outside(let resolved):
      "path '\(path)' resolves to '\(resolved)', outside the workspace '\(root)'"
    case .symlinkLoop:
      "path '\(path)' passes through too many symbolic links (a loop?) in the workspace '\(root)'"
    case .invalid(let why):
      "path '\(path)' is not usable in the workspace '\(root)': \(why)"
    }
  }
}

/// Keeps every path a script names inside the job's workspace.
///
/// Paths are resolved the way the kernel would open them — component by component,
/// following each symlink that exists at that moment, with `..` applied to the real
/// directory reached so far — so a link planted inside the workspace cannot point a
/// later step outside it. Components that do not exist yet are appended as written
/// (after `.`/`..` normalisation), because scripts name files they are about to create.
///
/// This check is a guard for script-level operations (`fs.*`, `path`, `venv`, `uri`); it
/// is not a sandbox for the commands a script runs, and a link created between the check
/// and the use can still race it.
public struct Confinement: Sendable {
  /// The job workspace, absolute and canonical (symlinks resolved).
  public let root: String

  static let maxSymlinkHops = 40

  /// The root's components, taken as resolved: the folders above the workspace are the
  /// worker's, so a walk starts below them instead of checking each again for links.
  private let rootComponents: [String]

  public init(root: String) {
    let absolute = root.hasPrefix("/") ? root : FileManager.default.currentDirectoryPath + "/" + root
    if let real = realpath(absolute, nil) {
      self.init(canonicalRoot: String(cString: real))
      free(real)
    } else {
      self.init(canonicalRoot: Confinement.normalise(absolute))
    }
  }

  /// For a root already canonical (resolved once when its workspace was made): resolving
  /// it again costs a `readlink` per component, several times per job.
  init(canonicalRoot: String) {
    self.root = canonicalRoot
    self.rootComponents = canonicalRoot.split(separator: "/").map(String.init)
  }

  /// Resolves `path` (relative to `base`, itself inside the workspace, default the root)
  /// and returns the canonical absolute path, or throws if it lands outside the workspace.
  ///
  /// - Parameter followingFinalSymlink: pass `false` when the operation acts on a link
  ///   itself (removing it, or creating one at that name): the link's own location must be
  ///   inside, wherever it points.
  public func resolve(
    _ path: String, relativeTo base: String? = nil, followingFinalSymlink: Bool = true
  ) throws(ConfinementError) -> String {
    guard !path.utf8.contains(0) else {
      throw ConfinementError(path: path, root: root, reason: .invalid("it contains a NUL byte"))
    }
    var start = root
    if let base, base != root {
      start = try resolve(base)
    }
    let absolute = path.hasPrefix("/") ? path : start + "/" + path
    let resolved = try walk(absolute, original: path, followingFinalSymlink: followingFinalSymlink)
    guard contains(resolved) else {
      throw ConfinementError(path: path, root: root, reason: .outside(resolved: resolved))
    }
    return resolved
  }

  /// `resolve(_:relativeTo:followingFinalSymlink: false)`, for `fs.rm` of a link and for
  /// `fs.link` destinations.
  public func resolveWithoutFollowingFinalSymlink(
    _ path: String, relativeTo base: String? = nil
  ) throws(ConfinementError) -> String {
    try resolve(path, relativeTo: base, followingFinalSymlink: false)
  }

  /// Whether a canonical absolute path lies in the workspace (the root itself included).
  public func contains(_ canonicalPath: String) -> Bool {
    if root == "/" { return canonicalPath.hasPrefix("/") }
    return canonicalPath == root || canonicalPath.hasPrefix(root + "/")
  }

  private func walk(_ absolute: String, original: String, followingFinalSymlink: Bool)
    throws(ConfinementError) -> String
  {
    // Pending components, last one first, so a symlink's target can be pushed in front.
    var pending: [String]
    var resolved: [String] = []
    // Compared as bytes: two spellings of one name that Unicode calls equal are two
    // different folders to the kernel.
    let rest = absolute.utf8.dropFirst(root.utf8.count)
    if absolute.utf8.starts(with: root.utf8), rest.isEmpty || rest.first == UInt8(ascii: "/") {
      resolved = rootComponents
      pending = Array(String(decoding: rest, as: UTF8.self).split(separator: "/").map(String.init).reversed())
    } else {
      pending = Array(absolute.split(separator: "/").map(String.init).reversed())
    }
    var hops = 0
    while let component = pending.popLast() {
      switch component {
      case "", ".":
        continue
      case "..":
        _ = resolved.popLast()
        continue
      default:
        break
      }
      let isFinal = pending.allSatisfy { $0 == "" || $0 == "." }
      let candidate = "/" + (resolved + [component]).joined(separator: "/")
      var info = stat()
      guard lstat(candidate, &info) == 0, (info.st_mode & S_IFMT) == S_IFLNK,
        followingFinalSymlink || !isFinal
      else {
        // A missing component or anything that is not a link is taken as written.
        resolved.append(component)
        continue
      }
      hops += 1
      guard hops <= Confinement.maxSymlinkHops else {
        throw ConfinementError(path: original, root: root, reason: .symlinkLoop)
      }
      guard let target = Confinement.readLink(candidate) else {
        resolved.append(component)
        continue
      }
      if target.hasPrefix("/") { resolved = [] }
      pending.append(contentsOf: target.split(separator: "/").map(String.init).reversed())
    }
    return "/" + resolved.joined(separator: "/")
  }

  static func readLink(_ path: String) -> String? {
    var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
    let count = readlink(path, &buffer, buffer.count - 1)
    guard count >= 0 else { return nil }
    return String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
  }

  /// Lexical normalisation of an absolute path (`.`, `..`, repeated slashes).
  static func normalise(_ absolute: String) -> String {
    var parts: [Substring] = []
    for part in absolute.split(separator: "/") {
      if part == "." { continue }
      if part == ".." {
        _ = parts.popLast()
        continue
      }
      parts.append(part)
    }
    return "/" + parts.joined(separator: "/")
  }
}
