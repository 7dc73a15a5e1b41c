import Foundation
import Shared

/// Reads a BUNDLE argument: one script file, shipped alone, or a folder, shipped whole.
struct LoadedBundle {
  var bundle: JobBundle
  var entry: String
  var script: Script
  var name: String
}

enum BundleLoader {
  static let defaultEntries = ["install.json", "install.js", "pinokio.json"]
  static let maxBytes = 64 * 1024 * 1024
  /// Folders never worth shipping: version control and local environments.
  static let skipped: Set<String> = [".git", "node_modules", ".venv", "__pycache__"]

  static func load(_ path: String, entry: String?) throws -> LoadedBundle {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
      throw CLIError("no such file or folder: \(path)")
    }
    var files: [JobBundle.File] = []
    let entryPath: String
    let name: String
    if isDirectory.boolValue {
      let root = URL(fileURLWithPath: path).standardizedFileURL.path
      var total = 0
      try collect(root: root, relative: "", into: &files, total: &total)
      name = URL(fileURLWithPath: root).lastPathComponent
      if let entry {
        guard files.contains(where: { $0.path == entry }) else {
          throw CLIError("--entry \(entry): no such file in \(path)")
        }
        entryPath = entry
      } else {
        guard
          let found = defaultEntries.first(where: { candidate in
            guard let file = files.first(where: { $0.path == candidate }) else { return false }
            return (try? Script.load(text: String(decoding: file.data, as: UTF8.self), file: candidate))
              != nil
          })
        else { throw CLIError(BundleError.noEntry(folder: path).description) }
        entryPath = found
      }
    } else {
      guard let data = FileManager.default.contents(atPath: path) else {
        throw CLIError("cannot read \(path)")
      }
      guard data.count <= maxBytes else {
        throw CLIError(BundleError.tooLarge(path: path, bytes: data.count, limit: maxBytes).description)
      }
      let base = URL(fileURLWithPath: path).lastPathComponent
      files = [JobBundle.File(path: base, mode: 0o644, data: data)]
      entryPath = base
      name = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
    }
    let entryData = files.first { $0.path == entryPath }!.data
    let script: Script
    do {
      script = try Script.load(text: String(decoding: entryData, as: UTF8.self), file: entryPath)
    } catch {
      throw CLIError(error.description)
    }
    return LoadedBundle(bundle: JobBundle(files: files), entry: entryPath, script: script, name: name)
  }

  private static func collect(
    root: String, relative: String, into files: inout [JobBundle.File], total: inout Int
  )
    throws
  {
    let folder = relative.isEmpty ? root : root + "/" + relative
    let names: [String]
    do {
      names = try FileManager.default.contentsOfDirectory(atPath: folder).sorted()
    } catch {
      throw CLIError(BundleError.unreadable(path: folder, reason: error.localizedDescription).description)
    }
    for name in names where !skipped.contains(name) {
      let rel = relative.isEmpty ? name : relative + "/" + name
      let full = root + "/" + rel
      var info = stat()
      guard lstat(full, &info) == 0 else { continue }
      switch info.st_mode & S_IFMT {
      case S_IFDIR:
        try collect(root: root, relative: rel, into: &files, total: &total)
      case S_IFREG:
        guard let data = FileManager.default.contents(atPath: full) else {
          throw CLIError(BundleError.unreadable(path: full, reason: "permission denied").description)
        }
        total += data.count
        guard total <= maxBytes else {
          throw CLIError(BundleError.tooLarge(path: root, bytes: total, limit: maxBytes).description)
        }
        files.append(JobBundle.File(path: rel, mode: UInt16(info.st_mode & 0o777), data: data))
      default:
        // Symlinks and devices are not shipped: they would point into the submitter's machine.
        continue
      }
    }
  }
}
