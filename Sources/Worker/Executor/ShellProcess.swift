import CSandbox
import Foundation
import Shared
import Subprocess
import Synchronization

#if canImport(System)
  import System
#else
  import SystemPackage
#endif
#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#elseif canImport(Darwin)
  import Darwin
#endif

public struct ShellCommandRequest: Sendable {
  public var command: String
  public var workingDirectory: String
  public var environment: [String: String]

  public init(command: String, workingDirectory: String, environment: [String: String]) {
    self.command = command
    self.workingDirectory = workingDirectory
    self.environment = environment
  }
}

public enum LineStream: String, Sendable, Codable {
  case stdout, stderr
}

/// One line of a process's output, without its terminator. It points into the reader's
/// buffer and is valid only during the call that hands it over: a chatty job prints
/// millions of lines, and most are copied once, into the log, and never become a String.
public struct ShellLine {
  public let bytes: UnsafeBufferPointer<UInt8>
  /// When it was read (seconds since 1970): the lines of one read share the time.
  public let time: Double
  public init(bytes: UnsafeBufferPointer<UInt8>, time: Double) {
    self.bytes = bytes
    self.time = time
  }
  /// The text, invalid UTF-8 replaced.
  public var text: String { String(decoding: bytes, as: UTF8.self) }
}

/// What a `shell.run` step's `on` handlers decide about one line of output.
public enum LineVerdict: Sendable, Equatable {
  case continue_
  /// `done: true`: the step finishes now; the process keeps running until the job ends.
  case detach
  /// `kill: true`: end the process group; the step succeeds.
  case kill
  /// `break: true`: end the process group; the step fails with this reason.
  case fail(String)
}

public enum ShellOutcome: Sendable {
  case exited(code: Int32)
  case signalled(Int32)
  /// The step finished on a `detach` verdict; the process runs on. Keep the handle and
  /// stop it when the job ends.
  case detached(DetachedProcess)
  case killedByHandler
  case failedByHandler(String)
  case cancelled
}

public struct ShellOptions: Sendable {
  /// Between SIGTERM and SIGKILL when a process group is stopped (cancel, kill, break).
  public var terminationGrace: Duration = .seconds(10)
  /// How long output is still read after the shell exits while something it left
  /// behind holds the pipes open; then the rest of the group is killed.
  public var drainAfterExit: Duration = .milliseconds(200)
  /// Where each process group id is recorded while it lives, for
  /// `ShellPidJournal.killLeftovers`.
  public var pidJournal: ShellPidJournal? = nil
  /// A longer line of output is delivered as several lines of at most this many bytes
  /// of it, each but the last ending with `lineContinuationMarker`
  /// (the worker's `--max-log-line`).
  public var maxLineBytes: Int = 64 * 1024
  /// Ends every piece of a split long line that the next piece continues. Removing it
  /// and concatenating the pieces gives back the original line.
  public static let lineContinuationMarker = " [pinpool: line continues]"
  /// How commands are started: `ShellSpawn` where the C library allows, else (and in
  /// tests that cover both) swift-subprocess.
  var launcher: ShellLauncher = .direct

  public init(
    terminationGrace: Duration = .seconds(10), drainAfterExit: Duration = .milliseconds(200),
    pidJournal: ShellPidJournal? = nil, maxLineBytes: Int = 64 * 1024
  ) {
    self.terminationGrace = terminationGrace
    self.drainAfterExit = drainAfterExit
    self.pidJournal = pidJournal
    self.maxLineBytes = max(16, maxLineBytes)
  }
}

enum ShellLauncher: Sendable, CaseIterable {
  case direct, subprocess
}

public struct ShellProcessError: Error, Sendable, CustomStringConvertible {
  public let description: String
  public init(_ description: String) { self.description = description }
}

