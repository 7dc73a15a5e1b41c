import Foundation
import Testing

@testable import Worker

@Suite struct CleanupTests {
  @Test func linkToOutsideFolderIsOnlyUnlinked() throws {
    let dir = try WorkerTestDirectory()
    defer { dir.remove() }
    try dir.write("canary/keep-me.txt", "keep")
    try dir.mkdir("ws/out")
    let big = [UInt8](repeating: 7, count: 3_000_000)
    #expect(FileManager.default.createFile(atPath: dir.file("ws/out/frames.raw"), contents: Data(big)))
    try dir.write("ws/app/a.txt", String(repeating: "x", count: 5000))
    try dir.symlink("ws/out/outside-link", to: dir.file("canary"))
    try dir.symlink("ws/root-link", to: "/")
    try dir.symlink("ws/dangling", to: dir.file("nowhere"))

    let report = try WorkspaceCleanup.remove(dir.file("ws"), diskFreeAt: dir.path)
    #expect(!FileManager.default.fileExists(atPath: dir.file("ws")))
    #expect(FileManager.default.fileExists(atPath: dir.file("canary/keep-me.txt")))
    #expect(report.bytesFreed >= 3_005_000)
    #expect(report.diskFreeAfter > 0)
  }

  @Test func readOnlyDirectories() throws {
    let dir = try WorkerTestDirectory()
    defer { dir.remove() }
    try dir.write("ws/locked/inner/file.txt", "data")
    try dir.write("ws/locked/file2.txt", "data")
    chmod(dir.file("ws/locked/file2.txt"), 0o400)
    chmod(dir.file("ws/locked/inner"), 0o500)
    chmod(dir.file("ws/locked"), 0o000)
    let report = try WorkspaceCleanup.remove(dir.file("ws"), diskFreeAt: dir.path)
    #expect(!FileManager.default.fileExists(atPath: dir.file("ws")))
    #expect(report.bytesFreed >= 8)
  }

  @Test func missingPathFreesNothing() throws {
    let dir = try WorkerTestDirectory()
    defer { dir.remove() }
    let report = try WorkspaceCleanup.remove(dir.file("never-made"), diskFreeAt: dir.path)
    #expect(report.bytesFreed == 0)
  }

  @Test func thePathItselfALink() throws {
    let dir = try WorkerTestDirectory()
    defer { dir.remove() }
    try dir.write("target/file.txt", "x")
    try dir.symlink("ws", to: dir.file("target"))
    _ = try WorkspaceCleanup.remove(dir.file("ws"), diskFreeAt: dir.path)
    #expect(FileManager.default.fileExists(atPath: dir.file("target/file.txt")))
    #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: dir.file("ws"))) == nil)
  }

  @Test func hardLinkElsewhereFreesNothing() throws {
    let dir = try WorkerTestDirectory()
    defer { dir.remove() }
    try dir.write("ws/big.bin", String(repeating: "z", count: 100_000))
    try FileManager.default.linkItem(atPath: dir.file("ws/big.bin"), toPath: dir.file("kept.bin"))
    let report = try WorkspaceCleanup.remove(dir.file("ws"), diskFreeAt: dir.path)
    #expect(report.bytesFreed < 100_000)
    #expect(FileManager.default.fileExists(atPath: dir.file("kept.bin")))
  }
}

@Suite struct WorkspaceTests {
  @Test func createWriteAndRecreate() throws {
    let dir = try WorkerTestDirectory()
    defer { dir.remove() }
    let ws = try Workspace.create(workerRoot: dir.path, jobID: "job42", attempt: 1)
    #expect(ws.root == dir.file("jobs/job42-1"))
    try ws.write(files: [
      (path: "install.json", mode: 0o644, data: Array("{}".utf8)),
      (path: "tools/mytool", mode: 0o755, data: Array("#!/bin/sh\necho hi\n".utf8)),
    ])
    #expect(FileManager.default.isExecutableFile(atPath: ws.root + "/tools/mytool"))
    #expect(!FileManager.default.isExecutableFile(atPath: ws.root + "/install.json"))
    #expect(FileManager.default.contents(atPath: ws.root + "/install.json") == Data("{}".utf8))

    // A second run of the same attempt starts from an empty folder.
    let again = try Workspace.create(workerRoot: dir.path, jobID: "job42", attempt: 1)
    #expect(again.root == ws.root)
    #expect(!FileManager.default.fileExists(atPath: ws.root + "/install.json"))
  }

