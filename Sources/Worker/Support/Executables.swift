import Foundation

/// Finds a program by name in a list of folders, as a shell's PATH lookup does: the
/// first executable regular file wins. Used for the worker's own tools and for a job's
/// `which()` and runtime tools, so all agree on what "on PATH" means.
enum Executables {
  static func find(_ name: String, in directories: [String]) -> String? {
    guard !name.isEmpty, !name.contains("/") else { return nil }
    for directory in directories where !directory.isEmpty {
      let candidate = directory + "/" + name
      if access(candidate, X_OK) == 0 {
        var info = stat()
        if stat(candidate, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG { return candidate }
      }
    }
    return nil
  }
}