/// Runs one command line of a `shell.run` step under `bash -c` (or `sh -c` where bash is
/// missing) in a session and process group of its own, so that everything the command
/// starts can be signalled together. A line bash would only split and exec is started
/// directly (`DirectCommand`). The reader thread starts it (`ShellSpawn`) and watches
/// its exit with its output; swift-subprocess does both where the C library cannot.
///
/// Output: stdout and stderr are read on one dedicated thread, line by line as produced
/// (`\n`, `\r\n` and a lone `\r` — progress bars — end a line; a line longer than
/// `maxLineBytes` is delivered as several, each but the last ending with
/// `ShellOptions.lineContinuationMarker`; a partial last line is delivered at EOF).
/// `onLine` is called on that thread, never concurrently with itself, in order per
/// stream; a slow `onLine` slows the process down rather than buffering without bound.
/// For every outcome except `.detached`, all output has been delivered when `run`
/// returns.
///
/// Verdicts: the first verdict other than `continue_` decides; later verdicts are
/// ignored, but lines keep being delivered (the output a killed process prints while it
/// stops, and everything a detached process prints until the job ends, still belongs in
/// the job's log).
///
/// Leftovers: a command ends when its shell exits, not when its pipes close. A
/// background process it left (`server &`) may hold stdout open forever, so after the
/// shell exits output is read for `drainAfterExit` more and then the rest of the group
/// is killed with SIGKILL; a step's leftover background processes never outlive it
/// (a step that means to leave a server running uses a `done` handler instead).
///
/// Cancellation of the calling task sends SIGTERM to the group, waits up to
/// `terminationGrace`, then SIGKILLs it, and returns `.cancelled` once the group is gone.
public enum ShellProcess {
  public static func run(
    _ request: ShellCommandRequest, options: ShellOptions = ShellOptions(),
    onLine: @escaping @Sendable (LineStream, ShellLine) -> LineVerdict
  ) async throws(ShellProcessError) -> ShellOutcome {
    let supervisor = try ShellSupervisor(request: request, options: options, onLine: onLine)
    supervisor.launch()
    let decision = await withTaskCancellationHandler {
      await supervisor.decision()
    } onCancel: {
      supervisor.decide(.cancelled)
    }
    switch decision {
    case .completed(.status(let status)):
      return ShellOutcome(status)
    case .completed(.launchFailed(let reason)):
      throw ShellProcessError(reason)
    case .verdict(.detach), .verdict(.continue_):
      return .detached(DetachedProcess(supervisor: supervisor))
    case .verdict(.kill):
      _ = await supervisor.terminate(grace: options.terminationGrace)
      return .killedByHandler
    case .verdict(.fail(let reason)):
      _ = await supervisor.terminate(grace: options.terminationGrace)
      return .failedByHandler(reason)
    case .cancelled:
      _ = await supervisor.terminate(grace: options.terminationGrace)
      return .cancelled
    }
  }
}

extension ShellOutcome {
  init(_ status: TerminationStatus) {
    switch status {
    case .exited(let code): self = .exited(code: code)
    case .signaled(let signal): self = .signalled(signal)
    }
  }
}

/// A process whose step ended on a `detach` verdict. Its output still goes to the
/// step's `onLine`; stop it with `terminate` when the job ends.
public final class DetachedProcess: Sendable {
  let supervisor: ShellSupervisor

  init(supervisor: ShellSupervisor) { self.supervisor = supervisor }

  public var processGroupID: Int32 { supervisor.processGroupID ?? 0 }

  public var hasExited: Bool { supervisor.isComplete }

  /// SIGTERM to the group, SIGKILL after `grace`; returns once the group is gone, with
  /// how the shell ended.
  @discardableResult
  public func terminate(grace: Duration = .seconds(10)) async -> ShellOutcome {
    outcome(await supervisor.terminate(grace: grace))
  }

  /// Waits for the process to end by itself.
  public func wait() async -> ShellOutcome {
    outcome(await supervisor.completion())
  }

  private func outcome(_ completion: ShellSupervisor.Completion) -> ShellOutcome {
    switch completion {
    case .status(let status): ShellOutcome(status)
    case .launchFailed: .exited(code: 127)
    }
  }
}

// MARK: - Supervision