  @Test func aJobsFolderRemovedWhileRunningIsMadeAgain() throws {
    let dir = try WorkerTestDirectory()
    defer { dir.remove() }
    _ = try Workspace.create(workerRoot: dir.path, jobID: "a", attempt: 1)
    _ = try WorkspaceCleanup.remove(dir.file("jobs"), diskFreeAt: dir.path)
    let ws = try Workspace.create(workerRoot: dir.path, jobID: "b", attempt: 1)
    #expect(ws.root == dir.file("jobs/b-1"))
    #expect(FileManager.default.fileExists(atPath: ws.root))
  }

  @Test func aWorkerRootReachedThroughALinkGivesCanonicalWorkspaces() throws {
    let dir = try WorkerTestDirectory()
    defer { dir.remove() }
    try FileManager.default.createDirectory(atPath: dir.file("real"), withIntermediateDirectories: true)
    try FileManager.default.createSymbolicLink(
      atPath: dir.file("link"), withDestinationPath: dir.file("real"))
    let ws = try Workspace.create(workerRoot: dir.file("link"), jobID: "j", attempt: 2)
    #expect(ws.root == dir.file("real/jobs/j-2"))
    #expect(ws.confinement.root == ws.root)
    // A link inside the workspace still cannot lead a script out of it, and `..` from
    // the root leaves it.
    try FileManager.default.createSymbolicLink(atPath: ws.root + "/out", withDestinationPath: dir.path)
    #expect(throws: ConfinementError.self) { try ws.confinement.resolve("out/x") }
    #expect(throws: ConfinementError.self) { try ws.confinement.resolve("../j-3/x") }
    #expect(try ws.confinement.resolve("sub/../file") == ws.root + "/file")
    #expect(try ws.confinement.resolve(ws.root + "/a/./b") == ws.root + "/a/b")
    // A path that only shares the root's text as a prefix is another folder.
    #expect(throws: ConfinementError.self) { try ws.confinement.resolve(ws.root + "x/file") }
  }

  @Test func oddJobIDsAreRefused() throws {
    let dir = try WorkerTestDirectory()
    defer { dir.remove() }
    for id in ["", "a/b", "..", "x..y", ".hidden", "../../etc"] {
      #expect(throws: WorkspaceError.self) {
        try Workspace.create(workerRoot: dir.path, jobID: id, attempt: 1)
      }
    }
  }

  @Test func bundlePathsAreConfined() throws {
    let dir = try WorkerTestDirectory()
    defer { dir.remove() }
    let ws = try Workspace.create(workerRoot: dir.path, jobID: "j", attempt: 0)
    #expect(throws: WorkspaceError.self) {
      try ws.write(files: [(path: "../../escaped.txt", mode: 0o644, data: [1])])
    }
    #expect(!FileManager.default.fileExists(atPath: dir.file("escaped.txt")))
  }
}

/// A fresh folder under the system temporary directory, canonical (symlinks resolved) so
/// paths compare equal to what the code under test resolves.
struct WorkerTestDirectory {
  let path: String

  init(function: String = #function) throws {
    let base = FileManager.default.temporaryDirectory.path
    let name = "pinpool-worker-tests-\(UUID().uuidString)"
    let url = URL(fileURLWithPath: base).appendingPathComponent(name)
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    path = url.resolvingSymlinksInPath().path
  }

  func remove() {
    // Tests make read-only folders; make everything writable again before removing.
    if let paths = FileManager.default.enumerator(atPath: path) {
      for case let relative as String in paths {
        var info = stat()
        let full = path + "/" + relative
        if lstat(full, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR { chmod(full, 0o755) }
      }
    }
    try? FileManager.default.removeItem(atPath: path)
  }

  func file(_ relative: String) -> String { path + "/" + relative }

  func write(_ relative: String, _ text: String) throws {
    let full = file(relative)
    try FileManager.default.createDirectory(
      atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
    try text.write(toFile: full, atomically: false, encoding: .utf8)
  }

  func writeExecutable(_ relative: String, _ text: String) throws {
    try write(relative, text)
    chmod(file(relative), 0o755)
  }

  func mkdir(_ relative: String) throws {
    try FileManager.default.createDirectory(atPath: file(relative), withIntermediateDirectories: true)
  }

  func symlink(_ relative: String, to target: String) throws {
    try FileManager.default.createSymbolicLink(atPath: file(relative), withDestinationPath: target)
  }
}
