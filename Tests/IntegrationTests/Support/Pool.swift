import Foundation
import Shared
import Testing

/// A real pool for a test: a `pinpool coordinator` process and `pinpool worker`
/// processes on loopback, driven through the CLI. Every process it starts is killed
/// and reaped in `shutdown()`, which `withPool` runs even when the test fails.
final class Pool: @unchecked Sendable {
  let directory: URL
  let endpoint: String
  private(set) var coordinator: Process?
  private(set) var workers: [String: Process] = [:]
  private var logs: [String: URL] = [:]
  let heartbeat: Double

  static var binary: String {
    if let override = ProcessInfo.processInfo.environment["PINPOOL_BIN"] { return override }
    let beside = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
      .deletingLastPathComponent()
    var candidates = [beside.appendingPathComponent("pinpool").path]
    // Swift Testing may run from a helper binary; fall back to the package's build folder.
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
      .deletingLastPathComponent().deletingLastPathComponent()
    candidates.append(root.appendingPathComponent(".build/debug/pinpool").path)
    return candidates.first { FileManager.default.isExecutableFile(atPath: $0) } ?? candidates[0]
  }

  /// One private runtime for every test worker (the same folder the runtime's own test
  /// installs into), so the suite downloads it from PyPI at most once per build folder.
  static var sharedRuntime: String {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
      .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent(".build/test-runtime")
      .path
  }