/// Owns one shell process: the monitor task that waits for it, the reader thread, the
/// pid record, and the decision the caller is waiting for.
final class ShellSupervisor: Sendable {
  enum Completion: Sendable {
    case status(TerminationStatus)
    case launchFailed(String)
  }
  enum Decision: Sendable {
    case completed(Completion)
    case verdict(LineVerdict)
    case cancelled
  }
  struct State {
    var pgid: pid_t? = nil
    var decision: Decision? = nil
    var decisionWaiter: CheckedContinuation<Decision, Never>? = nil
    var completion: Completion? = nil
    var completionWaiters: [CheckedContinuation<Completion, Never>] = []
    var graceDeadline: ContinuousClock.Instant? = nil
  }

  let request: ShellCommandRequest
  let options: ShellOptions
  let state = Mutex(State())
  let reader: ShellPipeReader
  /// Write ends of the pipes, handed to the child and closed by Subprocess after spawn.
  let outputWriteFD: Int32
  let errorWriteFD: Int32
  /// Cleared on completion: it closes the cycle supervisor → reader → sink → supervisor.
  let sink = ShellVerdictSink()
  /// How the command ended, set by the reader thread (`ShellSpawn`'s path).
  let exited = ShellLatch<Completion>()

  init(
    request: ShellCommandRequest, options: ShellOptions,
    onLine: @escaping @Sendable (LineStream, ShellLine) -> LineVerdict
  ) throws(ShellProcessError) {
    self.request = request
    self.options = options
    var output: [Int32] = [-1, -1]
    var error: [Int32] = [-1, -1]
    guard makeShellPipe(&output) else {
      throw ShellProcessError("cannot create a pipe: \(String(cString: strerror(errno)))")
    }
    guard makeShellPipe(&error) else {
      let reason = String(cString: strerror(errno))
      close(output[0])
      close(output[1])
      throw ShellProcessError("cannot create a pipe: \(reason)")
    }
    outputWriteFD = output[1]
    errorWriteFD = error[1]
    let box = sink
    do {
      reader = try ShellPipeReader(
        stdoutFD: output[0], stderrFD: error[0], maxLineBytes: options.maxLineBytes,
        onLine: { stream, line in box.deliver(onLine(stream, line)) })
    } catch let failure {
      for fd in output + error { close(fd) }
      throw failure
    }
    box.supervisor.withLock { $0 = self }
  }

  var processGroupID: pid_t? { state.withLock { $0.pgid } }
  var isComplete: Bool { state.withLock { $0.completion != nil } }

  func launch() {
    // The shell has exited and the reader hit its deadline with the pipes still held.
    let onKillDeadline: @Sendable () -> Void = { [self] in
      if let pgid = processGroupID { _ = kill(-pgid, SIGKILL) }
    }
    if options.launcher == .direct, let spawner = ShellSpawn.available {
      reader.start(
        onKillDeadline: onKillDeadline, launch: { [self] in launchDirectly(spawner) },
        onExit: { [self] status in exited.set(.status(status)) })
      Task.detached { [self] in await monitorDirectLaunch() }
    } else {
      reader.start(onKillDeadline: onKillDeadline)
      Task.detached { [self] in await monitor() }
    }
  }

  /// What to run: the program itself when bash would only exec it, else `bash -c`.
  private func commandLine() -> (executable: String, arguments: [String], environment: [String: String]) {
    if let direct = DirectCommand(request) {
      return (direct.executable, direct.arguments, direct.environment)
    }
    let shell = access("/bin/bash", X_OK) == 0 ? "/bin/bash" : "/bin/sh"
    return (shell, ["-c", request.command], request.environment)
  }

  /// On the reader thread, before it reads: starts the command, hands the pipes' write
  /// ends to it (and closes ours, so the reader sees EOF when it is done).
  private func launchDirectly(_ spawner: ShellSpawn) -> ShellSpawn.Child? {
    let (executable, arguments, environment) = commandLine()
    let result = spawner.spawn(
      executable: executable, arguments: arguments, environment: environment,
      workingDirectory: request.workingDirectory, stdout: outputWriteFD, stderr: errorWriteFD)
    close(outputWriteFD)
    close(errorWriteFD)
    switch result {
    case .success(let child):
      started(pgid: child.pid)
      return child
    case .failure(let error):
      exited.set(.launchFailed("cannot start the command in '\(request.workingDirectory)': \(error)"))
      return nil
    }
  }

