import CSandbox
import Foundation
import Testing

@testable import Worker

@Suite struct ParkedWorkspacesTests {
  private func inode(_ path: String) -> UInt64? {
    var info = stat()
    return lstat(path, &info) == 0 ? UInt64(info.st_ino) : nil
  }

  private func entries(_ path: String) -> Set<String> {
    Set((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? [])
  }

  /// A workspace as a job leaves it: HOME and TMPDIR (made as `JobEnvironment` makes
  /// them), the bundle, and whatever the job wrote.
  private func usedWorkspace(_ dir: WorkerTestDirectory, job: String) throws -> Workspace {
    let ws = try Workspace.create(workerRoot: dir.path, jobID: job, attempt: 1)
    for folder in [".home", ".tmp"] { #expect(mkdir(ws.root + "/" + folder, 0o755) == 0) }
    try ws.write(files: [(path: "pinokio.json", mode: 0o644, data: Array("{}".utf8))])
    try dir.write("jobs/\(job)-1/.home/.cache/pip/blob", String(repeating: "x", count: 4096))
    try dir.write("jobs/\(job)-1/.tmp/scratch", "tmp")
    try dir.write("jobs/\(job)-1/app/out.txt", "out")
    return ws
  }

  @Test func aCleanedWorkspaceIsEmptiedAndTheNextAttemptGetsIt() throws {
    let dir = try WorkerTestDirectory()
    defer { dir.remove() }
    let first = try usedWorkspace(dir, job: "a")
    let folder = inode(first.root)
    let freed = try ParkedWorkspaces.cleanUp(first.root, jobsFolder: dir.file("jobs"))
    #expect(freed >= 4096 + 3 + 3 + 2)
    #expect(!FileManager.default.fileExists(atPath: first.root))
    #expect(entries(dir.file("jobs")) == [ParkedWorkspaces.folderName])

    let next = try Workspace.create(workerRoot: dir.path, jobID: "b", attempt: 1)
    #expect(inode(next.root) == folder)
    #expect(entries(next.root) == [".home", ".tmp"])
    #expect(entries(next.root + "/.home").isEmpty)
    #expect(entries(next.root + "/.tmp").isEmpty)
    #expect(entries(dir.file("jobs/" + ParkedWorkspaces.folderName)).isEmpty)
  }

  /// Whatever reaches a parked workspace after cleanup (a process that escaped its job)
  /// keeps it from being reused: the next attempt gets a new folder.
  @Test(arguments: ["planted file", "mode", "attribute", "extra entry"])
  func aParkedWorkspaceChangedSinceIsNotReused(_ change: String) throws {
    let dir = try WorkerTestDirectory()
    defer { dir.remove() }
    let first = try usedWorkspace(dir, job: "a")
    _ = try ParkedWorkspaces.cleanUp(first.root, jobsFolder: dir.file("jobs"))
    let parkedName = try #require(entries(dir.file("jobs/" + ParkedWorkspaces.folderName)).first)
    let parked = dir.file("jobs/" + ParkedWorkspaces.folderName + "/" + parkedName)
    switch change {
    case "planted file":
      try dir.write("jobs/\(ParkedWorkspaces.folderName)/\(parkedName)/.home/.bashrc", "evil")
    case "mode":
      #expect(chmod(parked + "/.home", 0o777) == 0)
    case "attribute":
      let value = Array("x".utf8)
      guard setxattr(parked + "/.home", "user.pinpool-test", value, value.count, 0) == 0 else {
        return  // this filesystem keeps no user attributes; nothing to carry over
      }
    default:
      try dir.write("jobs/\(ParkedWorkspaces.folderName)/\(parkedName)/left.txt", "x")
    }
    // A new folder: only a reused one comes with HOME and TMPDIR. (Its inode number may
    // well be the removed one's, which ext4 hands out again at once.)
    let next = try Workspace.create(workerRoot: dir.path, jobID: "b", attempt: 1)
    #expect(entries(next.root).isEmpty)
    #expect(!FileManager.default.fileExists(atPath: parked))
  }

  /// A job that made its folders read-only or unreadable still has its workspace
  /// emptied; such a workspace is then not what a new one is, so it is not reused.
  @Test func foldersAJobLockedAreEmptiedAndNotReused() throws {
    let dir = try WorkerTestDirectory()
    defer { dir.remove() }
    let ws = try usedWorkspace(dir, job: "a")
    #expect(chmod(ws.root + "/.home", 0o500) == 0)
    #expect(chmod(ws.root + "/.tmp", 0o000) == 0)
    #expect(chmod(ws.root, 0o555) == 0)
    let freed = try ParkedWorkspaces.cleanUp(ws.root, jobsFolder: dir.file("jobs"))
    #expect(freed >= 4096)
    #expect(!FileManager.default.fileExists(atPath: ws.root))
    let next = try Workspace.create(workerRoot: dir.path, jobID: "b", attempt: 1)
    #expect(entries(next.root).isEmpty)
  }

  /// HOME replaced by a link is not a folder to keep: the workspace is removed (the link
  /// only unlinked), not parked.
  @Test func aWorkspaceWhoseHomeIsALinkIsRemoved() throws {
    let dir = try WorkerTestDirectory()
    defer { dir.remove() }
    let ws = try usedWorkspace(dir, job: "a")
    try dir.write("outside/keep.txt", "keep")
    _ = try WorkspaceCleanup.remove(ws.root + "/.home", diskFreeAt: dir.path)
    try dir.symlink("jobs/a-1/.home", to: dir.file("outside"))
    _ = try ParkedWorkspaces.cleanUp(ws.root, jobsFolder: dir.file("jobs"))
    #expect(!FileManager.default.fileExists(atPath: ws.root))
    #expect(entries(dir.file("jobs/" + ParkedWorkspaces.folderName)).isEmpty)
    #expect(FileManager.default.fileExists(atPath: dir.file("outside/keep.txt")))
  }

  /// A second attempt of a job whose folder an earlier run left keeps the parked
  /// workspace for later and starts from a new, empty folder.
  @Test func aLeftoverFolderOfTheSameNameIsReplacedAndTheParkedOneKept() throws {
    let dir = try WorkerTestDirectory()
    defer { dir.remove() }
    let first = try usedWorkspace(dir, job: "a")
    _ = try ParkedWorkspaces.cleanUp(first.root, jobsFolder: dir.file("jobs"))
    try dir.write("jobs/b-1/leftover.txt", "from a crash")
    let next = try Workspace.create(workerRoot: dir.path, jobID: "b", attempt: 1)
    #expect(entries(next.root).isEmpty)
    #expect(entries(dir.file("jobs/" + ParkedWorkspaces.folderName)).count == 1)
  }
}
