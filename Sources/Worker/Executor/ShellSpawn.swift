import Foundation
import Subprocess

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// Starts a job's command from the thread that then reads its output, and hands back a
/// pidfd that polls readable when the command exits, so that one thread sees the
/// output and the exit.
///
/// Why not swift-subprocess here (it still starts every other tool): it spawns the same
/// way, with the same flags, but from a background thread of its own, and waits for
/// the exit on a monitor thread of its own, each reached through a continuation. On a
/// worker running trivial jobs those hand-offs cost more than the spawn: a loop in C
/// (`bench/spawn-floor.c`) starts, reads and reaps a command in 0.05 ms of CPU, where
/// the library's path took about four times that. What the child gets is what the
/// library gives it: a session of its own (`setsid`), no blocked signals and every
/// handler at its default (an ignored SIGPIPE would otherwise survive `exec`), no
/// descriptor but stdin (`/dev/null`), stdout and stderr, and its working directory.
///
/// Needs glibc's `posix_spawn_file_actions_addchdir_np` (2.29),
/// `posix_spawn_file_actions_addclosefrom_np` (2.34) and `pidfd_open` (2.36), found at
/// run time; where one is missing, `available` is nil and commands go through
/// swift-subprocess as before.
struct ShellSpawn: Sendable {
  struct Child: Sendable {
    let pid: pid_t
    /// Readable once the child has exited; closed by whoever reaps it.
    let pidfd: Int32
  }

  private typealias AddChdir =
    @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>) -> Int32
  private typealias AddCloseFrom =
    @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
  private typealias PidfdOpen = @convention(c) (pid_t, UInt32) -> Int32

  /// glibc's `POSIX_SPAWN_SETSID` (2.26), which the module map leaves out with the
  /// other GNU extensions of `spawn.h`.
  private static let setSession: Int32 = 0x80

  private let addChdir: AddChdir
  private let addCloseFrom: AddCloseFrom
  private let pidfdOpen: PidfdOpen

  /// Nil where this C library lacks what is needed (or `PINPOOL_SPAWN=subprocess` asks
  /// for the library's path, to compare the two).
  static let available: ShellSpawn? = {
    if ProcessInfo.processInfo.environment["PINPOOL_SPAWN"] == "subprocess" { return nil }
    guard let chdir = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addchdir_np"),
      let closeFrom = dlsym(
        UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np"),
      let pidfd = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "pidfd_open")
    else { return nil }
    let spawn = ShellSpawn(
      addChdir: unsafeBitCast(chdir, to: AddChdir.self),
      addCloseFrom: unsafeBitCast(closeFrom, to: AddCloseFrom.self),
      pidfdOpen: unsafeBitCast(pidfd, to: PidfdOpen.self))
    // A kernel without pidfd_open (before 5.3) fails the call, not the lookup.
    let probe = spawn.pidfdOpen(getpid(), 0)
    guard probe >= 0 else { return nil }
    close(probe)
    return spawn
  }()

  /// Starts `executable` with `arguments` (argv[0] is the executable, as the library
  /// passes it), stdout and stderr on the given descriptors. The error reads as a
  /// reason: "No such file or directory", say.
  func spawn(
    executable: String, arguments: [String], environment: [String: String], workingDirectory: String,
    stdout: Int32, stderr: Int32
  ) -> Result<Child, ShellProcessError> {
    var actions = posix_spawn_file_actions_t()
    var attributes = posix_spawnattr_t()
    posix_spawn_file_actions_init(&actions)
    posix_spawnattr_init(&attributes)
    defer {
      posix_spawn_file_actions_destroy(&actions)
      posix_spawnattr_destroy(&attributes)
    }
    var noSignals = sigset_t()
    var defaults = sigset_t()
    sigemptyset(&noSignals)
    sigfillset(&defaults)
    // Their handlers cannot be set; glibc's loop would only fail on them.
    sigdelset(&defaults, SIGKILL)
    sigdelset(&defaults, SIGSTOP)
    var rc = posix_spawnattr_setsigmask(&attributes, &noSignals)
    if rc == 0 { rc = posix_spawnattr_setsigdefault(&attributes, &defaults) }
    if rc == 0 {
      rc = posix_spawnattr_setflags(
        &attributes, Int16(Self.setSession | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
    }
    if rc == 0 { rc = posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0) }
    if rc == 0 { rc = posix_spawn_file_actions_adddup2(&actions, stdout, 1) }
    if rc == 0 { rc = posix_spawn_file_actions_adddup2(&actions, stderr, 2) }
    if rc == 0 { rc = addCloseFrom(&actions, 3) }
    if rc == 0 { rc = workingDirectory.withCString { addChdir(&actions, $0) } }
    guard rc == 0 else { return .failure(ShellProcessError(String(cString: strerror(rc)))) }

    let argv = ([executable] + arguments).map { strdup($0) } + [nil]
    let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
    defer {
      for pointer in argv { free(pointer) }
      for pointer in envp { free(pointer) }
    }
    var pid: pid_t = 0
    rc = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
    guard rc == 0 else { return .failure(ShellProcessError(String(cString: strerror(rc)))) }
    let pidfd = pidfdOpen(pid, 0)
    guard pidfd >= 0 else {
      // Not expected once the probe passed (the child is ours and not yet reaped); a
      // command that cannot be watched must not run unwatched.
      let reason = String(cString: strerror(errno))
      _ = kill(-pid, SIGKILL)
      var status: Int32 = 0
      _ = waitpid(pid, &status, 0)
      return .failure(ShellProcessError("cannot watch the command: \(reason)"))
    }
    // pidfd_open sets close-on-exec itself.
    return .success(Child(pid: pid, pidfd: pidfd))
  }

  /// Reaps the child once its pidfd is readable: how it ended, or nil if it has not.
  static func reap(_ child: Child) -> TerminationStatus? {
    var status: Int32 = 0
    var rc: pid_t
    repeat { rc = waitpid(child.pid, &status, WNOHANG) } while rc < 0 && errno == EINTR
    if rc == 0 { return nil }
    // Reaped by someone else (nothing in the worker waits for all children): it ended,
    // how is lost.
    guard rc == child.pid else { return .exited(255) }
    // The W* macros by hand: the low 7 bits are the signal, 0 for a normal exit.
    let signal = status & 0x7f
    return signal == 0 ? .exited((status >> 8) & 0xff) : .signaled(signal)
  }
}