  private func monitorDirectLaunch() async {
    let completion = await exited.wait()
    if case .status = completion {
      await finishAfterExit()
    } else {
      await reader.finished.wait()
    }
    if let pgid = processGroupID { options.pidJournal?.ended(pgid: pgid) }
    complete(completion)
  }

  /// swift-subprocess's path, where `ShellSpawn` is not available.
  private func monitor() async {
    let (executable, arguments, passed) = commandLine()
    var platform = PlatformOptions()
    platform.createSession = true
    var environment: [Environment.Key: String] = [:]
    for (name, value) in passed {
      if let key = Environment.Key(rawValue: name) { environment[key] = value }
    }
    let completion: Completion
    do {
      let result = try await Subprocess.run(
        .path(FilePath(executable)), arguments: Arguments(arguments), environment: .custom(environment),
        workingDirectory: FilePath(request.workingDirectory), platformOptions: platform, input: .none,
        output: .fileDescriptor(FileDescriptor(rawValue: outputWriteFD), closeAfterSpawningProcess: true),
        error: .fileDescriptor(FileDescriptor(rawValue: errorWriteFD), closeAfterSpawningProcess: true)
      ) { execution in
        self.started(pgid: execution.processIdentifier.value)
      }
      await finishAfterExit()
      completion = .status(result.terminationStatus)
    } catch {
      reader.stop()
      await reader.finished.wait()
      completion = .launchFailed(
        "cannot start the command in '\(request.workingDirectory)': \(error)")
    }
    if let pgid = processGroupID { options.pidJournal?.ended(pgid: pgid) }
    complete(completion)
  }

  private func started(pgid: pid_t) {
    options.pidJournal?.started(pgid: pgid, command: request.command)
    let (terminating, ready) = state.withLock { state in
      state.pgid = pgid
      return (state.graceDeadline != nil, Self.takeReadyDecision(&state))
    }
    // A cancellation that arrived while spawning.
    if terminating { _ = kill(-pgid, SIGTERM) }
    if let (waiter, decision) = ready { waiter.resume(returning: decision) }
  }

  /// The shell has been reaped. Reads what is left, then makes sure nothing of its
  /// group survives it.
  private func finishAfterExit() async {
    let now = ContinuousClock.now
    let grace = state.withLock { $0.graceDeadline }
    reader.shellExited(killAt: max(now + options.drainAfterExit, grace ?? now))
    await reader.finished.wait()
    guard let pgid = processGroupID, ShellProcessGroups.hasLiveMembers(pgid) else { return }
    // Members that closed their output but still run. Being stopped, they get the rest
    // of their grace; otherwise the command is over and so are they.
    if let deadline = state.withLock({ $0.graceDeadline }) {
      while ContinuousClock.now < deadline, ShellProcessGroups.hasLiveMembers(pgid) {
        try? await Task.sleep(for: .milliseconds(20))
      }
    }
    _ = kill(-pgid, SIGKILL)
    let limit = ContinuousClock.now + .seconds(2)
    while ContinuousClock.now < limit, ShellProcessGroups.hasLiveMembers(pgid) {
      try? await Task.sleep(for: .milliseconds(5))
    }
  }

  private func complete(_ completion: Completion) {
    sink.supervisor.withLock { $0 = nil }
    let (waiters, ready) = state.withLock { state in
      state.completion = completion
      let waiters = state.completionWaiters
      state.completionWaiters = []
      return (waiters, Self.takeReadyDecision(&state))
    }
    for waiter in waiters { waiter.resume(returning: completion) }
    if let (waiter, decision) = ready { waiter.resume(returning: decision) }
    decide(.completed(completion))
  }

  /// Records the first decisive event and wakes the caller; later ones are ignored.
  func decide(_ decision: Decision) {
    let ready = state.withLock { state -> (CheckedContinuation<Decision, Never>, Decision)? in
      guard state.decision == nil else { return nil }
      state.decision = decision
      return Self.takeReadyDecision(&state)
    }
    if let (waiter, decision) = ready { waiter.resume(returning: decision) }
  }