  init(heartbeat: Double = 0.2) throws {
    directory = FileManager.default.temporaryDirectory.appendingPathComponent(
      "pinpool-it-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    endpoint = "tcp://127.0.0.1:\(Self.freePort())"
    self.heartbeat = heartbeat
  }

  var dataDirectory: String { directory.appendingPathComponent("coordinator").path }
  func workerRoot(_ name: String) -> String { directory.appendingPathComponent("worker-\(name)").path }

  /// Variables every `cli` call gets (a test of a pool with keys sets PINPOOL_KEYS here).
  var cliEnvironment: [String: String] = [:]

  func startCoordinator(liveness: Int = 10, extra: [String] = []) throws {
    coordinator = try spawn(
      "coordinator",
      [
        "coordinator", "--data", dataDirectory, "--bind", endpoint, "--heartbeat-interval", "\(heartbeat)",
        "--liveness", "\(liveness)",
      ] + extra)
    try waitUntil("the coordinator answers", timeout: 30) { self.cli(["workers", "--json"]).status == 0 }
  }

  /// Kills the coordinator as a crash would (SIGKILL), and reaps it.
  func killCoordinator() {
    guard let process = coordinator else { return }
    kill(process.processIdentifier, SIGKILL)
    process.waitUntilExit()
    coordinator = nil
  }

  /// `runtime: true` gives the worker the private runtime shared by the suite (installed
  /// from PyPI on first use); other workers use the host's tools, which keeps most tests
  /// independent of the network.
  func startWorker(
    _ name: String, gpus: [String] = [], slots: Int = 1, extra: [String] = [],
    environment: [String: String] = [:], runtime: Bool = false, waitForRegistration: Bool = true
  ) throws {
    var arguments = [
      "worker", "--coordinator", endpoint, "--root", workerRoot(name), "--name", name, "--slots", "\(slots)",
      "--kill-grace", "2",
    ]
    arguments += runtime ? ["--runtime-dir", Self.sharedRuntime] : ["--no-runtime"]
    // Declared GPUs, or none; `--probe-gpus` in `extra` lets the worker probe instead.
    if gpus.isEmpty, !extra.contains("--probe-gpus") { arguments.append("--no-gpu") }
    for gpu in gpus { arguments += ["--gpu", gpu] }
    workers[name] = try spawn(
      "worker-\(name)", arguments + extra.filter { $0 != "--probe-gpus" }, environment: environment)
    guard waitForRegistration else { return }
    try waitUntil("worker \(name) registers", timeout: 30) {
      guard let views: [WorkerView] = try? self.json(["workers"]) else { return false }
      return views.contains { $0.name == name && $0.state == .online }
    }
  }

  func killWorker(_ name: String, signal: Int32 = SIGKILL) {
    guard let process = workers[name] else { return }
    kill(process.processIdentifier, signal)
    if signal == SIGKILL || signal == SIGTERM {
      process.waitUntilExit()
      workers[name] = nil
    }
  }

  func shutdown() {
    for process in Array(workers.values) + [coordinator].compactMap({ $0 }) where process.isRunning {
      kill(process.processIdentifier, SIGTERM)
    }
    let deadline = Date().addingTimeInterval(10)
    for process in Array(workers.values) + [coordinator].compactMap({ $0 }) {
      while process.isRunning, Date() < deadline { usleep(20_000) }
      if process.isRunning { kill(process.processIdentifier, SIGKILL) }
      process.waitUntilExit()
    }
    workers = [:]
    coordinator = nil
    // A worker killed by a test leaves its jobs' process groups behind until a worker of
    // its root starts again; a test that fails before then must not leave them running.
    for pid in jobProcesses() { kill(pid, SIGKILL) }
    try? FileManager.default.removeItem(at: directory)
  }

  /// Processes of jobs run by this pool's workers (their environment names a workspace
  /// under the pool's folder).
  func jobProcesses() -> [pid_t] {
    let marker = "PINPOOL_WORKSPACE=" + directory.path
    return ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { name in
      guard let pid = pid_t(name),
        let environ = FileManager.default.contents(atPath: "/proc/\(name)/environ"),
        String(decoding: environ, as: UTF8.self).contains(marker)
      else { return nil }
      return pid
    }
  }

  /// What one daemon ("coordinator", "worker-NAME") has written so far.
  func daemonLog(_ name: String) -> String {
    logs[name].flatMap { try? String(contentsOf: $0, encoding: .utf8) } ?? ""
  }

  /// The daemon logs, for a failing test's message.
  func daemonLogs() -> String {
    logs.map { name, url in "--- \(name)\n" + ((try? String(contentsOf: url, encoding: .utf8)) ?? "") }
      .joined(
        separator: "\n")
  }

  // MARK: CLI

  struct Result {
    var status: Int32
    var stdout: String
    var stderr: String
  }

  @discardableResult
  /// Runs one CLI command to its end, or kills it after `timeout` seconds: a command
  /// expected to be refused (a daemon started with bad keys, say) must never hang a test
  /// when the refusal regresses.
  func cli(_ arguments: [String], environment: [String: String] = [:], timeout: Double = 120) -> Result {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: Self.binary)
    process.arguments = arguments + (needsEndpoint(arguments) ? ["--coordinator", endpoint] : [])
    var env = ProcessInfo.processInfo.environment
    for (key, value) in cliEnvironment.merging(environment, uniquingKeysWith: { $1 }) { env[key] = value }
    process.environment = env
    let out = Pipe()
    let err = Pipe()
    process.standardOutput = out
    process.standardError = err
    do { try process.run() } catch { return Result(status: -1, stdout: "", stderr: "\(error)") }
    // Holds the pid only: a cancelled work item stays queued until its deadline, and one
    // holding the Process would keep its pipes (four descriptors) open that long, which
    // a test making hundreds of calls runs out of.
    let pid = process.processIdentifier
    let watchdog = DispatchWorkItem { kill(pid, SIGKILL) }
    DispatchQueue.global().asyncAfter(deadline: .now() + timeout, execute: watchdog)
    defer { watchdog.cancel() }
    // Read both pipes before waiting, so a chatty command cannot block on a full pipe.
    let errData = ReadBox()
    let group = DispatchGroup()
    group.enter()
    DispatchQueue.global().async {
      errData.data = err.fileHandleForReading.readDataToEndOfFile()
      group.leave()
    }
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    group.wait()
    process.waitUntilExit()
    let killed = process.terminationReason == .uncaughtSignal && process.terminationStatus == SIGKILL
    return Result(
      status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
      stderr: String(decoding: errData.data, as: UTF8.self)
        + (killed
          ? "\n(killed after \(Int(timeout)) s: `pinpool \(arguments.joined(separator: " "))` did not end)"
          : ""))
  }

