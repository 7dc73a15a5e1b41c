import Foundation

/// Keeps `ROOT/cache` within a size budget (`--cache-budget`) by deleting the least
/// recently used entries. An entry is one child of a tool's cache folder
/// (`cache/uv/wheels-v5`, `cache/hf/hub/...` is counted under `cache/hf/hub`), and
/// "recently used" is its modification time, which the tools bump when they add to
/// it; access times are unreliable under `relatime`. Venvs built from the uv cache hold
/// hard links, so evicting an entry never breaks a venv that exists.
public enum CacheBudget {
  struct Entry {
    var path: String
    var bytes: Int64
    var modified: Double
  }

  /// Returns the bytes freed, and the cache's size after.
  @discardableResult
  public static func enforce(cacheRoot: String, budget: Int64) -> (freed: Int64, remaining: Int64) {
    var entries: [Entry] = []
    for tool in (try? FileManager.default.contentsOfDirectory(atPath: cacheRoot)) ?? [] {
      let toolPath = cacheRoot + "/" + tool
      for child in (try? FileManager.default.contentsOfDirectory(atPath: toolPath)) ?? [] {
        let path = toolPath + "/" + child
        var info = stat()
        guard lstat(path, &info) == 0 else { continue }
        entries.append(
          Entry(path: path, bytes: size(of: path), modified: Double(info.st_mtim.tv_sec)))
      }
    }
    var total = entries.reduce(Int64(0)) { $0 + $1.bytes }
    var freed: Int64 = 0
    for entry in entries.sorted(by: { $0.modified < $1.modified }) where total > budget {
      guard (try? WorkspaceCleanup.remove(entry.path, diskFreeAt: cacheRoot)) != nil else { continue }
      total -= entry.bytes
      freed += entry.bytes
    }
    return (freed, total)
  }

  /// Apparent size of a tree, without following symlinks.
  static func size(of path: String) -> Int64 {
    var info = stat()
    guard lstat(path, &info) == 0 else { return 0 }
    if (info.st_mode & S_IFMT) != S_IFDIR { return Int64(info.st_size) }
    var total: Int64 = 0
    for child in (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? [] {
      total += size(of: path + "/" + child)
    }
    return total
  }
}