  /// A verdict can come from the first line the process prints, before its process group
  /// is known; the caller waits for the group id (or the end), since a detached process
  /// it could not signal later would outlive its job.
  private static func takeReadyDecision(_ state: inout State) -> (
    CheckedContinuation<Decision, Never>, Decision
  )? {
    guard let decision = state.decision, let waiter = state.decisionWaiter else { return nil }
    if case .verdict = decision, state.pgid == nil, state.completion == nil { return nil }
    state.decisionWaiter = nil
    return (waiter, decision)
  }

  func decision() async -> Decision {
    await withCheckedContinuation { continuation in
      let ready = state.withLock { state -> (CheckedContinuation<Decision, Never>, Decision)? in
        state.decisionWaiter = continuation
        return Self.takeReadyDecision(&state)
      }
      if let (waiter, decision) = ready { waiter.resume(returning: decision) }
    }
  }

  func completion() async -> Completion {
    await withCheckedContinuation { continuation in
      let ready: Completion? = state.withLock { state in
        if let completion = state.completion { return completion }
        state.completionWaiters.append(continuation)
        return nil
      }
      if let ready { continuation.resume(returning: ready) }
    }
  }

  /// SIGTERM now, SIGKILL at the grace deadline; returns once the group is gone. Safe to
  /// call more than once; the first call's deadline holds.
  func terminate(grace: Duration) async -> Completion {
    let (first, pgid, done) = state.withLock { state -> (Bool, pid_t?, Bool) in
      if state.completion != nil { return (false, nil, true) }
      if state.graceDeadline != nil { return (false, state.pgid, false) }
      state.graceDeadline = ContinuousClock.now + grace
      return (true, state.pgid, false)
    }
    if first && !done {
      if let pgid { _ = kill(-pgid, SIGTERM) }
      Task.detached { [self] in
        try? await Task.sleep(for: grace)
        let pgid = state.withLock { $0.completion == nil ? $0.pgid : nil }
        if let pgid { _ = kill(-pgid, SIGKILL) }
      }
    }
    return await completion()
  }
}

/// Carries verdicts from the reader thread to the supervisor, which is created after
/// the reader (the reader's closure needs somewhere to send them).
final class ShellVerdictSink: Sendable {
  let supervisor = Mutex<ShellSupervisor?>(nil)

  func deliver(_ verdict: LineVerdict) {
    if case .continue_ = verdict { return }
    supervisor.withLock { $0 }?.decide(.verdict(verdict))
  }
}

// MARK: - Reading

/// Reads both pipes on a thread of its own (one of `ReaderThreads`) with poll(2):
/// blocking reads must not sit on the Swift concurrency pool (two cores here), and a
/// thread lets a slow consumer hold the process back through the pipe instead of
/// through unbounded buffers.
final class ShellPipeReader: Sendable {
  struct Control {
    var killAt: ContinuousClock.Instant? = nil
    var stopAt: ContinuousClock.Instant? = nil
    /// The wake pipe is closed: its descriptor number may already belong to another
    /// file (a job's bundle file was once corrupted by a late wake-up byte).
    var closed = false
  }

  let stdoutFD: Int32
  let stderrFD: Int32
  let wakeRead: Int32
  let wakeWrite: Int32
  let maxLineBytes: Int
  let onLine: @Sendable (LineStream, ShellLine) -> Void
  let control = Mutex(Control())
  let finished = ShellLatch<Void>()

  init(
    stdoutFD: Int32, stderrFD: Int32, maxLineBytes: Int,
    onLine: @escaping @Sendable (LineStream, ShellLine) -> Void
  ) throws(ShellProcessError) {
    var wake: [Int32] = [-1, -1]
    guard makeShellPipe(&wake, nonBlocking: true) else {
      throw ShellProcessError("cannot create a pipe: \(String(cString: strerror(errno)))")
    }
    self.stdoutFD = stdoutFD
    self.stderrFD = stderrFD
    self.wakeRead = wake[0]
    self.wakeWrite = wake[1]
    self.maxLineBytes = maxLineBytes
    self.onLine = onLine
  }

