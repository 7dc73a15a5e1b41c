import ArgumentParser
import Coordinator
import Dispatch
import Foundation
import Logging
import Shared
import Worker

struct CoordinatorCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "coordinator", abstract: "Run the coordinator: the queue, the scheduler and the client API.",
    discussion: manual(
      """
      Listens on --bind for workers and clients, keeps the durable queue (SQLite) and the logs
      in --data, and schedules jobs onto workers. Stops cleanly on SIGINT or SIGTERM.
      """,
      examples: [
        "pinpool coordinator --data /var/lib/pinpool",
        "pinpool coordinator --data /var/lib/pinpool --bind tcp://127.0.0.1:7450 --retention 7d",
      ],
      exit: [.success, .failure, .usage]))
  @Option(help: "Folder for the job store (SQLite) and logs.", completion: .directory) var data: String
  @Option(help: "The ZeroMQ endpoint to listen on.") var bind = "tcp://127.0.0.1:7450"
  @Option(
    help: ArgumentHelp(
      "Use CurveZMQ: DIR holds coordinator.key_secret and the enrolled public keys in workers/, clients/, admins/.",
      valueName: "dir"))
  var keys: String?
  @Flag(help: "Allow a non-loopback bind without keys.") var insecure = false
  @Option(
    help: ArgumentHelp(
      "Largest frame accepted, e.g. 65MiB (at least 4MiB: log batches are up to about 1MiB); a larger one drops its connection.",
      valueName: "size"))
  var maxMessage: String = "65MiB"
  @Option(help: ArgumentHelp("Largest job bundle accepted, e.g. 64MiB.", valueName: "size"))
  var maxBundle: String = "64MiB"
  @Option(help: ArgumentHelp("Submit calls per second per client (0: no limit).", valueName: "n"))
  var submitRate: Double = 50
  @Option(help: ArgumentHelp("Submit calls a client may make in a burst.", valueName: "n"))
  var submitBurst: Double = 500
  @Option(help: "Seconds between heartbeats.") var heartbeatInterval: Double = 5
  @Option(help: "Missed heartbeats before a worker counts as offline.") var liveness: Int = 6
  @Option(help: ArgumentHelp("Keep finished jobs and their logs this long, e.g. 30d.", valueName: "duration"))
  var retention: String = "30d"
  @Option(
    help: ArgumentHelp(
      "After waiting this long a job reserves the worker it fits best, e.g. 10m.", valueName: "duration"))
  var aging: String = "10m"
  @Option(
    help: ArgumentHelp("Most artifact bytes one job may store (every attempt together).", valueName: "size"))
  var artifactLimit: String = "10GB"
  @Option(help: ArgumentHelp("Most artifact bytes the pool stores in all.", valueName: "size"))
  var artifactPoolLimit: String = "100GB"
  @Option(help: ArgumentHelp("Most artifact files one job may store.", valueName: "n"))
  var artifactFiles: Int = 1000

  func run() async throws {
    LargeFrameMemory.configure()
    var serverKeys: ServerKeys?
    if let keys {
      guard CurveKeyPair.isSupported else {
        throw CLIError("--keys: this libzmq was built without CURVE support")
      }
      do { serverKeys = try ServerKeys.load(keys) } catch { throw CLIError("--keys: \(error)") }
    }
    try checkBind(bind, insecure: insecure, keys: serverKeys != nil)
    var limits = CoordinatorLimits()
    var settings = CoordinatorSettings(heartbeatInterval: heartbeatInterval, liveness: liveness)
    do {
      limits.retentionSeconds = try DurationParser.seconds(retention)
      settings.agingSeconds = try DurationParser.seconds(aging)
    } catch {
      throw CLIError.usage("--retention/--aging: \(error)")
    }
    limits.maxBundleBytes = Int(try sizeFlag(maxBundle, "--max-bundle/--max-message"))
    limits.maxMessageBytes = try sizeFlag(maxMessage, "--max-bundle/--max-message")
    // Workers send log lines in batches of up to about 1 MiB (a chunk as taken from a
    // job's output, at most one long line over); a smaller limit would drop every chatty
    // worker's connection over and over.
    guard limits.maxMessageBytes >= 4 << 20 else {
      throw CLIError.usage(
        "--max-message (\(maxMessage)) must be at least 4MiB: workers send log lines in batches of up to about 1MiB"
      )
    }
    guard limits.maxMessageBytes > Int64(limits.maxBundleBytes) else {
      throw CLIError.usage(
        "--max-message (\(maxMessage)) must be larger than --max-bundle (\(maxBundle)): a bundle travels in one frame"
      )
    }
    guard submitRate >= 0, submitBurst >= 1 else {
      throw CLIError.usage("--submit-rate must be 0 or more and --submit-burst 1 or more")
    }
    limits.submitRate = submitRate
    limits.submitBurst = submitBurst
    limits.artifacts.perJob = try sizeFlag(artifactLimit, "--artifact-limit")
    guard artifactFiles >= 1 else { throw CLIError.usage("--artifact-files must be 1 or more") }
    limits.artifacts.filesPerJob = artifactFiles
    limits.artifacts.pool = try sizeFlag(artifactPoolLimit, "--artifact-pool-limit")
    let logger = makeLogger("coordinator")
    let context = ZMQContext()
    let server: CoordinatorServer
    do {
      server = try CoordinatorServer(
        configuration: CoordinatorConfiguration(
          dataDirectory: data, bind: bind, settings: settings, limits: limits, keys: serverKeys),
        context: context, logger: logger)
    } catch {
      throw CLIError("cannot start the coordinator: \(error)")
    }
    print("pinpool coordinator listening on \(server.endpoint)")
    await waitForTerminationSignal()
    logger.info("shutting down")
    server.shutdown()
  }
}

