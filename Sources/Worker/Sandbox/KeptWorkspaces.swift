import Foundation
import Shared

/// Workspaces of failed jobs kept for inspection (`--keep-failed`). The deadline is a
/// marker file inside the workspace, so it survives a worker restart and the sweep
/// needs no state of its own.
public enum KeptWorkspaces {
  static let marker = ".pinpool-keep-until"

  /// Marks a workspace to be kept until `until` (seconds since 1970).
  public static func keep(_ workspace: String, until: Double) throws {
    try String(until).write(toFile: workspace + "/" + marker, atomically: true, encoding: .utf8)
  }

  public static func deadline(of workspace: String) -> Double? {
    guard let text = try? String(contentsOfFile: workspace + "/" + marker, encoding: .utf8) else {
      return nil
    }
    return Double(text.trimmingCharacters(in: .whitespacesAndNewlines))
  }

  /// Deletes kept workspaces whose time is up. When `includeUnmarked` is set (a worker
  /// starting, with nothing running yet) it also deletes workspaces an earlier run left
  /// behind when it crashed: their attempts were lost and requeued elsewhere.
  @discardableResult
  public static func sweep(jobsRoot: String, now: Double, includeUnmarked: Bool, diskFreeAt: String)
    -> [String]
  {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: jobsRoot)) ?? []
    var removed: [String] = []
    for name in names.sorted() {
      let path = jobsRoot + "/" + name
      let due: Bool
      if let deadline = deadline(of: path) {
        due = deadline <= now
      } else {
        due = includeUnmarked
      }
      guard due else { continue }
      if (try? WorkspaceCleanup.remove(path, diskFreeAt: diskFreeAt)) != nil { removed.append(name) }
    }
    return removed
  }
}
