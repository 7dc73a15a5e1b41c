import Foundation
import Synchronization
import Testing

@testable import Worker

@Suite struct ShellProcessTests {
  typealias Line = (stream: LineStream, text: String)

  /// Lines seen, plus the process group id once the command printed `PGID <n>`.
  final class Recorder: Sendable {
    let lines = Mutex<[String]>([])
    let pgid = Mutex<Int32>(0)
    let pgidSeen = ShellLatch<Void>()

    func record(_ stream: LineStream, _ line: String) {
      lines.withLock { $0.append("\(stream.rawValue): \(line)") }
      if line.hasPrefix("PGID "), let value = Int32(line.dropFirst(5)) {
        pgid.withLock { $0 = value }
        pgidSeen.signal()
      }
    }
    var all: [String] { lines.withLock { $0 } }
    var group: Int32 { pgid.withLock { $0 } }

    /// Safety net for failing tests: nothing this test started may survive it.
    func killGroup() {
      let group = self.group
      if group > 1 { kill(-group, SIGKILL) }
    }
  }

  func options(_ launcher: ShellLauncher, _ base: ShellOptions = ShellOptions()) -> ShellOptions {
    var options = base
    options.launcher = launcher
    return options
  }

  func request(_ command: String, cwd: String = "/", env: [String: String] = ["PATH": "/usr/bin:/bin"])
    -> ShellCommandRequest
  {
    ShellCommandRequest(command: command, workingDirectory: cwd, environment: env)
  }

  @Test(arguments: ShellLauncher.allCases) func linesInOrderAndExitCode(launcher: ShellLauncher) async throws
  {
    let recorder = Recorder()
    let outcome = try await ShellProcess.run(
      request("for i in 1 2 3 4 5 6 7 8 9 10; do echo line$i; done; echo oops >&2; exit 3"),
      options: options(launcher)
    ) { stream, raw in
      let line = raw.text
      recorder.record(stream, line)
      return .continue_
    }
    guard case .exited(let code) = outcome else {
      Issue.record("unexpected outcome \(outcome)")
      return
    }
    #expect(code == 3)
    #expect(recorder.all.filter { $0.hasPrefix("stdout") } == (1...10).map { "stdout: line\($0)" })
    #expect(recorder.all.contains("stderr: oops"))
  }

  @Test(arguments: ShellLauncher.allCases) func environmentAndDirectoryAreExactlyTheRequest(
    launcher: ShellLauncher
  ) async throws {
    let dir = try WorkerTestDirectory()
    defer { dir.remove() }
    let recorder = Recorder()
    _ = try await ShellProcess.run(
      request("pwd; echo \"[$FOO][$HOME]\"", cwd: dir.path, env: ["PATH": "/usr/bin:/bin", "FOO": "bar"]),
      options: options(launcher)
    ) { stream, raw in
      let line = raw.text
      recorder.record(stream, line)
      return .continue_
    }
    #expect(recorder.all == ["stdout: \(dir.path)", "stdout: [bar][]"])
  }