struct WorkerCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "worker", abstract: "Run a worker that takes jobs from a coordinator.",
    discussion: manual(
      """
      Registers with the coordinator, advertises its GPUs (probed, or declared with --gpu),
      disk and labels, and runs the jobs it is given, each in ROOT/jobs/JOB-ATTEMPT with a
      private runtime and environment. Stops cleanly on SIGINT or SIGTERM.
      """,
      examples: [
        "pinpool worker --coordinator tcp://10.0.0.2:7450 --root /var/lib/pinpool-worker --label site=studio",
        "pinpool worker --root /tmp/w --gpu \"nvidia:NVIDIA GeForce RTX 4090:24GiB\"",
        "pinpool worker --probe --root /tmp/w",
      ],
      exit: [.success, .failure, .usage]))
  @Option(help: "The coordinator's endpoint.") var coordinator = ClientOptions.defaultCoordinator
  @Option(help: "The worker's own folder: workspaces, runtime, caches.", completion: .directory) var root:
    String
  @Option(
    help: ArgumentHelp(
      "Use CurveZMQ: DIR holds this worker's key pair and the coordinator's coordinator.key.",
      valueName: "dir"))
  var keys: String?
  @Option(help: "The name people use for this worker (default: the host name).") var name: String?
  @Option(name: .customLong("label"), help: ArgumentHelp("A label jobs can require.", valueName: "key=value"))
  var labels: [String] = []
  @Option(help: "Jobs run at once.") var slots: Int = 1
  @Option(
    name: .customLong("gpu"),
    help: ArgumentHelp("Declare a GPU instead of probing.", valueName: "vendor:model:vram"))
  var gpus: [String] = []
  @Flag(help: "Declare that this worker has no GPU (skip the probe).") var noGpu = false
  @Option(name: .customLong("pass-env"), help: "A variable of the worker's environment that jobs may see.")
  var passEnv: [String] = []
  @Option(help: "Seconds between SIGTERM and SIGKILL when a job is stopped.") var killGrace: Double = 10
  @Flag(help: "Print what the worker would advertise, as JSON, and exit.") var probe = false
  @Flag(help: "Do not install or use the private runtime (jobs use the host's tools).") var noRuntime = false
  @Option(help: ArgumentHelp("Where the private runtime lives (default ROOT/runtime).", valueName: "dir"))
  var runtimeDir: String?
  @Flag(help: "Print what the private runtime holds, and exit.") var runtimeStatus = false
  @Flag(help: "Install the private runtime now (instead of on first need), and exit.") var installRuntime =
    false
  @Option(
    help: ArgumentHelp(
      "Keep a failed job's workspace this long for inspection, e.g. 2h.", valueName: "duration"))
  var keepFailed: String?
  @Option(
    help: ArgumentHelp(
      "Size budget of ROOT/cache, e.g. 50GB; least recently used entries go first.", valueName: "size"))
  var cacheBudget: String?
  @Option(
    help: ArgumentHelp(
      "Split a job's output line longer than this into several, each but the last ending with "
        + "\"\(ShellOptions.lineContinuationMarker)\"; 1KiB to 1MiB.", valueName: "size"))
  var maxLogLine: String = "64KiB"
  @Option(
    help: ArgumentHelp(
      "Cap on artifact uploads per job, in bytes per second, e.g. 2MB (a laptop on Wi-Fi).", valueName: "rate"
    ))
  var uploadRate: String?

  func run() async throws {
    LargeFrameMemory.configure()
    let configuration = try makeConfiguration()
    if probe {
      let (advert, warnings) = try await WorkerProbe.advert(configuration: configuration)
      for warning in warnings { FileHandle.standardError.write(Data("warning: \(warning)\n".utf8)) }
      let view = WorkerView(
        id: advert.id, name: advert.name, state: .online, gpus: advert.gpus.map(GPUView.init),
        diskFree: advert.diskFree, slots: advert.slots, running: 0, lastSeen: Timestamp.iso(Timestamp.now()),
        labels: advert.labels, cpuCores: advert.host.cpuCores, memoryTotal: advert.host.memoryTotal)
      return printJSON(view)
    }
    if runtimeStatus || installRuntime {
      let runtime = PrivateRuntime(root: configuration.runtimeRoot, cacheRoot: configuration.root + "/cache")
      var status = runtime.status()
      if installRuntime {
        do {
          status = try await runtime.ensureInstalled(log: { print($0) })
        } catch {
          throw CLIError(error.description)
        }
      }
      printJSON(status)
      if !status.installed { throw ExitCode(1) }
      return
    }
    let logger = makeLogger("worker")
    let agent = try await WorkerAgent(configuration: configuration, context: ZMQContext(), logger: logger)
    let task = Task { try await agent.run() }
    await waitForTerminationSignal()
    task.cancel()
    try? await task.value
  }

  func makeConfiguration() throws -> WorkerConfiguration {
    guard slots >= 1 else { throw CLIError.usage("--slots must be 1 or more") }
    var configuration = WorkerConfiguration(
      coordinator: coordinator, root: URL(fileURLWithPath: root).standardizedFileURL.path)
    configuration.name = name
    configuration.slots = slots
    configuration.passEnvironment = passEnv
    if let keys {
      do { configuration.keys = try PeerKeys.load(keys) } catch { throw CLIError("--keys: \(error)") }
    }
    configuration.useRuntime = !noRuntime
    configuration.runtimeDirectory = runtimeDir.map { URL(fileURLWithPath: $0).standardizedFileURL.path }
    configuration.shellOptions = ShellOptions(
      terminationGrace: .milliseconds(Int(killGrace * 1000)), maxLineBytes: try Self.maxLineBytes(maxLogLine))
    if let keepFailed {
      do { configuration.keepFailed = try DurationParser.seconds(keepFailed) } catch {
        throw CLIError.usage("--keep-failed: \(error)")
      }
    }
    if let uploadRate {
      let rate = try sizeFlag(uploadRate, "--upload-rate")
      guard rate > 0 else { throw CLIError.usage("--upload-rate must be more than 0 bytes per second") }
      configuration.uploadRate = rate
    }
    if let cacheBudget { configuration.cacheBudget = try sizeFlag(cacheBudget, "--cache-budget") }
    for label in labels {
      let (key, value) = try keyValue(label, flag: "--label")
      configuration.labels[key] = value
    }
    if noGpu {
      configuration.declaredGPUs = []
    } else if !gpus.isEmpty {
      configuration.declaredGPUs = try declaredGPUs(gpus)
    }
    return configuration
  }

  /// `--max-log-line`: a size from 1 KiB (smaller would cut ordinary lines) to 1 MiB: a
  /// log batch is up to 1 MiB of lines plus one line, and must stay well under the
  /// smallest `--max-message` a coordinator takes (4 MiB), or the coordinator would drop
  /// the worker's connection over every resend.
  static func maxLineBytes(_ text: String) throws -> Int {
    let bytes = try sizeFlag(text, "--max-log-line")
    guard (1024...1024 * 1024).contains(bytes) else {
      throw CLIError.usage("--max-log-line: \(text) is outside 1KiB...1MiB")
    }
    return Int(bytes)
  }
}

