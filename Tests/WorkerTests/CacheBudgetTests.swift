import Foundation
import Testing

@testable import Worker

struct CacheBudgetTests {
  @Test func leastRecentlyModifiedEntriesGoFirst() throws {
    let root = FileManager.default.temporaryDirectory.appendingPathComponent(
      "cache-budget-\(UUID().uuidString)"
    ).path
    defer { try? FileManager.default.removeItem(atPath: root) }
    // Three entries of 100 KB under two tools, with distinct modification times.
    let entries = [("uv", "old", 1_000.0), ("pip", "middle", 2_000.0), ("uv", "new", 3_000.0)]
    for (tool, name, time) in entries {
      let dir = root + "/\(tool)/\(name)"
      try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
      try Data(count: 100_000).write(to: URL(fileURLWithPath: dir + "/blob"))
      try FileManager.default.setAttributes(
        [.modificationDate: Date(timeIntervalSince1970: time)], ofItemAtPath: dir)
    }
    let (freed, remaining) = CacheBudget.enforce(cacheRoot: root, budget: 150_000)
    #expect(freed == 200_000)
    #expect(remaining == 100_000)
    #expect(!FileManager.default.fileExists(atPath: root + "/uv/old"))
    #expect(!FileManager.default.fileExists(atPath: root + "/pip/middle"))
    #expect(FileManager.default.fileExists(atPath: root + "/uv/new/blob"))
    let again = CacheBudget.enforce(cacheRoot: root, budget: 150_000)
    #expect(again.freed == 0)
    #expect(again.remaining == 100_000)
  }

  @Test func aSymlinkInTheCacheIsRemovedNotFollowed() throws {
    let root = FileManager.default.temporaryDirectory.appendingPathComponent(
      "cache-link-\(UUID().uuidString)"
    ).path
    let outside = root + "-outside"
    defer {
      try? FileManager.default.removeItem(atPath: root)
      try? FileManager.default.removeItem(atPath: outside)
    }
    try FileManager.default.createDirectory(atPath: outside, withIntermediateDirectories: true)
    try Data(count: 500_000).write(to: URL(fileURLWithPath: outside + "/precious"))
    try FileManager.default.createDirectory(atPath: root + "/hf", withIntermediateDirectories: true)
    try FileManager.default.createSymbolicLink(atPath: root + "/hf/link", withDestinationPath: outside)
    try Data(count: 10).write(to: URL(fileURLWithPath: root + "/hf/small"))
    CacheBudget.enforce(cacheRoot: root, budget: 0)
    #expect(FileManager.default.fileExists(atPath: outside + "/precious"))
    #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: root + "/hf/link")) == nil)
  }
}
