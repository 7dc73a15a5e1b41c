import Foundation
import Shared

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#elseif canImport(Darwin)
  import Darwin
#endif

/// One file to upload: its name (the path relative to the workspace), where to read it,
/// and what it weighs and hashes to.
public struct ArtifactFile: Sendable, Hashable {
  public var name: String
  /// Absolute and canonical, inside the workspace.
  public var path: String
  public var size: Int64
  public var sha256: String
  public init(name: String, path: String, size: Int64, sha256: String) {
    self.name = name
    self.path = path
    self.size = size
    self.sha256 = sha256
  }
}

/// Finds the files a job's `artifacts` globs name in its workspace.
///
/// Globs are relative to the workspace: `*`, `?` and `[...]` match within one path
/// component (a leading dot included), `**` any number of folders. A glob that names a
/// folder takes every file below it. The walk never follows a symbolic link to a folder;
/// a link to a file is taken only when it resolves (symlinks included) to a regular file
/// inside the workspace, so no artifact can carry a file from outside it.
public enum ArtifactCollector {
  public struct Match: Sendable, Hashable {
    public var name: String
    public var path: String
  }

  /// The matching files, by name, and what was refused or matched nothing (for the log).
  public static func match(globs: [String], workspace: String) -> (matches: [Match], warnings: [String]) {
    let confinement = Confinement(root: workspace)
    var found: [String: String] = [:]
    var warnings: [String] = []
    for glob in globs {
      if let problem = ArtifactGlob.problem(glob) {
        warnings.append("artifact glob '\(glob)' is refused: \(problem)")
        continue
      }
      let segments = glob.split(separator: "/").map(String.init).filter { $0 != "." }
      var walker = Walker(confinement: confinement)
      walker.walk(relative: "", segments: segments[...])
      warnings += walker.warnings
      if walker.found.isEmpty {
        warnings.append("artifact glob '\(glob)' matched no file")
      }
      for (name, path) in walker.found where found[name] == nil {
        if let problem = ArtifactName.problem(name) {
          warnings.append("artifact '\(name)' is refused: \(problem)")
          continue
        }
        found[name] = path
      }
    }
    return (found.sorted { $0.key < $1.key }.map { Match(name: $0.key, path: $0.value) }, warnings)
  }

  /// `match`, then each file's size and SHA-256 (a file that cannot be read is a warning).
  public static func collect(globs: [String], workspace: String) -> (
    files: [ArtifactFile], warnings: [String]
  ) {
    var (matches, warnings) = match(globs: globs, workspace: workspace)
    var files: [ArtifactFile] = []
    for match in matches {
      do {
        let digest = try FileDigest.sha256(path: match.path, noFollow: true)
        files.append(
          ArtifactFile(name: match.name, path: match.path, size: digest.size, sha256: digest.sha256))
      } catch {
        warnings.append("artifact '\(match.name)' cannot be read: \(error.detail)")
      }
    }
    return (files, warnings)
  }

  private struct Walker {
    let confinement: Confinement
    var found: [String: String] = [:]
    var warnings: [String] = []

    init(confinement: Confinement) { self.confinement = confinement }

    private func absolute(_ relative: String) -> String {
      relative.isEmpty ? confinement.root : confinement.root + "/" + relative
    }

    private func join(_ relative: String, _ name: String) -> String {
      relative.isEmpty ? name : relative + "/" + name
    }

    private enum Kind { case file, directory, link, other, missing }

    private func kind(_ path: String) -> Kind {
      var info = stat()
      guard lstat(path, &info) == 0 else { return .missing }
      switch info.st_mode & S_IFMT {
      case S_IFREG: return .file
      case S_IFDIR: return .directory
      case S_IFLNK: return .link
      default: return .other
      }
    }

    private func entries(_ relative: String) -> [String] {
      let names = ((try? FileManager.default.contentsOfDirectory(atPath: absolute(relative))) ?? []).sorted()
      // The worker's own marker of a kept workspace is not the job's output.
      return relative.isEmpty ? names.filter { $0 != KeptWorkspaces.marker } : names
    }

    mutating func walk(relative: String, segments: ArraySlice<String>) {
      guard let segment = segments.first else { return }
      let rest = segments.dropFirst()
      if segment == "**" {
        if rest.isEmpty {
          takeAll(relative)
          return
        }
        walk(relative: relative, segments: rest)
        for entry in entries(relative) where kind(absolute(join(relative, entry))) == .directory {
          walk(relative: join(relative, entry), segments: segments)
        }
        return
      }
      let candidates: [String]
      if segment.contains(where: { "*?[".contains($0) }) {
        candidates = entries(relative).filter { fnmatch(segment, $0, 0) == 0 }
      } else {
        candidates = relative.isEmpty && segment == KeptWorkspaces.marker ? [] : [segment]
      }
      for entry in candidates {
        let name = join(relative, entry)
        switch kind(absolute(name)) {
        case .directory:
          if rest.isEmpty { takeAll(name) } else { walk(relative: name, segments: rest) }
        case .file:
          if rest.isEmpty { found[name] = absolute(name) }
        case .link:
          if rest.isEmpty { takeLink(name) }
        case .other, .missing:
          continue
        }
      }
    }

    /// Every file below a folder (the folder itself may be the workspace).
    private mutating func takeAll(_ relative: String) {
      for entry in entries(relative) {
        let name = join(relative, entry)
        switch kind(absolute(name)) {
        case .directory: takeAll(name)
        case .file: found[name] = absolute(name)
        case .link: takeLink(name)
        case .other, .missing: continue
        }
      }
    }

    private mutating func takeLink(_ name: String) {
      do {
        let resolved = try confinement.resolve(name)
        guard kind(resolved) == .file else {
          warnings.append(
            "artifact '\(name)' is a symbolic link to something other than a file; not uploaded")
          return
        }
        found[name] = resolved
      } catch {
        warnings.append("artifact '\(name)' is not uploaded: \(error.description)")
      }
    }
  }
}