struct DevCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "dev", abstract: "Run a coordinator and one local worker in one process, to try Pinpool.",
    discussion: manual(
      "A coordinator and one local worker named `local` in one process; then, in another terminal, submit.",
      examples: [
        "pinpool dev", "pinpool dev --data /tmp/pool --gpu \"nvidia:NVIDIA GeForce RTX 4090:24GiB\"",
        "pinpool submit examples/hello --follow     (in another terminal)",
      ],
      exit: [.success, .failure, .usage]))
  @Option(help: "Folder for the coordinator's store and the worker's root.", completion: .directory) var data:
    String?
  @Option(help: "The endpoint to listen on.") var bind = "tcp://127.0.0.1:7450"
  @Option(
    name: .customLong("gpu"),
    help: ArgumentHelp("Declare a GPU instead of probing.", valueName: "vendor:model:vram"))
  var gpus: [String] = []
  @Option(help: "Jobs the local worker runs at once.") var slots: Int = 2

  func run() async throws {
    LargeFrameMemory.configure()
    try checkBind(bind, insecure: false, keys: false)
    let folder = URL(
      fileURLWithPath: data ?? (FileManager.default.homeDirectoryForCurrentDirectory() + "/.pinpool/dev")
    ).standardizedFileURL.path
    let logger = makeLogger("dev")
    let context = ZMQContext()
    let server: CoordinatorServer
    do {
      server = try CoordinatorServer(
        configuration: CoordinatorConfiguration(dataDirectory: folder + "/coordinator", bind: bind),
        context: context, logger: logger)
    } catch {
      throw CLIError("cannot start the coordinator: \(error)")
    }
    var configuration = WorkerConfiguration(coordinator: server.endpoint, root: folder + "/worker")
    configuration.name = "local"
    configuration.slots = slots
    if !gpus.isEmpty { configuration.declaredGPUs = try declaredGPUs(gpus) }
    let agent = try await WorkerAgent(configuration: configuration, context: context, logger: logger)
    print("pinpool dev: coordinator on \(server.endpoint), data in \(folder)")
    print("submit with: pinpool submit SCRIPT --follow")
    let task = Task { try await agent.run() }
    await waitForTerminationSignal()
    task.cancel()
    try? await task.value
    server.shutdown()
  }
}