  @Test func partialLastLineCarriageReturnsAndLongLines() async throws {
    let recorder = Recorder()
    _ = try await ShellProcess.run(
      request("printf 'a\\r\\nb\\rc\\n'; head -c 200000 /dev/zero | tr '\\0' 'x'; echo; printf 'tail'")
    ) { stream, raw in
      let line = raw.text
      recorder.record(stream, line)
      return .continue_
    }
    let lines = recorder.all
    #expect(Array(lines.prefix(3)) == ["stdout: a", "stdout: b", "stdout: c"])
    let long = lines.dropFirst(3).dropLast()
    #expect(long.count == 4)
    let marker = ShellOptions.lineContinuationMarker
    #expect(
      long.dropLast().allSatisfy { $0 == "stdout: " + String(repeating: "x", count: 64 * 1024) + marker })
    #expect(long.last == "stdout: " + String(repeating: "x", count: 200_000 - 3 * 64 * 1024))
    #expect(lines.last == "stdout: tail")
  }

  @Test(arguments: ShellLauncher.allCases) func detachLeavesItRunningUntilTerminated(launcher: ShellLauncher)
    async throws
  {
    let recorder = Recorder()
    defer { recorder.killGroup() }
    let outcome = try await ShellProcess.run(
      request("echo PGID $$; echo ready; sleep 600"), options: options(launcher)
    ) { stream, raw in
      let line = raw.text
      recorder.record(stream, line)
      return line == "ready" ? .detach : .continue_
    }
    guard case .detached(let process) = outcome else {
      Issue.record("unexpected outcome \(outcome)")
      return
    }
    #expect(process.processGroupID == recorder.group)
    #expect(ShellProcessGroups.hasLiveMembers(recorder.group))
    #expect(!process.hasExited)
    let ended = await process.terminate(grace: .seconds(5))
    guard case .signalled(let signal) = ended else {
      Issue.record("unexpected end \(ended)")
      return
    }
    #expect(signal == SIGTERM)
    #expect(!ShellProcessGroups.hasLiveMembers(recorder.group))
  }

  /// What the child gets from the worker: only stdin (`/dev/null`), stdout and stderr,
  /// whatever else the worker holds open; and every signal at its default, though the
  /// worker ignores SIGPIPE (an ignored signal survives `exec`).
  @Test(arguments: ShellLauncher.allCases) func theChildGetsThreeDescriptorsAndDefaultSignals(
    launcher: ShellLauncher
  ) async throws {
    let previous = signal(SIGPIPE, SIG_IGN)
    defer { signal(SIGPIPE, previous) }
    // Open without close-on-exec, as a careless library in the worker might.
    let stray = open("/dev/zero", O_RDONLY)
    defer { close(stray) }
    #expect(stray > 2)
    let recorder = Recorder()
    let outcome = try await ShellProcess.run(
      request("ls /proc/self/fd; readlink /proc/self/fd/0; yes | head -1; echo \"status ${PIPESTATUS[0]}\""),
      options: options(launcher)
    ) { stream, raw in
      recorder.record(stream, raw.text)
      return .continue_
    }
    guard case .exited(code: 0) = outcome else {
      Issue.record("unexpected outcome \(outcome)")
      return
    }
    // `ls` sees its own directory descriptor as 3; nothing past it.
    #expect(
      recorder.all == [
        "stdout: 0", "stdout: 1", "stdout: 2", "stdout: 3", "stdout: /dev/null", "stdout: y",
        "stdout: status 141",
      ])
  }

  @Test(arguments: ShellLauncher.allCases) func aProgramStartedDirectlyEndsWithItsStatusAndSignal(
    launcher: ShellLauncher
  ) async throws {
    // No shell syntax: started without bash (`DirectCommand`), and reaped by whichever path.
    let exited = try await ShellProcess.run(request("false"), options: options(launcher)) { _, _ in .continue_
    }
    guard case .exited(code: 1) = exited else {
      Issue.record("unexpected outcome \(exited)")
      return
    }
    let killed = try await ShellProcess.run(
      request("sh -c \"kill -TERM \\$\\$\""), options: options(launcher)
    ) {
      _, _ in .continue_
    }
    guard case .signalled(SIGTERM) = killed else {
      Issue.record("unexpected outcome \(killed)")
      return
    }
    let missing = try await ShellProcess.run(request("no-such-program-here"), options: options(launcher)) {
      _, _ in .continue_
    }
    guard case .exited(code: 127) = missing else {
      Issue.record("unexpected outcome \(missing)")
      return
    }
  }

  @Test func theDirectLauncherIsTakenWhereTheCLibraryHasWhatItNeeds() throws {
    // glibc 2.36 or later, on Linux 5.3 or later (this machine, and CI's).
    let needed = [
      "posix_spawn_file_actions_addchdir_np", "posix_spawn_file_actions_addclosefrom_np", "pidfd_open",
    ]
    guard needed.allSatisfy({ dlsym(UnsafeMutableRawPointer(bitPattern: 0), $0) != nil }),
      ProcessInfo.processInfo.environment["PINPOOL_SPAWN"] == nil
    else { return }
    #expect(ShellSpawn.available != nil)
  }

  @Test func killVerdictEndsTheGroupAndSucceeds() async throws {
    let recorder = Recorder()
    defer { recorder.killGroup() }
    let outcome = try await ShellProcess.run(request("echo PGID $$; sleep 600 & echo start; sleep 600")) {
      stream, raw in
      let line = raw.text
      recorder.record(stream, line)
      return line == "start" ? .kill : .continue_
    }
    guard case .killedByHandler = outcome else {
      Issue.record("unexpected outcome \(outcome)")
      return
    }
    #expect(!ShellProcessGroups.hasLiveMembers(recorder.group))
  }

  @Test func failVerdictEndsTheGroupAndFails() async throws {
    let recorder = Recorder()
    defer { recorder.killGroup() }
    let start = ContinuousClock.now
    let outcome = try await ShellProcess.run(
      request(
        "echo PGID $$; echo C08-BEFORE-BREAK && echo 'FATAL: CUDA out of memory' && sleep 30 && echo C08-NEVER-1"
      )
    ) { stream, raw in
      let line = raw.text
      recorder.record(stream, line)
      return line.contains("out of memory") ? .fail("matched /out of memory/i") : .continue_
    }
    guard case .failedByHandler(let reason) = outcome else {
      Issue.record("unexpected outcome \(outcome)")
      return
    }
    #expect(reason.contains("out of memory"))
    // Bounded, not tight: the point is that it does not hang.
    #expect(ContinuousClock.now - start < .seconds(60))
    #expect(!recorder.all.contains { $0.contains("C08-NEVER") })
    #expect(!ShellProcessGroups.hasLiveMembers(recorder.group))
  }

  @Test(arguments: ShellLauncher.allCases) func cancellationKillsTheWholeGroup(launcher: ShellLauncher)
    async throws
  {
    let recorder = Recorder()
    defer { recorder.killGroup() }
    let task = Task {
      try await ShellProcess.run(
        request("echo PGID $$; sh -c 'sleep 600 & sleep 600; echo C11-NEVER'"), options: options(launcher)
      ) {
        stream, raw in
        let line = raw.text
        recorder.record(stream, line)
        return .continue_
      }
    }
    await recorder.pgidSeen.wait()
    #expect(ShellProcessGroups.hasLiveMembers(recorder.group))
    task.cancel()
    let outcome = try await task.value
    guard case .cancelled = outcome else {
      Issue.record("unexpected outcome \(outcome)")
      return
    }
    #expect(!ShellProcessGroups.hasLiveMembers(recorder.group))
    #expect(kill(-recorder.group, 0) != 0 || !ShellProcessGroups.hasLiveMembers(recorder.group))
    #expect(!recorder.all.contains { $0.contains("C11-NEVER") })
  }

  @Test(arguments: ShellLauncher.allCases) func termIgnoredIsKilledAfterGrace(launcher: ShellLauncher)
    async throws
  {
    let recorder = Recorder()
    defer { recorder.killGroup() }
    let options = options(launcher, ShellOptions(terminationGrace: .milliseconds(300)))
    let task = Task {
      try await ShellProcess.run(
        request("trap '' TERM; echo PGID $$; sleep 600; sleep 600"), options: options
      ) {
        stream, raw in
        let line = raw.text
        recorder.record(stream, line)
        return .continue_
      }
    }
    await recorder.pgidSeen.wait()
    task.cancel()
    let outcome = try await task.value
    guard case .cancelled = outcome else {
      Issue.record("unexpected outcome \(outcome)")
      return
    }
    #expect(!ShellProcessGroups.hasLiveMembers(recorder.group))
  }

  @Test(arguments: ShellLauncher.allCases) func backgroundGrandchildDoesNotHangTheStep(
    launcher: ShellLauncher
  ) async throws {
    let recorder = Recorder()
    defer { recorder.killGroup() }
    let start = ContinuousClock.now
    // One leftover holds stdout open, the other closed its output.
    let outcome = try await ShellProcess.run(
      request("echo PGID $$; sleep 600 & (sleep 600 >/dev/null 2>&1 &); echo done"),
      options: options(launcher)
    ) { stream, raw in
      let line = raw.text
      recorder.record(stream, line)
      return .continue_
    }
    guard case .exited(code: 0) = outcome else {
      Issue.record("unexpected outcome \(outcome)")
      return
    }
    // Bounded, not tight: a loaded CI machine reaps slowly.
    #expect(ContinuousClock.now - start < .seconds(30))
    #expect(recorder.all.last == "stdout: done")
    #expect(!ShellProcessGroups.hasLiveMembers(recorder.group))
  }

  @Test func pidJournalAndLeftovers() async throws {
    let dir = try WorkerTestDirectory()
    defer { dir.remove() }
    let pids = dir.file("pids")
    try FileManager.default.createDirectory(atPath: pids, withIntermediateDirectories: true)
    let journal = ShellPidJournal(directory: pids)
    let recorder = Recorder()
    defer { recorder.killGroup() }
    _ = try await ShellProcess.run(request("echo PGID $$"), options: ShellOptions(pidJournal: journal)) {
      stream, raw in
      let line = raw.text
      recorder.record(stream, line)
      return .continue_
    }
    // Recorded while running, marked reaped once reaped: nothing is left to kill.
    let written = try String(contentsOfFile: journal.path, encoding: .utf8)
    #expect(written.hasPrefix("+ \(recorder.group) \(ShellPidJournal.bootID) echo PGID $$\n"))
    #expect(written.hasSuffix("- \(recorder.group)\n"))
    #expect(ShellPidJournal.journalRecords(Data(written.utf8)).isEmpty)

    // A worker that crashed left a detached server behind.
    let server = Recorder()
    defer { server.killGroup() }
    let outcome = try await ShellProcess.run(request("echo PGID $$; sleep 600")) { stream, raw in
      let line = raw.text
      server.record(stream, line)
      return line.hasPrefix("PGID") ? .detach : .continue_
    }
    guard case .detached(let process) = outcome else {
      Issue.record("unexpected outcome \(outcome)")
      return
    }
    journal.started(pgid: server.group, command: "sleep 600")
    // What a worker before the journal wrote: a file per group, this one from an
    // earlier boot (its number belongs to someone else now).
    try "boot=some-earlier-boot\n".write(toFile: pids + "/999999", atomically: true, encoding: .utf8)
    #expect(ShellPidJournal.killLeftovers(directory: pids) == [server.group])
    #expect((try? FileManager.default.contentsOfDirectory(atPath: pids)) == [ShellPidJournal.fileName])
    #expect(FileManager.default.contents(atPath: journal.path)?.isEmpty == true)
    guard case .signalled(let signal) = await process.wait() else {
      Issue.record("the leftover was not killed")
      return
    }
    #expect(signal == SIGKILL)
    #expect(!ShellProcessGroups.hasLiveMembers(server.group))
  }

  @Test func pidFilesOfAnOlderWorkerFromThisBootAreKilled() async throws {
    let dir = try WorkerTestDirectory()
    defer { dir.remove() }
    let pids = dir.file("pids")
    try FileManager.default.createDirectory(atPath: pids, withIntermediateDirectories: true)
    let server = Recorder()
    defer { server.killGroup() }
    let outcome = try await ShellProcess.run(request("echo PGID $$; sleep 600")) { stream, raw in
      server.record(stream, raw.text)
      return raw.text.hasPrefix("PGID") ? .detach : .continue_
    }
    guard case .detached(let process) = outcome else {
      Issue.record("unexpected outcome \(outcome)")
      return
    }
    try "boot=\(ShellPidJournal.bootID)\ncommand=sleep 600\n".write(
      toFile: pids + "/\(server.group)", atomically: true, encoding: .utf8)
    #expect(ShellPidJournal.killLeftovers(directory: pids) == [server.group])
    #expect((try? FileManager.default.contentsOfDirectory(atPath: pids)) == [])
    guard case .signalled = await process.wait() else {
      Issue.record("the leftover was not killed")
      return
    }
  }

  @Test func pidJournalIsCompactedToItsLiveGroups() throws {
    let dir = try WorkerTestDirectory()
    defer { dir.remove() }
    let journal = ShellPidJournal(directory: dir.path, compactionBytes: 256)
    journal.started(pgid: 4242, command: "serve --port 1\nwith a newline")
    for pgid in Int32(5000)..<5200 {
      journal.started(pgid: pgid, command: "echo \(pgid)")
      journal.ended(pgid: pgid)
    }
    // Ended twice, or never started: nothing to write.
    journal.ended(pgid: 5000)
    journal.ended(pgid: 7)
    let data = try #require(FileManager.default.contents(atPath: journal.path))
    #expect(data.count < 256 + 200)
    let live = ShellPidJournal.journalRecords(data)
    #expect(live.map(\.pgid) == [4242])
    #expect(live.first?.boot == ShellPidJournal.bootID)
    let text = String(decoding: data, as: UTF8.self)
    #expect(text.contains("serve --port 1 with a newline"))
  }

  @Test func pidJournalReadsPastTornAndForeignLines() {
    let text = """
      + 100 boot-a sleep 1
      + 101 boot-a sleep 2
      - 100
      garbage line
      + 1 boot-a init is never ours
      + x boot-a not a number
      + 100 boot-b reused after reboot
      - 101
      + 102 boot-a torn
      """
    let live = ShellPidJournal.journalRecords(Data(text.utf8))
    #expect(live.map(\.pgid) == [100, 102])
    #expect(live.map(\.boot) == ["boot-b", "boot-a"])
  }

  @Test(arguments: ShellLauncher.allCases) func missingDirectoryIsALaunchError(launcher: ShellLauncher)
    async throws
  {
    do {
      _ = try await ShellProcess.run(request("true", cwd: "/does/not/exist"), options: options(launcher)) {
        _, _ in .continue_
      }
      Issue.record("expected a launch failure")
    } catch {
      #expect(error.description.contains("/does/not/exist"))
    }
  }
}
