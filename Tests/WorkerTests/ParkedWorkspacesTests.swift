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

  /// A used workspace, cleaned up: the path it is parked at.
  private func parkedWorkspace(_ dir: WorkerTestDirectory) throws -> String {
    let used = try usedWorkspace(dir, job: "a")
    _ = try ParkedWorkspaces.cleanUp(used.root, jobsFolder: dir.file("jobs"))
    let shelf = dir.file("jobs/" + ParkedWorkspaces.folderName)
    return shelf + "/" + (try #require(entries(shelf).first))
  }

  @Test func aCleanedWorkspaceIsEmptiedAndTheNextAttemptGetsIt() throws {
    let dir = try WorkerTestDirectory()
    defer { dir.remove() }
    let first = try usedWorkspace(dir, job: "a")
    let folder = inode(first.root)
    let freed = try ParkedWorkspaces.cleanUp(first.root, jobsFolder: dir.file("jobs"))
    #expect(freed >= 4096 + 3 + 3)
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
  @Test(arguments: ["planted file", "mode", "attribute", "extra folder", "extra files"])
  func aParkedWorkspaceChangedSinceIsNotReused(_ change: String) throws {
    let dir = try WorkerTestDirectory()
    defer { dir.remove() }
    let parked = try parkedWorkspace(dir)
    let parkedName = (parked as NSString).lastPathComponent
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
    case "extra folder":
      #expect(mkdir(parked + "/left", 0o755) == 0)
    default:
      // A few small files would be spares for the next bundle; more than that many is
      // not what a cleanup leaves.
      for i in 0..<ParkedWorkspaces.spareLimit {
        try dir.write("jobs/\(ParkedWorkspaces.folderName)/\(parkedName)/left\(i).txt", "x")
      }
    }
    // A new folder: only a reused one comes with HOME and TMPDIR. (Its inode number may
    // well be the removed one's, which ext4 hands out again at once.)
    let next = try Workspace.create(workerRoot: dir.path, jobID: "b", attempt: 1)
    #expect(entries(next.root).isEmpty)
    #expect(!FileManager.default.fileExists(atPath: parked))
  }

  /// A taken workspace's HOME and TMPDIR are read again at cleanup only if they changed
  /// since the take: what the job put there is removed, an untouched one is kept as is.
  @Test func whatAJobPutInATakenWorkspaceIsRemovedAtCleanup() throws {
    let dir = try WorkerTestDirectory()
    defer { dir.remove() }
    _ = try parkedWorkspace(dir)
    let taken = try Workspace.create(workerRoot: dir.path, jobID: "b", attempt: 1)
    #expect(taken.reused)
    try dir.write("jobs/b-1/.home/.cache/pip/blob", String(repeating: "x", count: 4096))
    let freed = try ParkedWorkspaces.cleanUp(taken.root, jobsFolder: dir.file("jobs"))
    #expect(freed >= 4096)
    let next = try Workspace.create(workerRoot: dir.path, jobID: "c", attempt: 1)
    #expect(next.reused)
    #expect(entries(next.root + "/.home").isEmpty)
    #expect(entries(next.root + "/.tmp").isEmpty)
  }

  /// The change time is only a shortcut: a change it missed (made within the same clock
  /// tick as the take's check, simulated here by handing cleanup the folder's time after
  /// the change) leaves the file in the parked workspace, and the next take's own check
  /// refuses it, so nothing reaches the next job.
  @Test func aChangeTheShortcutMissedIsCaughtAtTheNextTake() throws {
    let dir = try WorkerTestDirectory()
    defer { dir.remove() }
    let ws = try usedWorkspace(dir, job: "a")
    try dir.write("jobs/a-1/.home/.bashrc", "left behind")
    try dir.write("jobs/a-1/.home/.cache/pip/blob", "x")
    var home = stat()
    #expect(lstat(ws.root + "/.home", &home) == 0)
    _ = try WorkspaceCleanup.empty(
      ws.root, keeping: ParkedWorkspaces.keptFolders, unchanged: [".home": home.st_ctim])
    #expect(entries(ws.root + "/.home") == [".bashrc", ".cache"], "the shortcut kept it unread")
    #expect(entries(ws.root + "/.tmp").isEmpty, "the other folder, not named, was emptied")
    #expect(entries(ws.root).isSuperset(of: [".home", ".tmp"]))
    let shelf = dir.file("jobs/" + ParkedWorkspaces.folderName)
    #expect(mkdir(shelf, 0o700) == 0)
    #expect(rename(ws.root, shelf + "/99") == 0)
    #expect(ParkedWorkspaces.pristine(shelf + "/99") == nil)
  }

  private func contents(_ path: String) -> String? {
    FileManager.default.contents(atPath: path).map { String(decoding: $0, as: UTF8.self) }
  }

  /// A parked workspace keeps its small top-level files; the next bundle's files of the
  /// same names are written over them, and the others go first.
  @Test func theNextBundleIsWrittenIntoTheSpareFiles() throws {
    let dir = try WorkerTestDirectory()
    defer { dir.remove() }
    let first = try usedWorkspace(dir, job: "a")
    let file = inode(first.root + "/pinokio.json")
    _ = try ParkedWorkspaces.cleanUp(first.root, jobsFolder: dir.file("jobs"))
    let shelf = dir.file("jobs/" + ParkedWorkspaces.folderName)
    let parked = shelf + "/" + (try #require(entries(shelf).first))
    #expect(entries(parked) == [".home", ".tmp", "pinokio.json"])
    #expect(contents(parked + "/pinokio.json") == "{}", "kept as it was, to be written over")

    let same = try Workspace.create(
      workerRoot: dir.path, jobID: "b", attempt: 1,
      files: [("pinokio.json", 0o755, Array("{\"run\":[]}".utf8)), ("lib", 0o644, Array("l".utf8))])
    #expect(entries(same.root) == [".home", ".tmp", "pinokio.json", "lib"])
    #expect(inode(same.root + "/pinokio.json") == file)
    #expect(contents(same.root + "/pinokio.json") == "{\"run\":[]}")
    var info = stat()
    #expect(lstat(same.root + "/pinokio.json", &info) == 0 && info.st_mode & 0o777 == 0o755)
    _ = try ParkedWorkspaces.cleanUp(same.root, jobsFolder: dir.file("jobs"))

    // Other names: the spares go, even the one named where this bundle needs a folder.
    let other = try Workspace.create(
      workerRoot: dir.path, jobID: "c", attempt: 1,
      files: [("start.json", 0o644, Array("s".utf8)), ("lib/x.js", 0o644, Array("x".utf8))])
    #expect(entries(other.root) == [".home", ".tmp", "start.json", "lib"])
    #expect(contents(other.root + "/start.json") == "s")
    #expect(contents(other.root + "/lib/x.js") == "x")
    _ = try ParkedWorkspaces.cleanUp(other.root, jobsFolder: dir.file("jobs"))

    // No bundle: the spare goes, and the workspace is as new.
    let bare = try Workspace.create(workerRoot: dir.path, jobID: "d", attempt: 1)
    #expect(entries(bare.root) == [".home", ".tmp"])
  }

  /// A spare file changed after parking (linked from elsewhere, grown large, given an
  /// attribute, replaced by a link), or a file whose name is not UTF-8 beside it, keeps
  /// the workspace from being reused.
  @Test(arguments: ["linked", "large", "attribute", "link", "undecodable"])
  func aChangedSpareFileIsNotReused(_ change: String) throws {
    let dir = try WorkerTestDirectory()
    defer { dir.remove() }
    let parked = try parkedWorkspace(dir)
    let parkedName = (parked as NSString).lastPathComponent
    let spare = parked + "/pinokio.json"
    #expect(contents(spare) == "{}")
    try dir.write("outside/secret.txt", "secret")
    switch change {
    case "linked":
      #expect(link(spare, dir.file("outside/peek.json")) == 0)
    case "large":
      try dir.write(
        "jobs/\(ParkedWorkspaces.folderName)/\(parkedName)/pinokio.json",
        String(repeating: "x", count: 65 << 10))
    case "attribute":
      let value = Array("x".utf8)
      guard setxattr(spare, "user.pinpool-test", value, value.count, 0) == 0 else { return }
    case "undecodable":
      let name = Array((parked + "/f").utf8CString.dropLast()) + [CChar(bitPattern: 0xFF), 0]
      let fd = open(name, O_WRONLY | O_CREAT | O_EXCL, 0o644)
      #expect(fd >= 0)
      close(fd)
    default:
      #expect(unlink(spare) == 0)
      try dir.symlink(
        "jobs/\(ParkedWorkspaces.folderName)/\(parkedName)/pinokio.json", to: dir.file("outside/secret.txt"))
    }
    let next = try Workspace.create(
      workerRoot: dir.path, jobID: "b", attempt: 1, files: [("pinokio.json", 0o644, Array("next".utf8))])
    #expect(entries(next.root) == ["pinokio.json"], "a new folder, not the parked one")
    #expect(contents(dir.file("outside/secret.txt")) == "secret")
    if change == "linked" { #expect(contents(dir.file("outside/peek.json")) == "{}") }
  }

  /// What a job (or a process that escaped it) left in a spare is written over and cut
  /// to the new bundle's length: nothing of it reaches the next job.
  @Test func whatASpareHeldIsGoneWhenTheNextJobStarts() throws {
    let dir = try WorkerTestDirectory()
    defer { dir.remove() }
    let first = try usedWorkspace(dir, job: "a")
    try dir.write("jobs/a-1/pinokio.json", "a longer script the first job rewrote")
    _ = try ParkedWorkspaces.cleanUp(first.root, jobsFolder: dir.file("jobs"))
    let next = try Workspace.create(
      workerRoot: dir.path, jobID: "b", attempt: 1, files: [("pinokio.json", 0o644, Array("next".utf8))])
    #expect(entries(next.root) == [".home", ".tmp", "pinokio.json"], "the parked one, reused")
    #expect(contents(next.root + "/pinokio.json") == "next")
    #expect(next.reused && !first.reused)
  }

  /// A spare of the new file's length and mode (an array's next job) is written over
  /// without a cut or a mode change; what the job left in it is still gone, and a spare
  /// a job made private gets the bundle's mode back.
  @Test func aSpareOfTheSameLengthIsWrittenOver() throws {
    let dir = try WorkerTestDirectory()
    defer { dir.remove() }
    let first = try usedWorkspace(dir, job: "a")
    try dir.write("jobs/a-1/pinokio.json", "XY")
    _ = try ParkedWorkspaces.cleanUp(first.root, jobsFolder: dir.file("jobs"))
    let next = try Workspace.create(
      workerRoot: dir.path, jobID: "b", attempt: 1, files: [("pinokio.json", 0o644, Array("{}".utf8))])
    #expect(next.reused)
    #expect(contents(next.root + "/pinokio.json") == "{}")
    #expect(chmod(next.root + "/pinokio.json", 0o600) == 0)
    _ = try ParkedWorkspaces.cleanUp(next.root, jobsFolder: dir.file("jobs"))
    let third = try Workspace.create(
      workerRoot: dir.path, jobID: "c", attempt: 1, files: [("pinokio.json", 0o644, Array("{}".utf8))])
    #expect(third.reused)
    var info = stat()
    #expect(lstat(third.root + "/pinokio.json", &info) == 0 && info.st_mode & 0o777 == 0o644)
    #expect(contents(third.root + "/pinokio.json") == "{}")
  }

  /// Only small files linked nowhere else are kept: a file the job linked in from
  /// elsewhere is only unlinked (never to be written over), and a large one is removed.
  @Test func linkedAndLargeFilesAreNotKept() throws {
    let dir = try WorkerTestDirectory()
    defer { dir.remove() }
    let ws = try usedWorkspace(dir, job: "a")
    try dir.write("outside/data.txt", "precious")
    #expect(link(dir.file("outside/data.txt"), ws.root + "/data.txt") == 0)
    try dir.write("jobs/a-1/model.bin", String(repeating: "m", count: 1 << 20))
    let freed = try ParkedWorkspaces.cleanUp(ws.root, jobsFolder: dir.file("jobs"))
    #expect(freed >= 1 << 20)
    let shelf = dir.file("jobs/" + ParkedWorkspaces.folderName)
    let parked = shelf + "/" + (try #require(entries(shelf).first))
    #expect(entries(parked) == [".home", ".tmp", "pinokio.json"])
    #expect(contents(dir.file("outside/data.txt")) == "precious")
    let next = try Workspace.create(workerRoot: dir.path, jobID: "b", attempt: 1)
    #expect(entries(next.root) == [".home", ".tmp"])
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