extension FileManager {
  fileprivate func homeDirectoryForCurrentDirectory() -> String {
    ProcessInfo.processInfo.environment["HOME"] ?? currentDirectoryPath
  }
}

/// Refuses to listen beyond loopback without keys unless told to.
func checkBind(_ endpoint: String, insecure: Bool, keys: Bool) throws {
  guard endpoint.hasPrefix("tcp://"), !keys else { return }
  let host = endpoint.dropFirst("tcp://".count).split(separator: ":").dropLast().joined(separator: ":")
  let loopback = host == "127.0.0.1" || host == "localhost" || host == "[::1]" || host.hasPrefix("127.")
  if !loopback && !insecure {
    throw CLIError(
      "refusing to listen on \(endpoint) without keys: anyone who can reach it could run commands on your workers. "
        + "Give --keys DIR (see `pinpool keys generate`), bind to 127.0.0.1, or pass --insecure on a network you trust."
    )
  }
}

func makeLogger(_ label: String) -> Logger {
  LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
  var logger = Logger(label: "pinpool.\(label)")
  logger.logLevel =
    ProcessInfo.processInfo.environment["PINPOOL_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .info
  return logger
}

/// Waits for SIGINT or SIGTERM, the way systemd and a terminal ask a service to stop.
func waitForTerminationSignal() async {
  signal(SIGINT, SIG_IGN)
  signal(SIGTERM, SIG_IGN)
  let box = SignalSources()
  await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
    let resume = OnceFlag()
    for sig in [SIGINT, SIGTERM] {
      let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
      source.setEventHandler {
        if resume.claim() { continuation.resume() }
      }
      source.resume()
      box.sources.append(source)
    }
  }
  for source in box.sources { source.cancel() }
}

private final class SignalSources: @unchecked Sendable {
  var sources: [any DispatchSourceSignal] = []
}

private final class OnceFlag: @unchecked Sendable {
  private let lock = NSLock()
  private var claimed = false
  func claim() -> Bool {
    lock.lock()
    defer { lock.unlock() }
    if claimed { return false }
    claimed = true
    return true
  }
}

/// A size flag's value (`64MiB`, `1.5G`); a bad one is a usage error naming the flag.
func sizeFlag(_ text: String, _ flag: String) throws(CLIError) -> Int64 {
  do { return try ByteSize(parsing: text).bytes } catch { throw CLIError.usage("\(flag): \(error)") }
}

/// `--gpu` declarations, numbered in order (worker and dev).
func declaredGPUs(_ texts: [String]) throws(CLIError) -> [GPU] {
  var gpus: [GPU] = []
  for (index, text) in texts.enumerated() {
    do { gpus.append(try GPU(declaration: text, index: index)) } catch {
      throw CLIError.usage("--gpu: \(error)")
    }
  }
  return gpus
}