  /// - Parameters:
  ///   - launch: run on the thread first: starts the command and returns it, whose exit
  ///     the thread then watches with its output (nil: it did not start).
  ///   - onExit: how the launched command ended, once reaped.
  func start(
    onKillDeadline: @escaping @Sendable () -> Void, launch: (@Sendable () -> ShellSpawn.Child?)? = nil,
    onExit: (@Sendable (TerminationStatus) -> Void)? = nil
  ) {
    ReaderThreads.shared.run { [self] in
      let child = launch?()
      var watched = child.map { ExitWatch(child: $0, onExit: onExit ?? { _ in }) }
      loop(onKillDeadline: onKillDeadline, watch: &watched)
      // Output ended before the command did (it closed or handed off its stdout and
      // stderr): its exit is all that is left to watch.
      watched?.waitForExit()
    }
  }

  /// A launched command's pidfd, polled with the pipes until it is reaped.
  struct ExitWatch {
    let child: ShellSpawn.Child
    let onExit: @Sendable (TerminationStatus) -> Void
    private(set) var reaped = false

    init(child: ShellSpawn.Child, onExit: @escaping @Sendable (TerminationStatus) -> Void) {
      self.child = child
      self.onExit = onExit
    }

    /// After the pidfd polled readable.
    mutating func collect() {
      guard !reaped, let status = ShellSpawn.reap(child) else { return }
      reaped = true
      close(child.pidfd)
      onExit(status)
    }

    mutating func waitForExit() {
      while !reaped {
        var polled = pollfd(fd: child.pidfd, events: Int16(POLLIN), revents: 0)
        if poll(&polled, 1, -1) < 0, errno != EINTR { break }
        collect()
      }
    }
  }

  /// After `killAt`, if the pipes are still open, `onKillDeadline` runs and reading
  /// stops at most a second later even if something outside the group holds them.
  func shellExited(killAt: ContinuousClock.Instant) {
    control.withLock { $0.killAt = killAt }
    wake()
  }

  func stop() {
    control.withLock { $0.stopAt = .now }
    wake()
  }

  /// Writes under the lock that also guards closing, so a wake-up after the reader
  /// ended can never land in a descriptor that was reused.
  private func wake() {
    control.withLock { state in
      guard !state.closed else { return }
      var byte: UInt8 = 1
      _ = write(wakeWrite, &byte, 1)
    }
  }

