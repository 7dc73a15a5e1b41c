import Foundation
import Shared
import Testing

/// `submit --follow` in a real terminal: tmux runs the command in a 120x40 pane and
/// the test reads the screen with `capture-pane`, as a person would see it.
@Suite(
  .serialized, .enabled(if: Tmux.path != nil, "tmux is not installed (looked in /usr/bin and /usr/local/bin)")
)
struct TerminalTests {
  /// Three steps; the second takes a few seconds, so the status line is seen at it.
  static let script = """
    { "run": [
      { "method": "shell.run", "params": { "message": "echo first-line" } },
      { "method": "shell.run", "params": { "message": ["echo second-start", "sleep 3", "echo second-end"] } },
      { "method": "shell.run", "params": { "message": "echo last-line" } }
    ] }
    """

  @Test func submitFollowShowsLiveLinesTheStepAndTheFinalState() throws {
    try withPool { pool in
      try pool.startCoordinator()
      try pool.startWorker("a")
      let script = try writeScript(Self.script, in: pool.directory)
      let tmux = try Tmux()
      defer { tmux.kill() }
      try tmux.start(
        "\(Pool.binary) submit \(script) --follow", environment: ["PINPOOL_COORDINATOR": pool.endpoint])

      // While the second step runs: its first line is on screen, the last one is not
      // yet, and the status line at the bottom names step 2 of 3.
      var live = ""
      try pool.waitUntil("the status line shows step 2/3", timeout: 60) {
        live = tmux.screen()
        return live.contains("running · step 2/3")
      }
      #expect(live.contains("second-start"), "\(live)")
      #expect(!live.contains("last-line"), "\(live)")
      #expect(live.contains("on a"), "\(live)")

      var screen = ""
      try pool.waitUntil("the command exits", timeout: 60) {
        screen = tmux.screen()
        return screen.contains("EXIT=")
      }
      #expect(screen.contains("first-line"))
      #expect(screen.contains("second-end"))
      #expect(screen.contains("last-line"))
      #expect(
        screen.range(of: #"job \d+ succeeded in 0:0\d"#, options: .regularExpression) != nil, "\(screen)")
      #expect(screen.contains("EXIT=0"), "\(screen)")
      // The status line was erased, not left behind among the log lines.
      #expect(!screen.contains("running · step"), "\(screen)")
    }
  }

  @Test func ctrlCStopsFollowingButNotTheJob() throws {
    try withPool { pool in
      try pool.startCoordinator()
      try pool.startWorker("a")
      let script = try writeScript(Self.script, in: pool.directory)
      let tmux = try Tmux()
      defer { tmux.kill() }
      try tmux.start(
        "\(Pool.binary) submit \(script) --follow", environment: ["PINPOOL_COORDINATOR": pool.endpoint])
      try pool.waitUntil("the status line shows step 2/3", timeout: 60) {
        tmux.screen().contains("running · step 2/3")
      }
      tmux.send("C-c")
      var screen = ""
      try pool.waitUntil("the command exits", timeout: 30) {
        screen = tmux.screen()
        return screen.contains("EXIT=")
      }
      let match = try #require(
        screen.range(
          of: #"stopped following; job (\d+) keeps running \(pinpool cancel \d+ to stop it\)"#,
          options: .regularExpression), "\(screen)")
      #expect(screen.contains("EXIT=130"), "\(screen)")
      let id = String(screen[match].split(separator: " ")[3])
      // The job was not cancelled: it runs to the end.
      #expect(try pool.waitForFinal(id).state == .succeeded)
      #expect(try pool.logLines(id).contains { $0.line == "last-line" })
    }
  }
}

/// A tmux server on a private socket, so parallel tests never share one.
final class Tmux {
  static let path: String? = ["/usr/bin/tmux", "/usr/local/bin/tmux"].first {
    FileManager.default.isExecutableFile(atPath: $0)
  }
  let socket = "pinpool-test-\(UUID().uuidString.prefix(8))"

  init() throws {
    guard Self.path != nil else { throw PoolError("tmux is not installed") }
  }

  /// Runs `command` in a detached 120x40 session; the pane stays open after it exits,
  /// showing `EXIT=status`.
  func start(_ command: String, environment: [String: String]) throws {
    let exports = environment.map { "\($0.key)='\($0.value)'" }.joined(separator: " ")
    let shell = "env \(exports) \(command); echo EXIT=$?; sleep 600"
    let result = run(["-f", "/dev/null", "new-session", "-d", "-s", "t", "-x", "120", "-y", "40", shell])
    guard result.status == 0 else { throw PoolError("tmux new-session failed: \(result.output)") }
  }

  /// The visible pane, without colour.
  func screen() -> String { run(["capture-pane", "-p", "-t", "t"]).output }

  func send(_ keys: String) { run(["send-keys", "-t", "t", keys]) }

  /// Ends the session, its processes and the server. `kill-server` alone is not
  /// enough here: a server started from a test thread may keep running, so its pid
  /// and the pane's are asked for first and killed outright.
  func kill() {
    let pids = run(["display-message", "-p", "-t", "t", "#{pid} #{pane_pid}"]).output
      .split(whereSeparator: \.isWhitespace).compactMap { pid_t(String($0)) }
    run(["kill-server"])
    for pid in pids.reversed() where pid > 1 { Foundation.kill(pid, SIGKILL) }
    try? FileManager.default.removeItem(atPath: "/tmp/tmux-\(getuid())/\(socket)")
  }

  /// Spawned with `posix_spawn` and reaped with `waitpid`, its output in a file:
  /// Foundation's `Process` (and a pipe) would wait for every copy of the descriptors
  /// it hands the child to close, and the tmux server that `new-session` forks keeps
  /// its copies for as long as it runs.
  @discardableResult
  private func run(_ arguments: [String]) -> (status: Int32, output: String) {
    let file = FileManager.default.temporaryDirectory.appendingPathComponent("tmux-\(UUID().uuidString).out")
    defer { try? FileManager.default.removeItem(at: file) }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, file.path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    posix_spawn_file_actions_adddup2(&actions, 1, 2)
    // Nothing else of the test process (sockets, other tests' pipes) reaches tmux.
    // (glibc ≥ 2.34 has the call; Swift's Glibc module does not export it.)
    typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
    if let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np")
    {
      _ = unsafeBitCast(symbol, to: CloseFrom.self)(&actions, 3)
    }
    // A clean signal mask: spawned from a thread that blocks signals, the server would
    // never see SIGCHLD or SIGTERM, and `kill-server` would leave it running.
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var empty = sigset_t()
    sigemptyset(&empty)
    var all = sigset_t()
    sigfillset(&all)
    posix_spawnattr_setsigmask(&attributes, &empty)
    posix_spawnattr_setsigdefault(&attributes, &all)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
    let argv = ([Self.path ?? "/usr/bin/tmux", "-L", socket] + arguments).map { strdup($0) } + [nil]
    defer { for pointer in argv { free(pointer) } }
    var pid: pid_t = 0
    let spawned = posix_spawn(&pid, argv[0]!, &actions, &attributes, argv, environ)
    guard spawned == 0 else { return (-1, "posix_spawn tmux: \(String(cString: strerror(spawned)))") }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    let output = (try? String(contentsOf: file, encoding: .utf8)) ?? ""
    let exited = status & 0x7f == 0
    return (exited ? (status >> 8) & 0xff : -1, output)
  }
}