  private func needsEndpoint(_ arguments: [String]) -> Bool {
    guard let command = arguments.first else { return false }
    return !["validate", "coordinator", "worker", "dev", "keys"].contains(command)
      && !arguments.contains("--coordinator")
  }

  func json<T: Decodable>(_ arguments: [String], environment: [String: String] = [:]) throws -> T {
    let result = cli(arguments + ["--json"], environment: environment)
    guard result.status == 0 else {
      throw PoolError(
        "`pinpool \(arguments.joined(separator: " "))` failed (\(result.status)): \(result.stderr)")
    }
    return try JSONDecoder().decode(T.self, from: Data(result.stdout.utf8))
  }

  func submit(_ arguments: [String]) throws -> String {
    let reply: SubmitReply = try json(["submit"] + arguments)
    return reply.id
  }

  func status(_ id: String) throws -> JobView { try json(["status", id]) }

  /// Waits until the job is final and its cleanup reported (or it never ran).
  @discardableResult
  func waitForFinal(_ id: String, timeout: Double = 60) throws -> JobView {
    var last: JobView?
    try waitUntil("job \(id) finishes", timeout: timeout) {
      last = try? self.status(id)
      guard let view = last, view.state.isFinal else { return false }
      return view.worker == nil || view.cleanup.state == .done || view.cleanup.state == .kept
    }
    return last!
  }

  func waitForState(_ id: String, _ states: Set<JobState>, timeout: Double = 60) throws -> JobView {
    var last: JobView?
    try waitUntil("job \(id) reaches \(states.map(\.rawValue))", timeout: timeout) {
      last = try? self.status(id)
      return last.map { states.contains($0.state) } ?? false
    }
    return last!
  }

  func logLines(_ id: String) throws -> [LogLineView] {
    let result = cli(["logs", id, "--json"])
    guard result.status == 0 else { throw PoolError("logs \(id) failed: \(result.stderr)") }
    return try result.stdout.split(separator: "\n").map {
      try JSONDecoder().decode(LogLineView.self, from: Data($0.utf8))
    }
  }

  /// Polls a condition against a deadline. Polling a real system's observable state is
  /// how these tests wait; they never sleep in place of a condition.
  func waitUntil(_ what: String, timeout: Double, _ condition: () throws -> Bool) throws {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
      if try condition() { return }
      usleep(50_000)
    }
    throw PoolError("timed out after \(Int(timeout)) s waiting until \(what)\n\(daemonLogs())")
  }

  // MARK: Processes

  private func spawn(_ name: String, _ arguments: [String], environment: [String: String] = [:]) throws
    -> Process
  {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: Self.binary)
    process.arguments = arguments
    var env = ProcessInfo.processInfo.environment
    for (key, value) in environment { env[key] = value }
    process.environment = env
    let log = directory.appendingPathComponent("\(name).log")
    _ = FileManager.default.createFile(atPath: log.path, contents: nil)
    let handle = try FileHandle(forWritingTo: log)
    handle.seekToEndOfFile()
    process.standardOutput = handle
    process.standardError = handle
    logs[name] = log
    try process.run()
    return process
  }

  static func freePort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    _ = withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
      }
    }
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    return Int(UInt16(bigEndian: address.sin_port))
  }
}

private final class ReadBox: @unchecked Sendable {
  var data = Data()
}

struct PoolError: Error, CustomStringConvertible {
  var description: String
  init(_ description: String) { self.description = description }
}

/// Runs `body` with a fresh pool and always shuts it down.
func withPool<T>(heartbeat: Double = 0.2, _ body: (Pool) throws -> T) throws -> T {
  let pool = try Pool(heartbeat: heartbeat)
  defer { pool.shutdown() }
  return try body(pool)
}

/// Writes a script file into a temp folder for a test and returns its path.
func writeScript(_ text: String, name: String = "job.json", in directory: URL) throws -> String {
  let url = directory.appendingPathComponent(name)
  try text.write(to: url, atomically: true, encoding: .utf8)
  return url.path
}