  private func loop(onKillDeadline: @Sendable () -> Void, watch: inout ExitWatch?) {
    var splitters = [
      ShellLineSplitter(maxLineBytes: maxLineBytes), ShellLineSplitter(maxLineBytes: maxLineBytes),
    ]
    let streams: [LineStream] = [.stdout, .stderr]
    let fds = [stdoutFD, stderrFD]
    var open = [true, true]
    var killed = false
    var buffer = [UInt8](repeating: 0, count: 64 * 1024)
    let onLine = self.onLine

    while open[0] || open[1] {
      let current = control.withLock { $0 }
      let now = ContinuousClock.now
      if let stopAt = current.stopAt, now >= stopAt { break }
      if let killAt = current.killAt, !killed, now >= killAt {
        killed = true
        onKillDeadline()
        control.withLock { $0.stopAt = min($0.stopAt ?? now + .seconds(1), now + .seconds(1)) }
        continue
      }
      var deadline: ContinuousClock.Instant? = current.stopAt
      if !killed, let killAt = current.killAt { deadline = min(deadline ?? killAt, killAt) }
      var timeout: Int32 = -1
      if let deadline {
        let remaining = now.duration(to: deadline)
        let milliseconds =
          remaining.components.seconds * 1000 + remaining.components.attoseconds / 1_000_000_000_000_000
        timeout = Int32(clamping: max(1, milliseconds + 1))
      }
      let watching = watch.map { !$0.reaped } ?? false
      var polled = [
        pollfd(fd: open[0] ? fds[0] : -1, events: Int16(POLLIN), revents: 0),
        pollfd(fd: open[1] ? fds[1] : -1, events: Int16(POLLIN), revents: 0),
        pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0),
        pollfd(fd: watching ? watch!.child.pidfd : -1, events: Int16(POLLIN), revents: 0),
      ]
      let ready = poll(&polled, 4, timeout)
      if ready < 0 {
        if errno == EINTR { continue }
        break
      }
      if polled[2].revents != 0 {
        var sink = [UInt8](repeating: 0, count: 64)
        while read(wakeRead, &sink, sink.count) > 0 {}
      }
      if polled[3].revents != 0 { watch?.collect() }
      for index in 0..<2 where open[index] && polled[index].revents != 0 {
        let count = read(fds[index], &buffer, buffer.count)
        if count > 0 {
          let stream = streams[index]
          let time = Timestamp.now()
          buffer.withUnsafeBufferPointer { bytes in
            splitters[index].feed(UnsafeBufferPointer(rebasing: bytes[0..<count])) {
              onLine(stream, ShellLine(bytes: $0, time: time))
            }
          }
        } else if count == 0 || (errno != EINTR && errno != EAGAIN) {
          open[index] = false
          splitters[index].finish { onLine(streams[index], ShellLine(bytes: $0, time: Timestamp.now())) }
        }
      }
    }
    for index in 0..<2 where open[index] {
      splitters[index].finish { onLine(streams[index], ShellLine(bytes: $0, time: Timestamp.now())) }
    }
    close(stdoutFD)
    close(stderrFD)
    control.withLock { state in
      state.closed = true
      close(wakeRead)
      close(wakeWrite)
    }
    finished.signal()
  }
}

/// Cuts a byte stream into lines. `\n`, `\r\n` and a lone `\r` end a line.
///
/// A line longer than `maxLineBytes` is never dropped: it is delivered as several
/// lines, each holding at most `maxLineBytes` bytes of the original, cut where no UTF-8
/// sequence is split. Every piece but the last ends with
/// `ShellOptions.lineContinuationMarker`, so a reader of the log can tell a split line
/// from separate ones and join the pieces back (drop the marker, concatenate). A line of exactly `maxLineBytes` bytes is not split.
struct ShellLineSplitter {
  let maxLineBytes: Int
  private var pending: [UInt8] = []
  private var skipLineFeed = false

  init(maxLineBytes: Int) { self.maxLineBytes = max(4, maxLineBytes) }

  /// Emits each line as bytes: straight from `bytes` when the line lies wholly inside
  /// them (the common case, no copy), else from the splitter's own buffer.
  mutating func feed(_ bytes: UnsafeBufferPointer<UInt8>, emit: (UnsafeBufferPointer<UInt8>) -> Void) {
    let count = bytes.count
    var index = 0
    while index < count {
      if skipLineFeed {
        skipLineFeed = false
        if bytes[index] == 0x0A {
          index += 1
          continue
        }
      }
      let start = index
      // Bytes this piece may take before it must be split: one beyond the limit, so a
      // piece is split only once it is known to continue and a line of exactly the limit
      // stays whole. `pending` never holds more than the limit, so this is at least 1.
      let room = maxLineBytes - pending.count + 1
      let scanEnd = min(count, start + room)
      let end = Self.lineEnd(bytes, from: start, to: scanEnd)
      if end < scanEnd {
        if pending.isEmpty {
          emit(UnsafeBufferPointer(rebasing: bytes[start..<end]))
        } else {
          pending.append(contentsOf: bytes[start..<end])
          pending.withUnsafeBufferPointer(emit)
          pending.removeAll(keepingCapacity: true)
        }
        skipLineFeed = bytes[end] == 0x0D
        index = end + 1
      } else if end - start == room {
        pending.append(contentsOf: bytes[start..<end])
        emitLongPiece(emit: emit)
        index = end
      } else {
        pending.append(contentsOf: bytes[start..<end])
        index = end
      }
    }
  }

  /// The first `\n` or `\r` in `bytes[from..<to]`, or `to`: memchr for the newline
  /// (vectorised; a chatty job's output is gigabytes), then for a carriage return
  /// before it.
  static func lineEnd(_ bytes: UnsafeBufferPointer<UInt8>, from: Int, to: Int) -> Int {
    guard from < to, let base = bytes.baseAddress else { return to }
    let newline =
      memchr(base + from, 0x0A, to - from).map { base.distance(to: $0.assumingMemoryBound(to: UInt8.self)) }
      ?? to
    guard newline > from, let carriage = memchr(base + from, 0x0D, newline - from) else { return newline }
    return base.distance(to: carriage.assumingMemoryBound(to: UInt8.self))
  }

  mutating func finish(emit: (UnsafeBufferPointer<UInt8>) -> Void) {
    if !pending.isEmpty { pending.withUnsafeBufferPointer(emit) }
    pending.removeAll()
    skipLineFeed = false
  }

  /// Emits the first piece of `pending` (which holds more than `maxLineBytes`), marked
  /// as continued, and keeps the rest.
  private mutating func emitLongPiece(emit: (UnsafeBufferPointer<UInt8>) -> Void) {
    let limit = maxLineBytes
    var cut = limit
    // Back up over continuation bytes (10xxxxxx) so the cut falls between characters;
    // bytes that are not UTF-8 at all are cut at the limit.
    while cut > limit - 3, cut > 1, pending[cut] & 0xC0 == 0x80 { cut -= 1 }
    if pending[cut] & 0xC0 == 0x80 { cut = limit }
    var piece = Array(pending[..<cut])
    piece.append(contentsOf: ShellOptions.lineContinuationMarker.utf8)
    piece.withUnsafeBufferPointer(emit)
    pending.removeFirst(cut)
  }
}

// MARK: - Helpers

/// A value set once (later ones are ignored) and awaited by any number of tasks; without
/// a value (`ShellLatch<Void>`), a one-shot event.
final class ShellLatch<Value: Sendable>: Sendable {
  private let state = Mutex<(value: Value?, waiters: [CheckedContinuation<Value, Never>])>((nil, []))

  func set(_ value: Value) {
    let waiters = state.withLock { state -> [CheckedContinuation<Value, Never>] in
      guard state.value == nil else { return [] }
      state.value = value
      defer { state.waiters = [] }
      return state.waiters
    }
    for waiter in waiters { waiter.resume(returning: value) }
  }

  func wait() async -> Value {
    await withCheckedContinuation { continuation in
      let ready = state.withLock { state -> Value? in
        if let value = state.value { return value }
        state.waiters.append(continuation)
        return nil
      }
      if let ready { continuation.resume(returning: ready) }
    }
  }
}

extension ShellLatch where Value == Void {
  func signal() { set(()) }
}

enum ShellProcessGroups {
  /// Whether any process of the group is still running. Zombies do not count: an
  /// orphan's zombie waits for init to reap it and runs nothing.
  static func hasLiveMembers(_ pgid: pid_t) -> Bool {
    if kill(-pgid, 0) != 0 { return errno == EPERM }
    #if os(Linux)
      guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return true }
      for entry in entries {
        guard entry.first?.isNumber == true, Int32(entry) != nil else { continue }
        guard let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
          let close = stat.lastIndex(of: ")")
        else { continue }
        // "pid (comm) state ppid pgrp ..."; comm may hold spaces and parentheses.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 3, Int32(fields[2]) == pgid else { continue }
        if fields[0] != "Z" && fields[0] != "X" { return true }
      }
      return false
    #else
      return true
    #endif
  }
}

/// A pipe with both ends close-on-exec (and non-blocking when asked), the flags set by
/// pipe2(2) as it is made rather than by four `fcntl`s after. (Subprocess also closes
/// stray descriptors in the children it starts; this covers anything else that forks.)
fileprivate func makeShellPipe(_ fds: inout [Int32], nonBlocking: Bool = false) -> Bool {
  pipe2(&fds, O_CLOEXEC | (nonBlocking ? O_NONBLOCK : 0)) == 0
}
